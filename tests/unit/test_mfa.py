"""TOTP step-up: enrolment, replay protection, the time window, recovery codes, lock-out, and
secrets at rest. The store is the real SQL store on a SQLite file; the clock is the test's.

The same store operations are tested on PostgreSQL as well by the contract suite
(``tests/integration/store_contract/``), including two replicas sharing one database.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest

from gateway.mfa import (
    ISSUER,
    REGION_LEVEL_CLAIM,
    AlreadyEnrolledError,
    BindingRule,
    FreshSignInNeededError,
    InvalidCodeError,
    LockedOutError,
    NotEnrolledError,
    RecoveryCodeHasher,
    SlowDownError,
    StrongerSignInNeededError,
    ThrottlePolicy,
    TotpService,
    Verification,
    client_key,
    normalise_recovery_code,
    normalise_totp_code,
    region_vouched_level,
    time_step,
)
from gateway.sealing import SecretCipher, SecretUnreadableError, derive_key
from gateway.store.contract import SsoSession, Subject, token_hash
from gateway.store.sql import SqlStore

T = TypeVar("T")

# A moment in the middle of a 30-second step, so that "now" and "now + a few seconds" agree.
START = datetime.datetime(2025, 3, 1, 8, 0, 15, tzinfo=datetime.UTC)
STEP = datetime.timedelta(seconds=30)
MFA_SECRET = "mfa-secret-for-tests-0123456789abcdef"
IP = "192.0.2.10"


class Clock:
    def __init__(self, now: datetime.datetime) -> None:
        self.now = now

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, by: datetime.timedelta) -> None:
        self.now += by


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    store = SqlStore.from_url(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def cipher() -> SecretCipher:
    return SecretCipher.from_secrets(MFA_SECRET)


@pytest.fixture
def service(store: SqlStore, cipher: SecretCipher, clock: Clock) -> TotpService:
    # A cheap scrypt keeps the tests fast; production uses RecoveryCodeHasher()'s defaults.
    return TotpService(store, cipher, clock=clock, hasher=RecoveryCodeHasher(n=2**8))


@pytest.fixture
def subject(store: SqlStore) -> str:
    linked: Subject = store.link_subject(token_hash("identity:wang"), "zj", "zj-1", START)
    return linked.id


def _code(secret: str, at: datetime.datetime) -> str:
    return pyotp.TOTP(secret).at(at)


def _enrol(service: TotpService, subject: str, clock: Clock) -> tuple[str, tuple[str, ...]]:
    """Enrol and confirm; return the secret and the recovery codes. The clock moves on a step
    so the confirmation code's step is in the past."""
    enrolment = service.begin_enrolment(subject, "王小明 (zj)")
    recovery = service.confirm_enrolment(subject, _code(enrolment.secret, clock()), IP)
    clock.advance(10 * STEP)
    return enrolment.secret, recovery


def _race(threads: int, action: Callable[[int], T]) -> list[T | Exception]:
    barrier = threading.Barrier(threads)

    def run(index: int) -> T | Exception:
        barrier.wait(timeout=30)
        try:
            return action(index)
        except Exception as error:  # collected and asserted on by the test
            return error

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(run, range(threads)))


# --- enrolment ----------------------------------------------------------------------------------


def test_enrolment_offers_a_provisioning_uri_and_a_qr_code(
    service: TotpService, subject: str, clock: Clock
) -> None:
    enrolment = service.begin_enrolment(subject, "王小明 (zj)")
    uri = urlsplit(enrolment.provisioning_uri)
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert unquote(uri.path) == f"/{ISSUER}:王小明 (zj)"
    query = parse_qs(uri.query)
    assert query["secret"] == [enrolment.secret]
    assert query["issuer"] == ["通行 Tongxing"]
    assert len(enrolment.secret) == 32  # base32 of 160 bits
    assert enrolment.qr_svg.startswith("<svg")
    assert "<path" in enrolment.qr_svg
    assert enrolment.expires_at == clock() + datetime.timedelta(minutes=15)
    assert enrolment.secret not in repr(enrolment)
    status = service.status(subject)
    assert (status.enrolled, status.pending) == (False, True)


def test_confirming_with_a_first_code_enrols_and_hands_out_recovery_codes_once(
    service: TotpService, store: SqlStore, subject: str, clock: Clock
) -> None:
    enrolment = service.begin_enrolment(subject, "wang")
    codes = service.confirm_enrolment(subject, _code(enrolment.secret, clock()), IP)
    assert len(codes) == len(set(codes)) == 10
    assert all(normalise_recovery_code(code) is not None for code in codes)
    status = service.status(subject)
    assert (status.enrolled, status.pending, status.recovery_codes_left) == (True, False, 10)
    assert status.confirmed_at == clock()
    # Stored as slow salted hashes only.
    stored = store.list_recovery_codes(subject)
    assert all(code.code_hash.startswith("scrypt$") for code in stored)
    plain = {normalise_recovery_code(code) for code in codes}
    assert not any(p and p in c.code_hash for c in stored for p in plain)
    assert len({c.code_hash.split("$")[4] for c in stored}) == 10  # a salt per code
    with pytest.raises(NotEnrolledError):  # nothing pending any more
        service.confirm_enrolment(subject, _code(enrolment.secret, clock()), IP)


def test_a_wrong_first_code_leaves_the_enrolment_pending(
    service: TotpService, subject: str, clock: Clock
) -> None:
    enrolment = service.begin_enrolment(subject, "wang")
    wrong = _code(enrolment.secret, clock() + 5 * STEP)
    with pytest.raises(InvalidCodeError):
        service.confirm_enrolment(subject, wrong, IP)
    assert service.status(subject).pending
    service.confirm_enrolment(subject, _code(enrolment.secret, clock()), IP)


def test_an_enrolment_expires_and_a_restart_replaces_its_secret(
    service: TotpService, subject: str, clock: Clock
) -> None:
    first = service.begin_enrolment(subject, "wang")
    clock.advance(datetime.timedelta(minutes=15))
    with pytest.raises(NotEnrolledError):
        service.confirm_enrolment(subject, _code(first.secret, clock()), IP)
    second = service.begin_enrolment(subject, "wang")
    assert second.secret != first.secret
    with pytest.raises(InvalidCodeError):  # the old secret's codes mean nothing now
        service.confirm_enrolment(subject, _code(first.secret, clock()), IP)
    service.confirm_enrolment(subject, _code(second.secret, clock()), IP)


def test_a_confirmed_factor_is_not_replaced_by_a_new_enrolment(
    service: TotpService, subject: str, clock: Clock
) -> None:
    secret, _ = _enrol(service, subject, clock)
    with pytest.raises(AlreadyEnrolledError):
        service.begin_enrolment(subject, "attacker's phone")
    assert service.verify(subject, _code(secret, clock()), IP).method == "totp"
    assert service.remove(subject) is True
    assert service.remove(subject) is False
    with pytest.raises(NotEnrolledError):
        service.verify(subject, _code(secret, clock()), IP)
    service.begin_enrolment(subject, "new phone")


# --- verification: replay and the window --------------------------------------------------------


def test_a_code_is_accepted_once(service: TotpService, subject: str, clock: Clock) -> None:
    secret, _ = _enrol(service, subject, clock)
    code = _code(secret, clock())
    verified = service.verify(subject, code, IP)
    assert verified == Verification(subject, "totp", clock(), step=time_step(clock()))
    assert verified.amr == ("otp",)
    with pytest.raises(InvalidCodeError) as replayed:
        service.verify(subject, code, IP)
    assert replayed.value.reason == "replayed"
    clock.advance(STEP)  # a newer step is fine
    service.verify(subject, _code(secret, clock()), IP)


def test_the_confirmation_code_cannot_be_replayed(
    service: TotpService, subject: str, clock: Clock
) -> None:
    enrolment = service.begin_enrolment(subject, "wang")
    code = _code(enrolment.secret, clock())
    service.confirm_enrolment(subject, code, IP)
    with pytest.raises(InvalidCodeError, match="invalid_code"):
        service.verify(subject, code, IP)


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_a_code_one_step_either_side_is_accepted(
    service: TotpService, subject: str, clock: Clock, offset: int
) -> None:
    secret, _ = _enrol(service, subject, clock)
    verified = service.verify(subject, _code(secret, clock() + offset * STEP), IP)
    assert verified.step == time_step(clock()) + offset


@pytest.mark.parametrize("offset", [-2, 2, -3, 3])
def test_a_code_two_steps_away_is_rejected(
    service: TotpService, subject: str, clock: Clock, offset: int
) -> None:
    secret, _ = _enrol(service, subject, clock)
    with pytest.raises(InvalidCodeError) as rejected:
        service.verify(subject, _code(secret, clock() + offset * STEP), IP)
    assert rejected.value.reason == "wrong"


def test_a_step_older_than_the_last_accepted_one_is_rejected(
    service: TotpService, subject: str, clock: Clock
) -> None:
    secret, _ = _enrol(service, subject, clock)
    service.verify(subject, _code(secret, clock() + STEP), IP)  # the next step, early
    with pytest.raises(InvalidCodeError) as rejected:
        service.verify(subject, _code(secret, clock()), IP)  # still in the window, but older
    assert rejected.value.reason == "replayed"


def test_twenty_parallel_submissions_of_one_code_succeed_once(
    service: TotpService, subject: str, clock: Clock
) -> None:
    secret, _ = _enrol(service, subject, clock)
    code = _code(secret, clock())
    results = _race(20, lambda _: service.verify(subject, code, IP))
    won = [result for result in results if isinstance(result, Verification)]
    lost = [r for r in results if isinstance(r, InvalidCodeError | LockedOutError)]
    assert len(won) == 1, results
    assert len(lost) == 19, results


def test_codes_may_be_typed_with_spaces_or_full_width_digits(
    service: TotpService, subject: str, clock: Clock
) -> None:
    secret, _ = _enrol(service, subject, clock)
    code = _code(secret, clock())
    full_width = "".join(chr(ord("０") + int(d)) for d in code)
    assert normalise_totp_code(f" {code[:3]} {code[3:]} ") == code
    assert normalise_totp_code(full_width) == code
    service.verify(subject, full_width, IP)
    for malformed in ("12345", "1234567", "abcdef", "١٢٣٤٥٦"):
        assert normalise_totp_code(malformed) is None


# --- recovery codes -----------------------------------------------------------------------------


def test_a_recovery_code_works_once(service: TotpService, subject: str, clock: Clock) -> None:
    _, recovery = _enrol(service, subject, clock)
    used = service.verify_recovery_code(subject, recovery[3], IP)
    assert (used.method, used.recovery_codes_left, used.amr) == ("recovery_code", 9, ("otp",))
    with pytest.raises(InvalidCodeError):
        service.verify_recovery_code(subject, recovery[3], IP)
    # Typed loosely: lower case, spaces instead of dashes, O for 0 and I or L for 1.
    loose = recovery[4].lower().replace("-", " ").replace("0", "o").replace("1", "l")
    assert service.verify_recovery_code(subject, loose, IP).recovery_codes_left == 8
    assert service.status(subject).recovery_codes_left == 8


def test_parallel_uses_of_one_recovery_code_succeed_once(
    service: TotpService, subject: str, clock: Clock
) -> None:
    _, recovery = _enrol(service, subject, clock)
    results = _race(5, lambda _: service.verify_recovery_code(subject, recovery[0], IP))
    assert sum(isinstance(result, Verification) for result in results) == 1, results


def test_regenerated_recovery_codes_replace_the_old_ones(
    service: TotpService, subject: str, clock: Clock
) -> None:
    _, old = _enrol(service, subject, clock)
    new = service.regenerate_recovery_codes(subject)
    assert not set(new) & set(old)
    with pytest.raises(InvalidCodeError):
        service.verify_recovery_code(subject, old[0], IP)
    service.verify_recovery_code(subject, new[0], IP)


def test_recovery_codes_need_a_confirmed_factor(service: TotpService, subject: str) -> None:
    with pytest.raises(NotEnrolledError):
        service.verify_recovery_code(subject, "ABCD-EFGH-JKMN", IP)
    with pytest.raises(NotEnrolledError):
        service.regenerate_recovery_codes(subject)


# --- throttling ---------------------------------------------------------------------------------


def _wrong(secret: str, clock: Clock) -> str:
    return _code(secret, clock() + 10 * STEP)


def test_five_failures_lock_the_subject_out_for_fifteen_minutes(
    service: TotpService, subject: str, clock: Clock
) -> None:
    secret, _ = _enrol(service, subject, clock)
    for _ in range(5):
        with pytest.raises(InvalidCodeError):
            service.verify(subject, _wrong(secret, clock), IP)
    # The budget is spent: even the right code is refused, on every path and from anywhere.
    with pytest.raises(LockedOutError) as locked:
        service.verify(subject, _code(secret, clock()), IP)
    assert locked.value.until == clock() + datetime.timedelta(minutes=15)
    assert locked.value.code == "locked_out"
    assert locked.value.status == 429
    with pytest.raises(LockedOutError):
        service.verify(subject, _code(secret, clock()), "198.51.100.7")
    with pytest.raises(LockedOutError):
        service.verify_recovery_code(subject, "ABCD-EFGH-JKMN", "198.51.100.7")
    assert service.locked_until(subject, "198.51.100.7") == locked.value.until
    clock.advance(datetime.timedelta(minutes=15))
    assert service.locked_until(subject, IP) is None
    service.verify(subject, _code(secret, clock()), IP)


def test_a_success_starts_the_count_again(service: TotpService, subject: str, clock: Clock) -> None:
    secret, _ = _enrol(service, subject, clock)
    for _ in range(4):
        with pytest.raises(InvalidCodeError):
            service.verify(subject, _wrong(secret, clock), IP)
    service.verify(subject, _code(secret, clock()), IP)
    for _ in range(5):
        with pytest.raises(InvalidCodeError):
            service.verify(subject, _wrong(secret, clock), IP)
    with pytest.raises(LockedOutError):
        service.verify(subject, _wrong(secret, clock), IP)


def test_parallel_guesses_cannot_outrun_the_budget(
    service: TotpService, subject: str, clock: Clock
) -> None:
    secret, _ = _enrol(service, subject, clock)
    results = _race(20, lambda _: service.verify(subject, _wrong(secret, clock), IP))
    checked = [r for r in results if isinstance(r, InvalidCodeError)]
    refused = [r for r in results if isinstance(r, LockedOutError)]
    assert (len(checked), len(refused)) == (5, 15), results


def test_malformed_input_spends_no_attempt(
    service: TotpService, subject: str, clock: Clock
) -> None:
    secret, _ = _enrol(service, subject, clock)
    for _ in range(10):
        with pytest.raises(InvalidCodeError) as malformed:
            service.verify(subject, "12ab56", IP)
        assert malformed.value.reason == "malformed"
    service.verify(subject, _code(secret, clock()), IP)


def test_one_client_address_over_its_budget_is_slowed_across_subjects_not_locked(
    store: SqlStore, cipher: SecretCipher, clock: Clock
) -> None:
    throttle = ThrottlePolicy(max_failures=5, max_failures_per_ip=6)
    service = TotpService(
        store, cipher, clock=clock, throttle=throttle, hasher=RecoveryCodeHasher(n=2**8)
    )
    people = [
        store.link_subject(token_hash(f"identity:{i}"), "zj", f"zj-{i}", START).id for i in range(3)
    ]
    secrets = {person: _enrol(service, person, clock)[0] for person in people}
    attacker = "2001:db8:1:2::99"
    for person in people[:2]:
        for _ in range(3):
            with pytest.raises(InvalidCodeError):
                service.verify(person, _wrong(secrets[person], clock), attacker)
    # The budget is spent, not exceeded: one more wrong code holds the address back 2 s.
    with pytest.raises(InvalidCodeError):
        service.verify(people[0], _wrong(secrets[people[0]], clock), attacker)
    # Another address in the same IPv6 /64 is the same client: it waits, with the time to wait.
    neighbour = "2001:db8:1:2:ffff::1"
    with pytest.raises(SlowDownError) as slowed:
        service.verify(people[2], _code(secrets[people[2]], clock()), neighbour)
    assert slowed.value.retry_after == 2
    assert slowed.value.status == 429
    # Other clients are not affected; after the delay the neighbour's right code is accepted.
    service.verify(people[1], _code(secrets[people[1]], clock()), IP)
    clock.advance(datetime.timedelta(seconds=2))
    service.verify(people[2], _code(secrets[people[2]], clock()), neighbour)


def test_an_address_never_locks_others_out_and_the_subject_locks_only_at_its_budget(
    store: SqlStore, cipher: SecretCipher, clock: Clock
) -> None:
    """THREAT_MODEL row 7: attacker at X against citizen 1; citizen 2 behind the same X."""
    throttle = ThrottlePolicy(max_failures=5, max_failures_per_ip=3)
    service = TotpService(
        store, cipher, clock=clock, throttle=throttle, hasher=RecoveryCodeHasher(n=2**8)
    )
    one, two = (
        store.link_subject(token_hash(f"identity:{i}"), "zj", f"zj-{i}", START).id for i in (1, 2)
    )
    secret_one, secret_two = _enrol(service, one, clock)[0], _enrol(service, two, clock)[0]
    x = "198.51.100.7"
    waits: list[int] = []
    for _ in range(3):  # the address's budget
        with pytest.raises(InvalidCodeError):
            service.verify(one, _wrong(secret_one, clock), x)
    for _ in range(2):  # past it: each wrong code holds the address back longer
        with pytest.raises(InvalidCodeError):
            service.verify(one, _wrong(secret_one, clock), x)
        with pytest.raises(SlowDownError) as slowed:  # refused unseen, charged to nobody
            service.verify(one, _wrong(secret_one, clock), x)
        waits.append(slowed.value.retry_after)
        # Citizen 2, behind the same address, waits too, but is never locked out.
        with pytest.raises(SlowDownError):
            service.verify(two, _code(secret_two, clock()), x)
        clock.advance(datetime.timedelta(seconds=slowed.value.retry_after))
    assert waits == [2, 4]
    assert service.locked_until(two, x) is None
    service.verify(two, _code(secret_two, clock()), x)
    # Citizen 1 has had five wrong codes checked: the sixth attempt is their lock-out.
    clock.advance(datetime.timedelta(seconds=8))
    with pytest.raises(LockedOutError) as locked:
        service.verify(one, _code(secret_one, clock()), "203.0.113.5")
    assert locked.value.until == clock() + datetime.timedelta(minutes=15)
    # The lock is citizen 1's alone: citizen 2, at X again, still verifies.
    clock.advance(STEP)
    service.verify(two, _code(secret_two, clock()), x)


def test_the_hold_on_an_address_is_bounded(
    store: SqlStore, cipher: SecretCipher, clock: Clock
) -> None:
    throttle = ThrottlePolicy(max_failures=50, max_failures_per_ip=1)
    service = TotpService(
        store, cipher, clock=clock, throttle=throttle, hasher=RecoveryCodeHasher(n=2**8)
    )
    people = [
        store.link_subject(token_hash(f"identity:{i}"), "zj", f"zj-{i}", START).id
        for i in range(12)
    ]
    secrets = {person: _enrol(service, person, clock)[0] for person in people}
    waits = []
    for person in people:
        with pytest.raises(InvalidCodeError):
            service.verify(person, _wrong(secrets[person], clock), IP)
        held = service.locked_until(person, IP)
        waits.append(0 if held is None else int((held - clock()).total_seconds()))
        if held is not None:
            clock.advance(held - clock())
    assert waits[:8] == [0, 2, 4, 8, 16, 32, 60, 60]
    assert max(waits) == 60


def test_client_keys_group_ipv6_by_64_and_unmap_ipv4() -> None:
    assert client_key("192.0.2.10") == "ip:192.0.2.10"
    assert client_key("::ffff:192.0.2.10") == "ip:192.0.2.10"
    assert client_key("2001:db8:1:2:3:4:5:6") == "ip:2001:db8:1:2::/64"
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        client_key("not-an-address")


# --- secrets at rest ----------------------------------------------------------------------------


def test_the_stored_secret_is_ciphertext_bound_to_key_and_subject(
    service: TotpService, store: SqlStore, subject: str, cipher: SecretCipher
) -> None:
    enrolment = service.begin_enrolment(subject, "wang")
    credential = store.get_totp_credential(subject)
    assert credential is not None
    assert enrolment.secret.encode() not in credential.secret
    assert credential.secret != enrolment.secret.encode()
    assert cipher.decrypt(credential.secret, subject) == enrolment.secret.encode()
    with pytest.raises(SecretUnreadableError):
        cipher.decrypt(credential.secret, "another-subject")
    with pytest.raises(SecretUnreadableError):
        SecretCipher.from_secrets("another-mfa-secret-0123456789abcdef").decrypt(
            credential.secret, subject
        )
    tampered = credential.secret[:-1] + bytes([credential.secret[-1] ^ 1])
    with pytest.raises(SecretUnreadableError):
        cipher.decrypt(tampered, subject)
    assert repr(credential).count("secret=") == 0


def test_a_rotated_key_still_reads_secrets_made_under_the_old_one(
    cipher: SecretCipher,
) -> None:
    stored = cipher.encrypt(b"JBSWY3DPEHPK3PXP", "subject-1")
    rotated = SecretCipher.from_secrets("the-new-mfa-secret-0123456789abcdef", MFA_SECRET)
    assert rotated.decrypt(stored, "subject-1") == b"JBSWY3DPEHPK3PXP"
    restored = rotated.encrypt(b"JBSWY3DPEHPK3PXP", "subject-1")
    with pytest.raises(SecretUnreadableError):
        cipher.decrypt(restored, "subject-1")  # made under the new key, unknown to the old


def test_keys_come_from_long_secrets_only() -> None:
    assert len(derive_key(MFA_SECRET)) == 32
    assert derive_key(MFA_SECRET) != derive_key(MFA_SECRET + "x")
    with pytest.raises(ValueError, match="at least 32"):
        derive_key("short")
    with pytest.raises(ValueError, match="32 bytes"):
        SecretCipher([b"too short"])


def test_a_secret_that_does_not_decrypt_fails_loudly(
    store: SqlStore, subject: str, clock: Clock
) -> None:
    service = TotpService(
        store, SecretCipher.from_secrets(MFA_SECRET), clock=clock, hasher=RecoveryCodeHasher(n=2**8)
    )
    secret, _ = _enrol(service, subject, clock)
    wrong_key = TotpService(
        store,
        SecretCipher.from_secrets("another-mfa-secret-0123456789abcdef"),
        clock=clock,
    )
    with pytest.raises(SecretUnreadableError):
        wrong_key.verify(subject, _code(secret, clock()), IP)


# --- logging ------------------------------------------------------------------------------------


def test_logs_name_outcomes_but_never_codes_or_secrets(
    service: TotpService, subject: str, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret, recovery = _enrol(service, subject, clock)
    good = _code(secret, clock())
    service.verify(subject, good, IP)
    with pytest.raises(InvalidCodeError):
        service.verify(subject, good, IP)
    service.verify_recovery_code(subject, recovery[0], IP)
    text = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert "replayed" in text
    assert "accepted" in text
    for leaked in (secret, good, recovery[0], normalise_recovery_code(recovery[0]) or "?"):
        assert leaked not in text


def test_the_default_recovery_code_hash_is_scrypt_with_its_parameters_inside() -> None:
    hasher = RecoveryCodeHasher()
    stored = hasher.hash("ABCDEFGHJKMN")
    assert stored.startswith("scrypt$16384$8$1$")
    assert hasher.verify("ABCDEFGHJKMN", stored)
    assert not hasher.verify("ABCDEFGHJKMP", stored)
    # A hash made with other parameters still verifies: they travel with it.
    assert hasher.verify("ABCDEFGHJKMN", RecoveryCodeHasher(n=2**8).hash("ABCDEFGHJKMN"))
    assert not hasher.verify("ABCDEFGHJKMN", "bcrypt$whatever")


# --- binding: NIST SP 800-63B §6.1.2.1 ------------------------------------------------------------


def _session(
    acr: str | None, amr: tuple[str, ...], signed_in: datetime.datetime, **claims: str
) -> SsoSession:
    return SsoSession(
        session_hash=token_hash("session"),
        subject="subject-1",
        region="zj",
        auth_time=signed_in,
        acr=acr,
        amr=amr,
        created_at=signed_in,
        expires_at=signed_in + datetime.timedelta(hours=8),
        claims=dict(claims),
    )


def test_a_password_sign_in_never_binds_a_factor() -> None:
    rule = BindingRule()
    for acr, amr in (("loa1", ("pwd",)), (None, ()), ("bogus", ("pwd",))):
        refused = rule.refusal(_session(acr, amr, START), START)
        assert isinstance(refused, StrongerSignInNeededError), (acr, amr)


def test_a_fresh_region_sign_in_at_loa2_or_above_binds() -> None:
    rule = BindingRule()
    for acr in ("loa2", "loa3"):
        assert rule.refusal(_session(acr, ("pwd", "sms"), START), START) is None
    at_the_edge = START + datetime.timedelta(minutes=10)
    assert rule.refusal(_session("loa2", ("pwd",), START), at_the_edge) is None


def test_a_region_sign_in_older_than_ten_minutes_must_be_repeated() -> None:
    later = START + datetime.timedelta(minutes=10, seconds=1)
    refused = BindingRule().refusal(_session("loa2", ("pwd",), START), later)
    assert isinstance(refused, FreshSignInNeededError)


def test_a_level_the_gateway_raised_is_not_the_regions() -> None:
    """stepped_up sets acr loa2 and adds otp and mfa: that session vouched loa1 at its region."""
    raised = _session("loa2", ("pwd", "otp", "mfa"), START)
    assert region_vouched_level(raised) == "loa1"
    assert isinstance(BindingRule().refusal(raised, START), StrongerSignInNeededError)
    # A level the region recorded is read as recorded, whatever the amr says.
    recorded = _session("loa2", ("pwd", "otp", "mfa"), START, **{REGION_LEVEL_CLAIM: "loa2"})
    assert region_vouched_level(recorded) == "loa2"
    recorded_low = _session("loa2", ("pwd",), START, **{REGION_LEVEL_CLAIM: "loa1"})
    assert region_vouched_level(recorded_low) == "loa1"


def test_confirming_an_enrolment_does_not_raise_any_session(
    service: TotpService, subject: str, clock: Clock, store: SqlStore
) -> None:
    """The service binds a factor; only SignIn.stepped_up (after a verification) raises."""
    session = _session("loa1", ("pwd",), clock())
    session = dataclasses.replace(session, subject=subject)
    store.create_session(session)
    _enrol(service, subject, clock)
    kept = store.get_session(session.session_hash, clock())
    assert kept is not None
    assert (kept.acr, kept.amr) == ("loa1", ("pwd",))
