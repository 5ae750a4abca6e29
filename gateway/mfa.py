"""The second factor: TOTP (RFC 6238) with recovery codes, throttling and encrypted secrets.

When a portal or a policy asks for more assurance than the region gave, the gateway steps up
with a time-based one-time password. This module is the protocol-free core of it (the pages
that call it live elsewhere):

* **Enrolment**: a new secret, its ``otpauth://`` provisioning URI and a QR code (SVG, drawn by
  :mod:`segno`); the factor is pending until confirmed with a first code, and the confirmation
  hands out recovery codes, shown once and stored as scrypt hashes with a salt each.
* **Verification**: a code is accepted for the current time step or one step either side
  (RFC 6238 §5.2 allows "at most one time step" of network delay), and the accepted step is
  stored with one conditional update, so a code is never accepted twice, however many requests
  carry it at once (RFC 6238 §5.2: "the verifier MUST NOT accept the second attempt of the OTP
  after the successful validation has been issued for the first OTP").
* **Binding** (NIST SP 800-63B §6.1.2.1, :class:`BindingRule`): a first factor is bound, and
  an existing one replaced, only by a session whose *region* sign-in vouched at least ``loa2``
  (the region's ``acr`` through its ``acr_mapping``, capped by its ceiling) and is fresh. A
  password alone never binds a factor (THREAT_MODEL row 4), and binding never raises the
  session that bound it: the next sign-in with password and code is raised.
* **Throttling** (RFC 4226 §7.3, which RFC 6238 §5.2 refers to): attempts are counted per
  subject and per client address in the store, so they hold on every replica sharing the
  database and on every path that verifies a code through this service. Only the subject's
  count locks (the person attacked); a client address over its budget is slowed with a short,
  growing, bounded delay (:class:`SlowDownError`, 429 with ``Retry-After``) and never locks
  anyone out, so one address (a NAT, a campus) cannot lock other citizens out (row 7).
* **Secrets at rest** are sealed by :class:`gateway.sealing.SecretCipher` (AES-256-GCM under a
  key derived from configuration, bound to the subject they belong to: a row copied to another
  subject does not decrypt).

The clock is injectable, so tests own time. Nothing here logs a code, a secret or a recovery code.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import ipaddress
import logging
import math
import os
import secrets
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, TypeVar

import pyotp
import segno

from gateway.assurance import STEP_UP_LEVEL
from gateway.clock import Clock, utc_now
from gateway.errors import TongxingError
from gateway.observe import Events, LockedOut
from gateway.policy import known_level, level_rank
from gateway.registry import Level
from gateway.sealing import SecretCipher, SecretUnreadableError
from gateway.store.contract import (
    DuplicateRecordError,
    RecoveryCode,
    SsoSession,
    Store,
    TotpCredential,
)

log = logging.getLogger(__name__)

ISSUER: Final = "通行 Tongxing"
DIGITS: Final = 6
INTERVAL: Final = 30  # seconds per time step (RFC 6238 §5.2 recommends 30)
WINDOW: Final = 1  # steps accepted either side of the current one
AMR_OTP: Final = "otp"  # RFC 8176 §2: one-time password

T = TypeVar("T")


# --- errors -------------------------------------------------------------------------------------


class MfaError(TongxingError):
    """A second-factor failure, explained to the person in zh-CN and English."""

    code = "second_factor_failed"
    status = 400
    title_zh = "动态验证码验证失败"
    title_en = "Second factor failed"
    message_zh = "动态验证码验证未完成，请重试。"
    message_en = "The second-factor check did not finish; try again."


class InvalidCodeError(MfaError):
    """The code is wrong, malformed, outside the window, or was accepted before.

    ``reason`` ("wrong", "malformed", "replayed") is for the log only: the person is told the
    same thing in every case.
    """

    code = "invalid_code"
    status = 400
    title_zh = "验证码不正确"
    title_en = "Incorrect code"
    message_zh = "验证码不正确或已使用，请输入身份验证器中显示的最新验证码。"
    message_en = (
        "The code is incorrect or was used already; enter the newest code your authenticator shows."
    )

    def __init__(self, reason: str = "wrong") -> None:
        self.reason = reason
        super().__init__(f"the code was refused: {reason}")


class LockedOutError(MfaError):
    """Too many failed attempts: the subject or the client address is locked until ``until``."""

    code = "locked_out"
    status = 429
    title_zh = "尝试次数过多"
    title_en = "Too many attempts"
    message_zh = "验证失败次数过多，请稍后再试。"
    message_en = "Too many failed attempts; try again later."

    def __init__(self, until: datetime.datetime) -> None:
        self.until = until
        super().__init__(
            f"locked until {until.isoformat()}", details={"locked_until": until.isoformat()}
        )


class NotEnrolledError(MfaError):
    """The subject has no (confirmed, or pending, as the operation needs) TOTP factor."""

    code = "not_enrolled"
    status = 400
    title_zh = "尚未设置动态验证码"
    title_en = "No authenticator set up"
    message_zh = "您尚未设置身份验证器，或设置已过期，请重新开始。"
    message_en = "You have not set up an authenticator, or the set-up expired; start again."


class AlreadyEnrolledError(MfaError):
    """The subject already has a confirmed factor; it must be removed before a new enrolment."""

    code = "already_enrolled"
    status = 409
    title_zh = "已设置动态验证码"
    title_en = "Authenticator already set up"
    message_zh = "您已设置身份验证器；如需更换，请先用现有验证器验证后将其移除。"
    message_en = (
        "You already have an authenticator; to replace it, verify with it and remove it first."
    )


class SlowDownError(MfaError):
    """The client address is over its budget of wrong codes: try again in ``retry_after`` s.

    Not a lock-out: nobody's factor is locked by it, and the attempt was not charged to the
    subject. Served as 429 with ``Retry-After`` (RFC 6585 §4, RFC 9110 §10.2.3).
    """

    code = "slow_down"
    status = 429
    title_zh = "请稍候再试"
    title_en = "Please wait"
    message_zh = "来自您网络的错误尝试过多，请稍后再试。"
    message_en = "Too many wrong codes from your network; try again shortly."

    def __init__(self, until: datetime.datetime, now: datetime.datetime) -> None:
        self.until = until
        self.retry_after = max(1, math.ceil((until - now).total_seconds()))
        super().__init__(
            f"client address slowed for {self.retry_after} s",
            message_zh=f"来自您网络的错误尝试过多，请在 {self.retry_after} 秒后再试。",
            message_en=(
                f"Too many wrong codes from your network; try again in {self.retry_after} seconds."
            ),
            details={"retry_after": self.retry_after},
        )


class BindingRefusedError(MfaError):
    """This session may not bind (or replace) a second factor (NIST SP 800-63B §6.1.2.1)."""

    code = "binding_refused"
    status = 403
    title_zh = "无法在此设置动态口令"
    title_en = "An authenticator cannot be set up here"
    message_zh = "设置身份验证器需要比密码更强的身份验证。"
    message_en = "Setting up an authenticator needs more than a password sign-in."


class StrongerSignInNeededError(BindingRefusedError):
    """The region's sign-in vouched below the binding level: a password is not enough."""

    code = "stronger_sign_in_needed"
    message_zh = (
        "仅凭密码不能设置动态口令。请通过能够提供更高安全级别（loa2 及以上）的地区身份服务"
        "重新登录后设置，或携带身份证件联系服务台。"
    )
    message_en = (
        "A password alone cannot set up a one-time code. Sign in through a region that vouches "
        "a higher level (loa2 or above) and set it up then, or ask the help desk, with your "
        "identity document."
    )


class FreshSignInNeededError(BindingRefusedError):
    """The region's sign-in is older than the binding rule allows: sign in there again."""

    code = "fresh_sign_in_needed"
    message_zh = "您在地区身份服务的登录已超过 10 分钟。请退出后重新登录，再设置动态口令。"
    message_en = (
        "Your sign-in at your region was more than 10 minutes ago. Sign out, sign in again, "
        "then set up the one-time code."
    )


# --- binding: who may bind a factor (NIST SP 800-63B §6.1.2.1) ------------------------------

REGION_LEVEL_CLAIM: Final = "region_level"
"""Where a session may record the level its region sign-in vouched (session ``claims``)."""
GATEWAY_AMR: Final = frozenset({AMR_OTP, "mfa"})
"""What :meth:`gateway.signin.SignIn.stepped_up` adds to a session it raises."""


def region_vouched_level(session: SsoSession) -> Level:
    """The level the session's region sign-in vouched, before any step-up by the gateway.

    ``session.acr`` is the region's ``acr`` mapped through the region's ``acr_mapping`` and
    capped by its ceiling (:func:`gateway.assurance.region_level`) until the gateway's own TOTP
    raises it to :data:`~gateway.assurance.STEP_UP_LEVEL`, adding :data:`GATEWAY_AMR`. A
    session carrying the region's level in its claims (:data:`REGION_LEVEL_CLAIM`) is read
    from there; otherwise a session at the step-up level whose ``amr`` has what a step-up adds
    may have been raised by the gateway, so it counts as ``loa1`` (fail closed: a region that
    vouches ``loa2`` and itself says ``otp`` and ``mfa`` then binds only after a new sign-in).
    """
    recorded = session.claims.get(REGION_LEVEL_CLAIM)
    if isinstance(recorded, str):
        return known_level(recorded) or "loa1"
    level = known_level(session.acr or "") or "loa1"
    if level == STEP_UP_LEVEL and set(session.amr) >= GATEWAY_AMR:
        return "loa1"
    return level


@dataclass(frozen=True)
class BindingRule:
    """Who may bind a first TOTP factor, or replace one: NIST SP 800-63B §6.1.2.1.

    §6.1.2.1 ("Binding of an Additional Authenticator at Existing AAL"): "the CSP SHALL
    require the subscriber to be authenticated at the AAL (or a higher AAL) at which the new
    authenticator will be used". The factor is used to reach ``loa2``, so the session must have
    reached ``level`` (``loa2``) *at its region*, not through a factor the gateway bound from a
    password sign-in: otherwise a phished regional password would let an attacker bind their
    own authenticator (THREAT_MODEL row 4). The region's sign-in must also be fresh (within
    ``freshness`` of its ``auth_time``), since a session left open on a shared computer is not
    the subscriber authenticating now.
    """

    level: Level = STEP_UP_LEVEL
    freshness: datetime.timedelta = datetime.timedelta(minutes=10)

    def refusal(self, session: SsoSession, now: datetime.datetime) -> BindingRefusedError | None:
        """Why ``session`` may not bind a factor at ``now``; ``None`` when it may."""
        if level_rank(region_vouched_level(session)) < level_rank(self.level):
            return StrongerSignInNeededError(
                f"session of {session.subject} vouched below {self.level} at its region"
            )
        if now - session.auth_time > self.freshness:
            return FreshSignInNeededError(
                f"region sign-in of {session.subject} is older than {self.freshness}"
            )
        return None

    def require(self, session: SsoSession, now: datetime.datetime) -> None:
        """Raise the :meth:`refusal`, if any."""
        refused = self.refusal(session, now)
        if refused is not None:
            log.warning(
                "second factor binding refused subject=%s: %s",
                session.subject,
                refused.code,
                extra={
                    "event": "mfa.binding_refused",
                    "subject": session.subject,
                    "reason": refused.code,
                },
            )
            raise refused


# --- recovery codes -----------------------------------------------------------------------------

# Crockford's base32: no I, L, O or U, so codes read aloud or copied by hand survive.
_ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_LOOKALIKES: Final = str.maketrans({"I": "1", "L": "1", "O": "0"})
_CODE_LENGTH: Final = 12  # 60 bits
_GROUP: Final = 4


@dataclass(frozen=True)
class RecoveryCodeHasher:
    """scrypt (RFC 7914) with a salt per code; the parameters travel with each hash.

    Recovery codes carry 60 random bits, so the slow hash is defence in depth for a stolen
    database, not the only barrier; n=2**14, r=8 costs about 16 MiB and tens of milliseconds.
    """

    n: int = 2**14
    r: int = 8
    p: int = 1

    def hash(self, code: str) -> str:
        salt = os.urandom(16)
        digest = self._scrypt(code, salt, self.n, self.r, self.p)
        return f"scrypt${self.n}${self.r}${self.p}${_b64(salt)}${_b64(digest)}"

    def verify(self, code: str, stored: str) -> bool:
        try:
            scheme, n, r, p, salt, digest = stored.split("$")
            if scheme != "scrypt":
                return False
            expected = _unb64(digest)
            actual = self._scrypt(code, _unb64(salt), int(n), int(r), int(p))
        except ValueError:
            return False
        return hmac.compare_digest(actual, expected)

    @staticmethod
    def _scrypt(code: str, salt: bytes, n: int, r: int, p: int) -> bytes:
        memory = 128 * n * r * p
        return hashlib.scrypt(
            code.encode("ascii"), salt=salt, n=n, r=r, p=p, maxmem=2 * memory, dklen=32
        )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_recovery_code() -> str:
    """A fresh code as shown to the person: ``XXXX-XXXX-XXXX``."""
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(_CODE_LENGTH))
    return "-".join(raw[i : i + _GROUP] for i in range(0, _CODE_LENGTH, _GROUP))


def normalise_recovery_code(text: str) -> str | None:
    """The canonical form of a typed recovery code, or ``None`` if it cannot be one."""
    folded = unicodedata.normalize("NFKC", text).upper().translate(_LOOKALIKES)
    compact = "".join(ch for ch in folded if ch not in " -\t")
    if len(compact) != _CODE_LENGTH or any(ch not in _ALPHABET for ch in compact):
        return None
    return compact


def normalise_totp_code(text: str) -> str | None:
    """Six ASCII digits from what was typed (spaces and full-width digits allowed), or ``None``."""
    compact = "".join(unicodedata.normalize("NFKC", text).split())
    if len(compact) != DIGITS or not compact.isascii() or not compact.isdigit():
        return None
    return compact


# --- throttling ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThrottlePolicy:
    """How many wrong codes are checked before a lock-out, and how a busy address is slowed.

    ``max_failures`` is per subject within ``lockout`` of the first failure; the attempt after
    them is refused and locks the subject for ``lockout``: the only lock-out there is.
    ``max_failures_per_ip`` is one client address's budget (an IPv6 /64) across subjects within
    ``lockout``; past it each wrong code holds the address back for ``first_delay``, doubling
    per further wrong code up to ``max_delay`` (short and bounded: people behind the same NAT
    wait seconds, never a lock-out).
    """

    max_failures: int = 5
    lockout: datetime.timedelta = datetime.timedelta(minutes=15)
    max_failures_per_ip: int = 20
    first_delay: datetime.timedelta = datetime.timedelta(seconds=2)
    max_delay: datetime.timedelta = datetime.timedelta(seconds=60)

    def __post_init__(self) -> None:
        if self.max_failures < 1 or self.max_failures_per_ip < 1:
            raise ValueError("failure limits must be at least 1")
        if self.lockout <= datetime.timedelta(0):
            raise ValueError("lockout must be positive")
        if not datetime.timedelta(0) < self.first_delay <= self.max_delay <= self.lockout:
            raise ValueError("need 0 < first_delay <= max_delay <= lockout")


def subject_key(subject: str) -> str:
    return f"subject:{subject}"


def client_key(client_ip: str) -> str:
    """The attempt-counter key of a client address; an IPv6 client counts by its /64."""
    address = ipaddress.ip_address(client_ip.strip())
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"ip:{address.ipv4_mapped}"
        return f"ip:{ipaddress.IPv6Network((address, 64), strict=False)}"
    return f"ip:{address}"


# --- the service --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Enrolment:
    """What the enrolment page shows: the secret (for typing in), its URI and a QR code."""

    secret: str = field(repr=False)
    provisioning_uri: str = field(repr=False)
    qr_svg: str = field(repr=False)
    expires_at: datetime.datetime


@dataclass(frozen=True)
class Verification:
    """A successful second-factor check; ``amr`` goes into the ID token (RFC 8176)."""

    subject: str
    method: Literal["totp", "recovery_code"]
    at: datetime.datetime
    step: int | None = None
    recovery_codes_left: int | None = None
    amr: tuple[str, ...] = (AMR_OTP,)


@dataclass(frozen=True)
class FactorStatus:
    enrolled: bool
    pending: bool
    confirmed_at: datetime.datetime | None
    last_used_at: datetime.datetime | None
    recovery_codes_left: int


class TotpService:
    """TOTP enrolment, verification and recovery over the store."""

    def __init__(
        self,
        store: Store,
        cipher: SecretCipher,
        *,
        clock: Clock = utc_now,
        throttle: ThrottlePolicy | None = None,
        issuer: str = ISSUER,
        enrolment_lifetime: datetime.timedelta = datetime.timedelta(minutes=15),
        recovery_code_count: int = 10,
        hasher: RecoveryCodeHasher | None = None,
        events: Events | None = None,
    ) -> None:
        self._store = store
        # Where a lock-out is said (LockedOut); one built without (unit tests) tells nobody.
        self.events = events if events is not None else Events()
        self._cipher = cipher
        self._clock = clock
        self._throttle = throttle or ThrottlePolicy()
        self._issuer = issuer
        self._enrolment_lifetime = enrolment_lifetime
        self._recovery_code_count = recovery_code_count
        self._hasher = hasher or RecoveryCodeHasher()

    # enrolment

    def status(self, subject: str) -> FactorStatus:
        credential = self._store.get_totp_credential(subject)
        if credential is None:
            return FactorStatus(False, False, None, None, 0)
        left = sum(code.used_at is None for code in self._store.list_recovery_codes(subject))
        return FactorStatus(
            credential.confirmed,
            not credential.confirmed,
            credential.confirmed_at,
            credential.last_used_at,
            left,
        )

    def begin_enrolment(self, subject: str, account_label: str) -> Enrolment:
        """A new pending secret (replacing a pending one) and what the page shows for it.

        ``account_label`` names the account in the authenticator app (never the identity
        number). Raises :class:`AlreadyEnrolledError` if a confirmed factor exists.
        """
        label = " ".join(account_label.split())
        if not label:
            raise ValueError("account_label must not be empty")
        now = self._clock()
        secret = pyotp.random_base32()  # 160 bits (RFC 4226 §4 recommends at least 128)
        stored = self._cipher.encrypt(secret.encode("ascii"), subject)
        try:
            self._store.save_totp_credential(TotpCredential(subject, stored, now))
        except DuplicateRecordError:
            raise AlreadyEnrolledError() from None
        uri = pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL).provisioning_uri(
            name=label, issuer_name=self._issuer
        )
        qr = segno.make(uri, error="m", micro=False)
        svg = qr.svg_inline(scale=4, border=4, light="#fff", svgclass="totp-qr", title=label)
        log.info(
            "totp enrolment started subject=%s",
            subject,
            extra={"event": "mfa.enrolment_started", "subject": subject},
        )
        return Enrolment(secret, uri, svg, now + self._enrolment_lifetime)

    def confirm_enrolment(self, subject: str, code: str, client_ip: str) -> tuple[str, ...]:
        """Confirm the pending factor with a first code; return the recovery codes (shown once).

        Raises :class:`NotEnrolledError` (nothing pending, or it expired),
        :class:`InvalidCodeError` or :class:`LockedOutError`.
        """
        pending = self._store.get_totp_credential(subject)
        if pending is None or pending.confirmed:
            raise NotEnrolledError()
        if self._clock() >= pending.created_at + self._enrolment_lifetime:
            raise NotEnrolledError()
        typed = _totp_code(code)
        credential = pending

        def check(now: datetime.datetime) -> tuple[str, ...]:
            step = self._matching_step(credential, typed, now)
            codes = [new_recovery_code() for _ in range(self._recovery_code_count)]
            records = self._recovery_records(subject, codes, now)
            if not self._store.confirm_totp_credential(
                subject, credential.secret, step, records, now
            ):
                # Confirmed by a concurrent request, restarted or removed meanwhile.
                raise InvalidCodeError("replayed")
            return tuple(codes)

        codes = self._attempt(subject, client_ip, "confirm", check)
        log.info(
            "totp enrolment confirmed subject=%s",
            subject,
            extra={"event": "mfa.enrolled", "subject": subject},
        )
        return codes

    def remove(self, subject: str) -> bool:
        """Remove the factor and its recovery codes (after the person proved it, or by an admin)."""
        removed = self._store.delete_totp_credential(subject)
        if removed:
            log.info(
                "totp factor removed subject=%s",
                subject,
                extra={"event": "mfa.removed", "subject": subject},
            )
        return removed

    def regenerate_recovery_codes(self, subject: str) -> tuple[str, ...]:
        """New recovery codes replacing the old ones; call only right after a verification."""
        self._confirmed(subject)
        codes = [new_recovery_code() for _ in range(self._recovery_code_count)]
        self._store.replace_recovery_codes(
            subject, self._recovery_records(subject, codes, self._clock())
        )
        log.info(
            "recovery codes regenerated subject=%s",
            subject,
            extra={"event": "mfa.recovery_codes_regenerated", "subject": subject},
        )
        return tuple(codes)

    # verification

    def verify(self, subject: str, code: str, client_ip: str) -> Verification:
        """Check a TOTP code of the confirmed factor and spend its time step.

        Raises :class:`NotEnrolledError`, :class:`InvalidCodeError` or :class:`LockedOutError`.
        """
        credential = self._confirmed(subject)
        typed = _totp_code(code)

        def check(now: datetime.datetime) -> Verification:
            step = self._matching_step(credential, typed, now)
            if not self._store.accept_totp_step(subject, step, now):
                raise InvalidCodeError("replayed")
            return Verification(subject, "totp", now, step=step)

        return self._attempt(subject, client_ip, "totp", check)

    def verify_recovery_code(self, subject: str, code: str, client_ip: str) -> Verification:
        """Check and spend a recovery code (each works once).

        Raises :class:`NotEnrolledError`, :class:`InvalidCodeError` or :class:`LockedOutError`.
        """
        self._confirmed(subject)
        typed = normalise_recovery_code(code)
        if typed is None:
            # Not a guess at any code: refused without spending an attempt.
            raise InvalidCodeError("malformed")

        def check(now: datetime.datetime) -> Verification:
            unused = [c for c in self._store.list_recovery_codes(subject) if c.used_at is None]
            match = next((c for c in unused if self._hasher.verify(typed, c.code_hash)), None)
            if match is None:
                raise InvalidCodeError("wrong")
            if not self._store.use_recovery_code(subject, match.code_id, now):
                raise InvalidCodeError("replayed")
            return Verification(subject, "recovery_code", now, recovery_codes_left=len(unused) - 1)

        return self._attempt(subject, client_ip, "recovery_code", check)

    def locked_until(self, subject: str, client_ip: str) -> datetime.datetime | None:
        """When the subject's lock-out, or the client address's hold, ends, if one is in force.

        Every path that would let a second factor count (a page, a callback, a token request)
        asks this, or goes through :meth:`verify`, which does.
        """
        now = self._clock()
        holds = [
            self._store.is_locked(key, now) for key in (subject_key(subject), client_key(client_ip))
        ]
        return max((until for until in holds if until is not None), default=None)

    # internals

    def _confirmed(self, subject: str) -> TotpCredential:
        credential = self._store.get_totp_credential(subject)
        if credential is None or not credential.confirmed:
            raise NotEnrolledError()
        return credential

    def _attempt(
        self,
        subject: str,
        client_ip: str,
        method: str,
        check: Callable[[datetime.datetime], T],
    ) -> T:
        """Run ``check`` under the throttle.

        A client address held back (over its budget) is refused first, with the time to wait,
        and nothing is charged or checked: it slows the address, locks no subject. Then the
        subject's attempt is charged *before* the code is looked at, so parallel guesses
        cannot outrun the budget: ``max_failures`` attempts are checked, the next one locks
        the subject (the person attacked, and only them). A success gives the charge back (the
        subject's count starts again). The client address is charged for failures only, so
        people sharing an address (NAT) do not hold each other back by succeeding.
        """
        now = self._clock()
        by_subject, by_client = subject_key(subject), client_key(client_ip)
        held = self._store.is_locked(by_client, now)
        if held is not None:
            self._log_outcome(subject, by_client, method, "slowed", logging.WARNING)
            raise SlowDownError(held, now)
        throttle = self._throttle
        until = self._store.is_locked(by_subject, now)
        if until is None:
            until = self._store.record_failure(
                by_subject, now, throttle.max_failures + 1, throttle.lockout
            )
            if until is not None:
                # This attempt locked the subject (the store counted it): said once, here;
                # the attempts refused while the lock lasts are not new lock-outs.
                self.events.emit(LockedOut(subject=subject))
        if until is not None:
            self._log_outcome(subject, by_client, method, "locked_out", logging.WARNING)
            raise LockedOutError(until)
        try:
            result = check(now)
        except InvalidCodeError as error:
            self._store.delay_after_failure(
                by_client,
                now,
                throttle.max_failures_per_ip,
                throttle.lockout,
                throttle.first_delay,
                throttle.max_delay,
            )
            self._log_outcome(subject, by_client, method, error.reason, logging.WARNING)
            raise
        self._store.reset_failures(by_subject)
        self._log_outcome(subject, by_client, method, "accepted", logging.INFO)
        return result

    def _matching_step(self, credential: TotpCredential, code: str, now: datetime.datetime) -> int:
        """The newest step within the window whose code is ``code``; else InvalidCodeError."""
        try:
            secret = self._cipher.decrypt(credential.secret, credential.subject).decode("ascii")
        except SecretUnreadableError:
            log.error(
                "totp secret of subject=%s does not decrypt (wrong key or tampered row)",
                credential.subject,
                extra={"event": "mfa.secret_unreadable", "subject": credential.subject},
            )
            raise
        totp = pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL)
        current = time_step(now)
        matches = [
            step
            for step in range(current - WINDOW, current + WINDOW + 1)
            # compare_digest on every candidate: the time taken does not say which step matched
            if hmac.compare_digest(totp.generate_otp(step), code)
        ]
        if not matches:
            raise InvalidCodeError("wrong")
        return max(matches)

    def _recovery_records(
        self, subject: str, codes: Sequence[str], now: datetime.datetime
    ) -> list[RecoveryCode]:
        records = []
        for index, code in enumerate(codes, start=1):
            canonical = normalise_recovery_code(code)
            if canonical is None:  # pragma: no cover - new_recovery_code makes valid codes
                raise ValueError("generated an invalid recovery code")
            records.append(RecoveryCode(subject, index, self._hasher.hash(canonical), now))
        return records

    @staticmethod
    def _log_outcome(subject: str, client: str, method: str, outcome: str, level: int) -> None:
        log.log(
            level,
            "second factor %s subject=%s client=%s: %s",
            method,
            subject,
            client,
            outcome,
            extra={
                "event": "mfa.attempt",
                "subject": subject,
                "client": client,
                "method": method,
                "outcome": outcome,
            },
        )


def _totp_code(code: str) -> str:
    typed = normalise_totp_code(code)
    if typed is None:
        # Not a guess at any code: refused without spending an attempt.
        raise InvalidCodeError("malformed")
    return typed


def time_step(moment: datetime.datetime) -> int:
    """The RFC 6238 §4.2 time step ``T = floor((unix time - T0) / X)`` with T0 = 0, X = 30."""
    if moment.utcoffset() is None:
        raise ValueError("moment must be timezone-aware")
    return int(moment.timestamp()) // INTERVAL


__all__ = [
    "AMR_OTP",
    "GATEWAY_AMR",
    "ISSUER",
    "REGION_LEVEL_CLAIM",
    "AlreadyEnrolledError",
    "BindingRefusedError",
    "BindingRule",
    "Enrolment",
    "FactorStatus",
    "FreshSignInNeededError",
    "InvalidCodeError",
    "LockedOutError",
    "MfaError",
    "NotEnrolledError",
    "RecoveryCodeHasher",
    "SlowDownError",
    "StrongerSignInNeededError",
    "ThrottlePolicy",
    "TotpService",
    "Verification",
    "client_key",
    "new_recovery_code",
    "normalise_recovery_code",
    "normalise_totp_code",
    "region_vouched_level",
    "subject_key",
    "time_step",
]
