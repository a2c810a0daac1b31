"""The daemon's limit on failed PIN checks per card (daemon/ratelimit.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from daemon_harness import KZZ_READER, PK_READER, RunningDaemon, make_root, start_daemon

from pkcard.daemon.ratelimit import FailedPinLimiter
from pkcard.errors import RateLimited, WrongPin
from pkcard.pin import PinRef
from pkcard.simcard.profile import load_profile
from pkcard.simcard.spec import SecretRef


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limit_window_and_reset_on_success() -> None:
    clock = Clock()
    limiter = FailedPinLimiter(max_failures=3, window_s=60, clock=clock)
    for _ in range(3):
        limiter.check("PK1")
        limiter.record_failure("PK1")
        clock.now += 10
    with pytest.raises(RateLimited) as caught:
        limiter.check("PK1")
    assert caught.value.retry_after_s == 30  # the first failure leaves the window at +60
    limiter.check("PK2")  # another card is not affected
    clock.now += 30
    limiter.check("PK1")  # the oldest failure left the window
    limiter.record_failure("PK1")
    with pytest.raises(RateLimited):
        limiter.check("PK1")
    limiter.record_success("PK1")
    limiter.check("PK1")


def test_limiter_refuses_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="positive"):
        FailedPinLimiter(max_failures=0)


@pytest.fixture
def limited_daemon() -> Iterator[RunningDaemon]:
    root = make_root()
    config = root / "pkcardd.toml"
    config.write_text("[limits]\nfailed_pin_limit = 2\nfailed_pin_window_s = 3600.0\n")
    daemon = start_daemon(root, "--config", str(config))
    daemon.insert(PK_READER, "pk-regular")
    daemon.insert(KZZ_READER, "kzz")
    yield daemon
    daemon.close()
    shutil.rmtree(root, ignore_errors=True)


def test_daemon_refuses_before_the_card_after_the_limit(limited_daemon: RunningDaemon) -> None:
    pin = load_profile("pk-regular").secret_value(SecretRef.PIN)
    with limited_daemon.client(timeout=20) as client:
        for _ in range(2):
            with pytest.raises(WrongPin):
                client.verify_pin(PK_READER, PinRef.PIN, "0000", confirm_last_try=True)
        tries = client.get_pin_status(PK_READER, PinRef.PIN)[0].tries_left
        with pytest.raises(RateLimited) as caught:
            client.verify_pin(PK_READER, PinRef.PIN, pin, confirm_last_try=True)
        assert caught.value.retry_after_s > 0
        # refused before the card: no try spent, not even by the right PIN
        assert client.get_pin_status(PK_READER, PinRef.PIN)[0].tries_left == tries
        with pytest.raises(RateLimited):
            client.change_pin(PK_READER, PinRef.PIN, pin, "902143", confirm_last_try=True)
    assert pin not in limited_daemon.stderr() + limited_daemon.audit_path.read_text()


def test_session_pin_checks_share_the_limit(limited_daemon: RunningDaemon) -> None:
    """OpenSession presents the PIN too: its failures count, and its refusals come first."""
    pin = load_profile("pk-regular").secret_value(SecretRef.PIN)
    challenge = bytes(range(32))
    with limited_daemon.client(timeout=20) as client:
        with pytest.raises(WrongPin):
            client.open_session(PK_READER, challenge, ["I002"], kzz_reader=KZZ_READER, pin="0000")
        with pytest.raises(WrongPin):  # the CardService failure counts against the same card
            client.verify_pin(PK_READER, PinRef.PIN, "0000", confirm_last_try=True)
        tries = client.get_pin_status(PK_READER, PinRef.PIN)[0].tries_left
        with pytest.raises(RateLimited):
            client.open_session(
                PK_READER, challenge, ["I002"], kzz_reader=KZZ_READER, pin=pin,
                confirm_last_try=True,
            )
        assert client.get_pin_status(PK_READER, PinRef.PIN)[0].tries_left == tries


def test_retry_after_reads_the_pause_without_counting() -> None:
    clock = Clock()
    limiter = FailedPinLimiter(max_failures=2, window_s=60, clock=clock)
    limiter.record_failure("PK1")
    assert limiter.retry_after("PK1") == 0
    clock.now += 15
    limiter.record_failure("PK1")
    assert limiter.retry_after("PK1") == 45  # the first failure leaves the window at +60
    assert limiter.retry_after("PK1") == 45  # reading it counts nothing
    assert limiter.retry_after("PK2") == 0
    clock.now += 45
    assert limiter.retry_after("PK1") == 0


def test_pin_status_reports_the_pause_before_any_pin_is_asked(
    limited_daemon: RunningDaemon,
) -> None:
    with limited_daemon.client(timeout=20) as client:
        assert client.get_pin_report(PK_READER).retry_after_s == 0
        for _ in range(2):
            with pytest.raises(WrongPin):
                client.verify_pin(PK_READER, PinRef.PIN, "0000", confirm_last_try=True)
        report = client.get_pin_report(PK_READER, PinRef.PUK)
        assert 0 < report.retry_after_s <= 3600  # window 3600 s in this daemon's config
        assert [s.ref for s in report.statuses] == [PinRef.PUK]
        with pytest.raises(RateLimited) as caught:
            client.verify_pin(PK_READER, PinRef.PIN, "0000", confirm_last_try=True)
        assert 0 < caught.value.retry_after_s <= report.retry_after_s


def test_issue13_spin_failures_through_sign_document_are_rate_limited(
    limited_daemon: RunningDaemon,
) -> None:
    """Issue 13 finding 1: wrong signing PINs (SignDocument) count against the same limit."""
    spin = load_profile("pk-regular").secret_value(SecretRef.SPIN)
    wrong = spin[:-1] + str((int(spin[-1]) + 1) % 10)
    document = b"pkcard rate-limit test document\n"
    with limited_daemon.client(timeout=20) as client:
        for _ in range(2):
            with pytest.raises(WrongPin):
                client.sign_document(PK_READER, document, spin=wrong, confirm_last_try=True)
        tries = client.get_pin_status(PK_READER, PinRef.SPIN)[0].tries_left
        with pytest.raises(RateLimited) as caught:
            client.sign_document(PK_READER, document, spin=spin, confirm_last_try=True)
        assert caught.value.retry_after_s > 0
        # refused before the card: the right SPIN spent no try either
        assert client.get_pin_status(PK_READER, PinRef.SPIN)[0].tries_left == tries
        with pytest.raises(RateLimited):  # and the card's other PIN operations share the limit
            client.verify_pin(PK_READER, PinRef.PIN, "0000", confirm_last_try=True)
    assert spin not in limited_daemon.stderr() + limited_daemon.audit_path.read_text()
    assert wrong not in limited_daemon.stderr() + limited_daemon.audit_path.read_text()
