"""The backend's use cases, independent of gRPC: issue a challenge, redeem a token,
reactivate a holder's regular card."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from pkcard.backend.authorizations import AuthorizationOutcome, explain_all, outcomes
from pkcard.backend.registry import (
    CardState,
    Challenge,
    HolderProof,
    NonceCheck,
    Registry,
)
from pkcard.errors import AuthorizationsRefused, RefusalReason, TokenRefused
from pkcard.holder import LossReason
from pkcard.secret import Secret
from pkcard.token import BackupSwitchReason, Environment, PossessionProof
from pkcard.verify import Clock, SessionScope, TokenVerifier, TrustAnchors, VerifiedSession

CHALLENGE_LIFETIME = timedelta(seconds=120)


@dataclass(frozen=True)
class Redemption:
    """An accepted token, whether it activated a backup card, and each requested code's
    outcome (request order)."""

    session: VerifiedSession
    backup_activated: bool
    authorizations: tuple[AuthorizationOutcome, ...] = ()


class SessionBackend:
    """Issues challenges and redeems tokens against one :class:`Registry`.

    Its verifier asks ``registry`` for cards and authorizations and only
    checks the nonce; :meth:`Registry.commit_redemption` consumes it in the
    transaction that records the redemption. Every redemption and every
    refusal lands in the audit table.
    """

    def __init__(
        self,
        registry: Registry,
        trust: TrustAnchors,
        clock: Clock,
        *,
        environment: Environment,
        restricted_authorizations: Iterable[str] = (),
        challenge_lifetime: timedelta = CHALLENGE_LIFETIME,
    ) -> None:
        self._registry = registry
        self._verifier = TokenVerifier(trust, registry, NonceCheck(registry), clock,
                                       environment=environment,
                                       restricted_authorizations=restricted_authorizations)
        self._clock = clock
        self._challenge_lifetime = challenge_lifetime

    @property
    def verifier(self) -> TokenVerifier:
        return self._verifier

    def issue_challenge(self, client_id: str) -> Challenge:
        return self._registry.issue_challenge(client_id, self._clock(), self._challenge_lifetime)

    def redeem(self, token: str, client_id: str) -> Redemption:
        """Verify ``token`` for ``client_id`` and record it; raises :class:`TokenRefused`."""
        try:
            session = self._verifier.verify(token, client_id)
            answer = outcomes(session.claims.authorizations, session.granted,
                              self._registry.held_authorizations(session.card.holder_id),
                              restricted=session.scope is SessionScope.RESTRICTED)
            activated = self._registry.commit_redemption(session, client_id, self._clock(),
                                                         answer)
        except AuthorizationsRefused as refusal:  # say why for each code
            explained = self._explain(refusal)
            self._registry.record_refusal(self._clock(), client_id, explained)
            raise explained from None
        except TokenRefused as refusal:
            self._registry.record_refusal(self._clock(), client_id, refusal)
            raise
        return Redemption(session, activated, answer)

    def _explain(self, refusal: AuthorizationsRefused) -> AuthorizationsRefused:
        """``refusal`` with each requested code's reason, in its detail and explanations."""
        answer = outcomes(refusal.requested, frozenset(),
                          self._registry.held_authorizations(refusal.holder_id),
                          restricted=refusal.restricted)
        return AuthorizationsRefused(
            f"{refusal.detail}: {explain_all(answer)}", holder_id=refusal.holder_id,
            requested=refusal.requested, restricted=refusal.restricted,
            explanations=tuple((item.code, item.explain()) for item in answer))

    def reactivate(self, card_serial: str, password: Secret, client_id: str,
                   proof: PossessionProof | None) -> int:
        """Reactivate the holder's regular card ``card_serial`` with its reactivation password.

        A try counts only with ``proof``: the regular card's signature over a
        fresh challenge of ``client_id``. Without one, or with one that does
        not verify or is not this regular card's (an unknown serial looks the
        same), :class:`~pkcard.errors.TokenRefused` is raised
        (``REACTIVATION_PROOF_MISSING`` / ``REACTIVATION_PROOF_INVALID`` / a
        nonce reason) before the password is looked at.

        Returns the tries left (the maximum); raises :class:`~pkcard.errors.WrongPin`
        with the tries left, :class:`~pkcard.errors.PinBlocked`,
        :class:`~pkcard.errors.MalformedPin` or a registry error. Every attempt
        is audited with ``client_id``.
        """
        try:
            if proof is None:
                raise TokenRefused(RefusalReason.REACTIVATION_PROOF_MISSING,
                                   "a reactivation needs the regular card's proof of possession")
            key = self._verifier.verify_possession(proof, card_serial)
        except TokenRefused as refusal:
            self._registry.record_reactivation_refusal(self._clock(), client_id, card_serial,
                                                       refusal)
            raise
        return self._registry.reactivate(card_serial, password, self._clock(),
                                         client_id=client_id,
                                         proof=HolderProof(proof.nonce, key))

    def card_state(self, card_serial: str) -> CardState:
        """What the registry knows about one card (GetCardStatus)."""
        return self._registry.card_state(card_serial)

    def change_password(self, card_serial: str, old: Secret, new: Secret, client_id: str,
                        proof: PossessionProof | None) -> int:
        """Change the holder's reactivation password: the regular card's proof of possession
        (as :meth:`reactivate`), then the current password with its tries counter."""
        try:
            if proof is None:
                raise TokenRefused(RefusalReason.REACTIVATION_PROOF_MISSING,
                                   "a password change needs the regular card's proof of "
                                   "possession")
            key = self._verifier.verify_possession(proof, card_serial)
        except TokenRefused as refusal:
            self._registry.record_reactivation_refusal(self._clock(), client_id, card_serial,
                                                       refusal)
            raise
        return self._registry.change_password(card_serial, old, new, self._clock(),
                                              client_id=client_id,
                                              proof=HolderProof(proof.nonce, key))

    def activate_backup(self, card_serial: str, reason: BackupSwitchReason, client_id: str,
                        proof: PossessionProof | None) -> bool:
        """Switch to the backup card now: its proof of possession and the confirmed reason."""
        try:
            if proof is None:
                raise TokenRefused(RefusalReason.REACTIVATION_PROOF_MISSING,
                                   "a switch needs the backup card's proof of possession")
            key = self._verifier.verify_possession(proof, card_serial)
        except TokenRefused as refusal:
            self._registry.record_reactivation_refusal(self._clock(), client_id, card_serial,
                                                       refusal)
            raise
        return self._registry.activate_backup(card_serial, reason, self._clock(),
                                              client_id=client_id,
                                              proof=HolderProof(proof.nonce, key))

    def revoke_signature(self, card_serial: str, password: Secret, client_id: str) -> None:
        """Revoke the card's KPEP with the holder's reactivation password."""
        self._registry.revoke_signature(card_serial, password, self._clock(),
                                        client_id=client_id)

    def report_lost(self, card_serial: str, reason: LossReason, password: Secret,
                    client_id: str) -> None:
        """Revoke a lost, stolen or misused card (and its KPEP) for good."""
        self._registry.report_lost(card_serial, reason, password, self._clock(),
                                   client_id=client_id)
