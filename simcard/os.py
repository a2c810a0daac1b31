"""A small ISO 7816-4 card operating system implementing docs/card-profile.md.

:class:`CardOS` holds the persistent state of one card (files, secrets with
their try counters, private keys) and its volatile state (selection,
verified flags, command chain, pending GET RESPONSE data). ``execute`` takes
one raw command APDU and always returns a raw response (data + SW1 SW2): a
malformed command is answered with a status word, never with an exception.

Commands are dispatched on INS through a table of handlers; each handler
returns ``(data, sw)``. The framing around the handlers is generic: command
chaining (CLA bit ``10``), ``61xx`` + GET RESPONSE when the data exceeds Le
(or always, with ``force_get_response``), ``6Cxx`` on READ BINARY with a
wrong Le when ``force_exact_le`` is set.

Secrets are compared with :func:`hmac.compare_digest` on the whole padded
block. Nothing here logs, and no status word depends on a secret's value
beyond right/wrong.
"""

from __future__ import annotations

import hmac
import secrets as random_source
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from pkcard.apdu import CommandApdu
from pkcard.errors import ApduFormatError
from pkcard.simcard import isoapplet
from pkcard.simcard.spec import (
    Ins,
    KeyUse,
    SecretFormat,
    SecretRef,
    SecretState,
    Sw,
    Tag,
    pad_secret,
    secret_format,
    unpad_secret,
)

if TYPE_CHECKING:
    # cryptography (~9 MB of RSS) loads with the first signature, not with the card:
    # pkcardd --simulated serves PIN status and reader lists without it (issue #14, G6).
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    CardPrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
Reply = tuple[bytes, int]
Handler = Callable[[CommandApdu], Reply]

CHAINING_BIT = 0x10
MAX_CHAINED_DATA = 4096
SHA256_LENGTH = 32
EC_P256_COORDINATE = 32
MF_FID = 0x3F00


def tlv(tag: int, value: bytes) -> bytes:
    """BER-TLV encoding of one object (card side; deliberately independent of pkcard.tlv)."""
    tag_bytes = tag.to_bytes((tag.bit_length() + 7) // 8 or 1, "big")
    n = len(value)
    if n < 0x80:
        length = bytes([n])
    elif n <= 0xFF:
        length = bytes([0x81, n])
    else:
        length = bytes([0x82]) + n.to_bytes(2, "big")
    return tag_bytes + length + value


@dataclass(frozen=True)
class Application:
    """A selectable application: its AID and its elementary files by FID.

    ``fid`` also makes it a DF under the MF (selectable by FID or path);
    ``aliases`` are further AIDs that select the same application.
    """

    aid: bytes
    files: Mapping[int, bytes]
    fid: int | None = None
    aliases: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class CardKey:
    """A private key the card uses. ``guard`` is the secret that must be verified first.

    ``load`` reads the key when the card first signs with it (:attr:`private_key`).
    """

    ref: int
    use: KeyUse
    load: Callable[[], CardPrivateKey] = field(repr=False, compare=False)
    guard: SecretRef | None

    @cached_property
    def private_key(self) -> CardPrivateKey:
        return self.load()


class SecretSlot:
    """One secret reference and its counters. Mutated by APDUs only; never printable."""

    __slots__ = ("_block", "fmt", "ref", "state", "tries_left", "verified")

    def __init__(
        self, ref: SecretRef, state: SecretState, tries_left: int, value: bytes | None
    ) -> None:
        self.ref = ref
        self.fmt: SecretFormat = secret_format(ref)
        self.state = state
        self.tries_left = tries_left
        self.verified = False
        self._block = (
            bytearray(pad_secret(value, self.fmt.block_length)) if value is not None else None
        )

    def __repr__(self) -> str:
        return f"<SecretSlot {self.ref.name} {self.state.name} tries={self.tries_left}>"

    def matches(self, block: bytes) -> bool:
        """Constant-time comparison of a presented padded block with the stored one."""
        stored = bytes(self._block) if self._block is not None else b""
        return self._block is not None and hmac.compare_digest(stored, block)

    def set_value(self, value: bytes) -> None:
        if self._block is not None:
            for i in range(len(self._block)):
                self._block[i] = 0
        self._block = bytearray(pad_secret(value, self.fmt.block_length))


class CardOS:
    """The card: ``execute(apdu) -> response``, ``power_off()``, ``reset()``."""

    def __init__(
        self,
        applications: Sequence[Application],
        secrets: Sequence[SecretSlot] = (),
        keys: Sequence[CardKey] = (),
        *,
        force_get_response: bool = False,
        force_exact_le: bool = False,
        master_files: Mapping[int, bytes] | None = None,
    ) -> None:
        self._applications = {aid: app for app in applications for aid in (app.aid, *app.aliases)}
        self._dedicated_files = {app.fid: app for app in applications if app.fid is not None}
        self._master_files: Mapping[int, bytes] = dict(master_files or {})
        self._secrets = {slot.ref: slot for slot in secrets}
        self._keys = {key.ref: key for key in keys}
        self._force_get_response = force_get_response
        self._force_exact_le = force_exact_le
        self._handlers: dict[int, Handler] = {
            Ins.SELECT: self._select,
            Ins.READ_BINARY: self._read_binary,
            Ins.VERIFY: self._verify,
            Ins.CHANGE_REFERENCE_DATA: self._change_reference_data,
            Ins.RESET_RETRY_COUNTER: self._reset_retry_counter,
            Ins.GET_CHALLENGE: self._get_challenge,
            Ins.INTERNAL_AUTHENTICATE: self._internal_authenticate,
            Ins.PERFORM_SECURITY_OPERATION: self._perform_security_operation,
            Ins.MANAGE_SECURITY_ENVIRONMENT: self._manage_security_environment,
            Ins.GET_DATA: self._get_data,
        }
        self._serial: bytes = b""
        # volatile state
        self._current_app: Application | None = None  # None: the MF
        self._last_app: Application | None = None  # for dropping verified states
        self._current_ef: bytes | None = None  # content of the current EF
        self._chain: tuple[bytes, bytearray] | None = None
        self._security_environment: isoapplet.SecurityEnvironment | None = None
        self._pending: bytes = b""
        self._pending_sw: int = Sw.OK

    def set_serial(self, serial: bytes) -> None:
        """The card serial number answered by GET DATA 005A."""
        self._serial = serial

    # --- inspection (tests) -----------------------------------------------

    def tries_left(self, ref: SecretRef) -> int:
        return self._slot_or_raise(ref).tries_left

    def is_verified(self, ref: SecretRef) -> bool:
        return self._slot_or_raise(ref).verified

    def secret_state(self, ref: SecretRef) -> SecretState:
        return self._slot_or_raise(ref).state

    def has_secret(self, ref: SecretRef) -> bool:
        return ref in self._secrets

    @property
    def is_dead(self) -> bool:
        """Whether the PUK is exhausted (the card is dead for PIN use)."""
        puk = self._secrets.get(SecretRef.PUK)
        return puk is not None and puk.tries_left == 0

    def _slot_or_raise(self, ref: SecretRef) -> SecretSlot:
        slot = self._secrets.get(ref)
        if slot is None:
            raise KeyError(f"the card has no secret {ref.name}")
        return slot

    # --- power ----------------------------------------------------------------

    def power_off(self) -> None:
        """Drop every volatile state: selection, verified flags, chain and response buffers."""
        self._current_app = None
        self._last_app = None
        self._current_ef = None
        self._security_environment = None
        self._drop_chain()
        self._pending = b""
        self._pending_sw = Sw.OK
        for slot in self._secrets.values():
            slot.verified = False

    def reset(self) -> None:
        """A warm reset: the same as :meth:`power_off` for this card."""
        self.power_off()

    # --- framing --------------------------------------------------------------

    def execute(self, apdu: bytes) -> bytes:
        """Run one raw command APDU; always return data + SW1 SW2, never raise."""
        try:
            data, sw = self._frame(bytes(apdu))
        except Exception:  # a bug must not take the reader down; the host sees 6F00
            data, sw = b"", Sw.NO_PRECISE_DIAGNOSIS
        return data + int(sw).to_bytes(2, "big")

    def _frame(self, raw: bytes) -> Reply:
        cmd = _parse_short(raw)
        if cmd is None or cmd.cla & ~CHAINING_BIT & 0xFF:
            self._pending = b""
            self._drop_chain()
            return b"", Sw.WRONG_LENGTH if cmd is None else Sw.CLA_NOT_SUPPORTED
        if cmd.ins == Ins.GET_RESPONSE:
            return self._get_response(cmd)
        self._pending = b""
        chained = self._join_chain(cmd)
        if chained is None:
            return b"", Sw.OK  # a link of a command chain was accepted
        if isinstance(chained, Sw):
            return b"", chained
        handler = self._handlers.get(chained.ins)
        if handler is None:
            return b"", Sw.INS_NOT_SUPPORTED
        data, sw = handler(chained)
        if chained.ins == Ins.SELECT and chained.data == isoapplet.ISOAPPLET_AID:
            return data, sw  # a JavaCard applet under T=1 answers a case 3 SELECT with data
        return self._shape(chained, data, sw)

    def _drop_chain(self) -> None:
        """Forget a pending command chain, overwriting its data (it may hold a PIN block)."""
        if self._chain is not None:
            buffer = self._chain[1]
            buffer[:] = bytes(len(buffer))
            self._chain = None

    def _join_chain(self, cmd: CommandApdu) -> CommandApdu | Sw | None:
        """Accumulate chained commands; the full command once the chain ends."""
        header = bytes((cmd.ins, cmd.p1, cmd.p2))
        if self._chain is not None and self._chain[0] != header:
            self._drop_chain()
            return Sw.LAST_COMMAND_OF_CHAIN_EXPECTED
        if cmd.cla & CHAINING_BIT:
            if self._chain is None:
                self._chain = (header, bytearray())
            self._chain[1].extend(cmd.data)
            if len(self._chain[1]) > MAX_CHAINED_DATA:
                self._drop_chain()
                return Sw.WRONG_LENGTH
            return None
        if self._chain is None:
            return cmd
        data = bytes(self._chain[1]) + cmd.data
        self._drop_chain()
        if len(data) > MAX_CHAINED_DATA:
            return Sw.WRONG_LENGTH
        return CommandApdu(cmd.cla, cmd.ins, cmd.p1, cmd.p2, data, cmd.le)

    def _shape(self, cmd: CommandApdu, data: bytes, sw: int) -> Reply:
        """Fit handler output to Le: send what fits, keep the rest for GET RESPONSE."""
        if not data:
            return b"", sw
        expected = 0 if cmd.le is None else cmd.le
        if self._force_get_response:
            expected = 0
        if len(data) <= expected:
            return data, sw
        self._pending = data[expected:]
        self._pending_sw = sw
        return data[:expected], Sw.MORE_DATA | (min(len(self._pending), 256) & 0xFF)

    def _get_response(self, cmd: CommandApdu) -> Reply:
        if self._chain is not None:
            self._drop_chain()
            self._pending = b""
            return b"", Sw.LAST_COMMAND_OF_CHAIN_EXPECTED
        if cmd.cla & CHAINING_BIT:
            self._pending = b""
            return b"", Sw.CHAINING_NOT_SUPPORTED
        if cmd.p1 or cmd.p2:
            self._pending = b""
            return b"", Sw.INCORRECT_P1P2
        if not self._pending:
            return b"", Sw.CONDITIONS_NOT_SATISFIED
        if cmd.le is None or cmd.data:
            self._pending = b""
            return b"", Sw.WRONG_LENGTH
        chunk, self._pending = self._pending[: cmd.le], self._pending[cmd.le :]
        if self._pending:
            return chunk, Sw.MORE_DATA | (min(len(self._pending), 256) & 0xFF)
        return chunk, self._pending_sw

    # --- SELECT, READ BINARY, GET DATA --------------------------------------------

    def _select(self, cmd: CommandApdu) -> Reply:
        if cmd.p1 == 0x04:
            return self._select_application(cmd)
        if cmd.p1 in (0x00, 0x02, 0x08, 0x09):
            return self._select_file(cmd)
        return b"", Sw.INCORRECT_P1P2

    def _enter(self, app: Application) -> None:
        """Make ``app`` the current DF; selecting another application drops verified states."""
        if self._last_app is not None and self._last_app is not app:
            for slot in self._secrets.values():
                slot.verified = False
            self._security_environment = None
        self._current_app = self._last_app = app
        self._current_ef = None

    def _select_application(self, cmd: CommandApdu) -> Reply:
        if cmd.p2 not in (0x00, 0x0C):
            return b"", Sw.INCORRECT_P1P2
        if not cmd.data:
            return b"", Sw.WRONG_LENGTH
        app = self._applications.get(cmd.data)
        if app is None:
            return b"", Sw.FILE_NOT_FOUND
        self._enter(app)
        if cmd.p2 == 0x0C:
            return b"", Sw.OK
        if cmd.data == isoapplet.ISOAPPLET_AID:
            return isoapplet.ISOAPPLET_SELECT_RESPONSE, Sw.OK
        return tlv(0x6F, tlv(0x84, app.aid)), Sw.OK

    def _select_file(self, cmd: CommandApdu) -> Reply:
        """SELECT by FID (P1 00, 02), by path from the MF (08) or from the current DF (09)."""
        if cmd.p2 not in (0x00, 0x04, 0x0C):
            return b"", Sw.INCORRECT_P1P2
        data = cmd.data
        if cmd.p1 == 0x00 and data in (b"", MF_FID.to_bytes(2, "big")):
            self._current_app, self._current_ef = None, None
            return self._fcp(cmd, _df_fcp(MF_FID, b""))
        if not data or len(data) % 2 or (cmd.p1 in (0x00, 0x02) and len(data) != 2):
            return b"", Sw.WRONG_LENGTH
        fids = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
        directory = None if cmd.p1 == 0x08 else self._current_app
        for depth, fid in enumerate(fids):
            last = depth == len(fids) - 1
            app = self._dedicated_files.get(fid) if directory is None else None
            if app is not None and cmd.p1 != 0x02:
                directory = app
                if last:
                    self._enter(app)
                    return self._fcp(cmd, _df_fcp(fid, app.aid))
                continue
            files = self._master_files if directory is None else directory.files
            if not last or fid not in files:
                return b"", Sw.FILE_NOT_FOUND
            if directory is not None and directory is not self._current_app:
                self._enter(directory)
            elif directory is None:
                self._current_app = None
            self._current_ef = files[fid]
            fcp = tlv(0x80, len(files[fid]).to_bytes(2, "big")) + tlv(0x82, b"\x01")
            return self._fcp(cmd, tlv(0x62, fcp + tlv(0x83, fid.to_bytes(2, "big"))))
        return b"", Sw.FILE_NOT_FOUND  # pragma: no cover - the loop always returns

    @staticmethod
    def _fcp(cmd: CommandApdu, fcp: bytes) -> Reply:
        return (b"", Sw.OK) if cmd.p2 == 0x0C else (fcp, Sw.OK)

    def _read_binary(self, cmd: CommandApdu) -> Reply:
        if cmd.p1 & 0x80:
            return b"", Sw.INCORRECT_P1P2
        if cmd.data or cmd.le is None:
            return b"", Sw.WRONG_LENGTH
        content = self._current_ef
        if content is None:
            return b"", Sw.COMMAND_NOT_ALLOWED
        offset = (cmd.p1 << 8) | cmd.p2
        if offset >= len(content):
            return b"", Sw.WRONG_OFFSET
        chunk = content[offset : offset + cmd.le]
        if len(chunk) < cmd.le:
            if self._force_exact_le:
                return b"", Sw.WRONG_LE | len(chunk)
            return chunk, Sw.END_OF_FILE
        return chunk, Sw.OK

    def _get_data(self, cmd: CommandApdu) -> Reply:
        if cmd.data:
            return b"", Sw.WRONG_LENGTH
        tag = (cmd.p1 << 8) | cmd.p2
        if tag == Tag.SERIAL and self._serial:
            return tlv(Tag.SERIAL, self._serial), Sw.OK
        if tag == Tag.PIN_TABLE and self._secrets:
            table = b"".join(
                tlv(
                    Tag.PIN_TEMPLATE,
                    tlv(Tag.PIN_REF, bytes([ref]))
                    + tlv(Tag.PIN_MAX_TRIES, bytes([slot.fmt.max_tries]))
                    + tlv(Tag.PIN_MIN_LENGTH, bytes([slot.fmt.min_length]))
                    + tlv(Tag.PIN_MAX_LENGTH, bytes([slot.fmt.max_length])),
                )
                for ref, slot in sorted(self._secrets.items())
            )
            return table, Sw.OK
        return b"", Sw.REFERENCE_NOT_FOUND

    # --- secrets ---------------------------------------------------------------

    def _secret_for(self, cmd: CommandApdu) -> SecretSlot | Sw:
        if cmd.p1 != 0x00:
            return Sw.INCORRECT_P1P2
        try:
            ref = SecretRef(cmd.p2)
        except ValueError:
            return Sw.REFERENCE_NOT_FOUND
        return self._secrets.get(ref, Sw.REFERENCE_NOT_FOUND)

    @staticmethod
    def _unusable(slot: SecretSlot) -> Sw | None:
        """The refusal for a secret that cannot be presented now, or None."""
        if slot.state != SecretState.ACTIVE:
            return Sw.REFERENCE_DATA_NOT_USABLE
        if slot.tries_left == 0:
            return Sw.AUTH_METHOD_BLOCKED
        return None

    def _present(self, slot: SecretSlot, block: bytes) -> int:
        """Check a padded block against ``slot``, counting a wrong try. 9000 or 63Cx."""
        if slot.matches(block):
            slot.tries_left = slot.fmt.max_tries
            return Sw.OK
        slot.verified = False
        slot.tries_left -= 1
        if slot.ref == SecretRef.PUK and slot.tries_left == 0:
            self._kill_pin()
        return _wrong(slot.tries_left)

    def _kill_pin(self) -> None:
        """PUK exhausted: the PIN is blocked for good (the card is dead for PIN use)."""
        pin = self._secrets.get(SecretRef.PIN)
        if pin is not None:
            pin.tries_left = 0
            pin.verified = False

    def _verify(self, cmd: CommandApdu) -> Reply:
        slot = self._secret_for(cmd)
        if isinstance(slot, Sw):
            return b"", slot
        refusal = self._unusable(slot)
        if not cmd.data:
            if refusal is not None:
                return b"", refusal
            return b"", Sw.OK if slot.verified else _wrong(slot.tries_left)
        if len(cmd.data) != slot.fmt.block_length:
            return b"", Sw.WRONG_LENGTH
        if refusal is not None:
            return b"", refusal
        sw = self._present(slot, cmd.data)
        slot.verified = sw == Sw.OK
        return b"", sw

    def _new_value(self, slot: SecretSlot, block: bytes) -> bytes | None:
        value = unpad_secret(block)
        if value is None or not slot.fmt.accepts(value):
            return None
        return value

    def _change_reference_data(self, cmd: CommandApdu) -> Reply:
        slot = self._secret_for(cmd)
        if isinstance(slot, Sw):
            return b"", slot
        if slot.ref not in (SecretRef.PIN, SecretRef.SPIN, SecretRef.REACTIVATION):
            return b"", Sw.REFERENCE_NOT_FOUND
        block = slot.fmt.block_length
        if len(cmd.data) != 2 * block:
            return b"", Sw.WRONG_LENGTH
        old, new_block = cmd.data[:block], cmd.data[block:]
        if slot.ref == SecretRef.SPIN and slot.state == SecretState.TRANSPORT:
            return b"", self._activate_signature(slot, old, new_block)
        refusal = self._unusable(slot)
        if refusal is not None:
            return b"", refusal
        new = self._new_value(slot, new_block)
        if new is None:
            return b"", Sw.WRONG_DATA
        sw = self._present(slot, old)
        if sw == Sw.OK:
            slot.set_value(new)
            slot.verified = True
        return b"", sw

    def _activate_signature(self, spin: SecretSlot, tpin_block: bytes, new_block: bytes) -> int:
        tpin = self._secrets.get(SecretRef.TPIN)
        if tpin is None:
            return Sw.REFERENCE_DATA_NOT_USABLE
        refusal = self._unusable(tpin)
        if refusal is not None:
            return refusal
        new = self._new_value(spin, new_block)
        if new is None:
            return Sw.WRONG_DATA
        sw = self._present(tpin, tpin_block)
        if sw == Sw.OK:
            spin.set_value(new)
            spin.state = SecretState.ACTIVE
            spin.tries_left = spin.fmt.max_tries
            spin.verified = False
            tpin.state = SecretState.DISABLED
            tpin.verified = False
        return sw

    def _reset_retry_counter(self, cmd: CommandApdu) -> Reply:
        if cmd.p1 != 0x00:
            return b"", Sw.INCORRECT_P1P2
        pin = self._secrets.get(SecretRef.PIN)
        puk = self._secrets.get(SecretRef.PUK)
        if cmd.p2 != SecretRef.PIN or pin is None or puk is None:
            return b"", Sw.REFERENCE_NOT_FOUND
        if len(cmd.data) != puk.fmt.block_length + pin.fmt.block_length:
            return b"", Sw.WRONG_LENGTH
        if puk.tries_left == 0:
            return b"", Sw.AUTH_METHOD_BLOCKED
        puk_block, new_block = cmd.data[: puk.fmt.block_length], cmd.data[puk.fmt.block_length :]
        new = self._new_value(pin, new_block)
        if new is None:
            return b"", Sw.WRONG_DATA
        sw = self._present(puk, puk_block)
        if sw == Sw.OK:
            pin.set_value(new)
            pin.tries_left = pin.fmt.max_tries
            pin.verified = False
        return b"", sw

    # --- keys ------------------------------------------------------------------

    def _get_challenge(self, cmd: CommandApdu) -> Reply:
        if cmd.p1 or cmd.p2:
            return b"", Sw.INCORRECT_P1P2
        if cmd.data or cmd.le is None:
            return b"", Sw.WRONG_LENGTH
        return random_source.token_bytes(cmd.le), Sw.OK

    def _guard_refusal(self, key: CardKey) -> Sw | None:
        if key.guard is None:
            return None
        slot = self._secrets.get(key.guard)
        if slot is None:
            return Sw.SECURITY_STATUS_NOT_SATISFIED
        if slot.state != SecretState.ACTIVE:
            return Sw.REFERENCE_DATA_NOT_USABLE
        if not slot.verified:
            return Sw.SECURITY_STATUS_NOT_SATISFIED
        return None

    def _internal_authenticate(self, cmd: CommandApdu) -> Reply:
        if cmd.p1 != 0x00:
            return b"", Sw.INCORRECT_P1P2
        key = self._keys.get(cmd.p2)
        if key is None:
            return b"", Sw.REFERENCE_NOT_FOUND
        if key.use != KeyUse.AUTHENTICATION:
            return b"", Sw.CONDITIONS_NOT_SATISFIED
        if len(cmd.data) != SHA256_LENGTH:
            return b"", Sw.WRONG_LENGTH
        refusal = self._guard_refusal(key)
        if refusal is not None:
            return b"", refusal
        from cryptography.hazmat.primitives import hashes  # noqa: PLC0415 - see CardPrivateKey
        from cryptography.hazmat.primitives.asymmetric import ec, padding, utils  # noqa: PLC0415

        prehashed = utils.Prehashed(hashes.SHA256())
        if isinstance(key.private_key, ec.EllipticCurvePrivateKey):
            der = key.private_key.sign(cmd.data, ec.ECDSA(prehashed))
            r, s = utils.decode_dss_signature(der)
            raw = r.to_bytes(EC_P256_COORDINATE, "big") + s.to_bytes(EC_P256_COORDINATE, "big")
            return raw, Sw.OK
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=SHA256_LENGTH)
        return key.private_key.sign(cmd.data, pss, prehashed), Sw.OK

    def _manage_security_environment(self, cmd: CommandApdu) -> Reply:
        """SET of a digital signature template (the IsoApplet personality, isoapplet.py)."""
        if (cmd.p1, cmd.p2) != (0x41, 0xB6):
            return b"", Sw.INCORRECT_P1P2
        self._security_environment = None
        try:
            environment = isoapplet.parse_security_environment(cmd.data)
        except isoapplet.SecurityEnvironmentError:
            return b"", Sw.WRONG_DATA
        if environment.key_ref not in self._keys:
            return b"", Sw.REFERENCE_NOT_FOUND
        self._security_environment = environment
        return b"", Sw.OK

    def _sign_in_environment(self, environment: isoapplet.SecurityEnvironment,
                             data: bytes) -> Reply:
        key = self._keys[environment.key_ref]
        refusal = self._guard_refusal(key)
        if refusal is not None:
            return b"", refusal
        signature = isoapplet.sign(key.private_key, environment.algorithm, data)
        if signature is None:
            return b"", Sw.WRONG_DATA
        if key.use == KeyUse.SIGNATURE and key.guard is not None:
            self._secrets[key.guard].verified = False  # sole control: one signature per SPIN
        return signature, Sw.OK

    def _perform_security_operation(self, cmd: CommandApdu) -> Reply:
        if (cmd.p1, cmd.p2) != (0x9E, 0x9A):
            return b"", Sw.INCORRECT_P1P2
        if self._security_environment is not None:
            return self._sign_in_environment(self._security_environment, cmd.data)
        from cryptography.hazmat.primitives import hashes  # noqa: PLC0415 - see CardPrivateKey
        from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils  # noqa: PLC0415

        key = next((k for k in self._keys.values() if k.use == KeyUse.SIGNATURE), None)
        if key is None or not isinstance(key.private_key, rsa.RSAPrivateKey):
            return b"", Sw.REFERENCE_NOT_FOUND
        refusal = self._guard_refusal(key)
        if refusal is not None:
            return b"", refusal
        if len(cmd.data) != SHA256_LENGTH:
            return b"", Sw.WRONG_LENGTH
        signature = key.private_key.sign(
            cmd.data, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())
        )
        if key.guard is not None:
            self._secrets[key.guard].verified = False  # sole control: one signature per SPIN
        return signature, Sw.OK


def _df_fcp(fid: int, aid: bytes) -> bytes:
    """FCP of a DF (descriptor 38), with its DF name when it has one."""
    body = tlv(0x82, b"\x38") + tlv(0x83, fid.to_bytes(2, "big"))
    return tlv(0x62, body + (tlv(0x84, aid) if aid else b""))


def _parse_short(raw: bytes) -> CommandApdu | None:
    """A short command APDU, or None for anything malformed or extended (not supported)."""
    if len(raw) > 5 and raw[4] == 0:
        return None  # extended length, or a short Lc of 00
    try:
        return CommandApdu.parse(raw)
    except ApduFormatError:
        return None


def _wrong(tries_left: int) -> int:
    return Sw.WRONG_SECRET | (tries_left & 0x0F)
