"""What the contract suite's modules share: the clock, record factories, races, row counts.

Record factories make records as a caller would; ``_race`` runs an action in threads released
together by a barrier, so the operations really overlap.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import func, select

from gateway.store import (
    AccessTokenRecord,
    AuthorizationRequest,
    CodeRecord,
    Grant,
    PendingAuthorization,
    PendingStage,
    RefreshTokenRecord,
    SqlStore,
    SsoSession,
    Store,
    Subject,
    UpstreamLeg,
    token_hash,
)
from gateway.store.contract import RecoveryCode, TotpCredential
from gateway.store.schema import metadata, refresh_tokens

T = TypeVar("T")

NOW = datetime.datetime(2025, 3, 1, 8, 0, tzinfo=datetime.UTC)
MINUTE = datetime.timedelta(minutes=1)
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)
CLIENT = "zj-gov-portal"

SECRET = b"\x01ciphertext-of-a-totp-secret"
OTHER_SECRET = b"\x01ciphertext-of-another-secret"
STEP = 58_000_000  # an RFC 6238 time step of 2025
LOCKOUT = datetime.timedelta(minutes=15)

MIDWAY = "failure injected midway"
"""The message of the database error :func:`failing_updates` raises."""


def _key(name: str) -> str:
    """Stands for the HMAC of an identity number (gateway.identity.identity_key)."""
    return token_hash(f"identity:{name}")


def _code(
    grant: Grant, name: str = "code", *, expires_at: datetime.datetime | None = None
) -> CodeRecord:
    return CodeRecord(
        code_hash=token_hash(name),
        grant_id=grant.grant_id,
        client_id=grant.client_id,
        redirect_uri="https://portal.zj.gov.cn/callback",
        scope="openid profile",
        nonce="n-0S6_WzA2Mj",
        code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        code_challenge_method="S256",
        claims={"auth_time": 1740816000, "acr": "loa2", "amr": ["pwd", "otp"]},
        expires_at=expires_at or NOW + MINUTE,
    )


def _access(
    grant: Grant, name: str = "at", *, expires_at: datetime.datetime | None = None
) -> AccessTokenRecord:
    return AccessTokenRecord(
        token_hash=token_hash(name),
        grant_id=grant.grant_id,
        client_id=grant.client_id,
        subject=grant.subject,
        scope="openid profile",
        expires_at=expires_at or NOW + HOUR,
    )


def _refresh(
    grant: Grant, name: str = "rt", *, expires_at: datetime.datetime | None = None
) -> RefreshTokenRecord:
    return RefreshTokenRecord(
        token_hash=token_hash(name),
        grant_id=grant.grant_id,
        client_id=grant.client_id,
        subject=grant.subject,
        scope="openid profile offline_access",
        expires_at=expires_at or NOW + DAY,
    )


def _session(
    subject: Subject, name: str = "sso", *, expires_at: datetime.datetime | None = None
) -> SsoSession:
    return SsoSession(
        session_hash=token_hash(name),
        subject=subject.id,
        region="zj",
        auth_time=NOW,
        acr="loa2",
        amr=("pwd", "otp"),
        created_at=NOW,
        expires_at=expires_at or NOW + 8 * HOUR,
        claims={"name": "王小明", "phone_number_verified": True},
    )


def _pending_request(**changes: object) -> AuthorizationRequest:
    values: dict[str, object] = {
        "client_id": CLIENT,
        "redirect_uri": "https://portal.zj.gov.cn/callback",
        "scope": "openid profile",
        "state": "portal-state-Xy12",
        "nonce": "n-0S6_WzA2Mj",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
        "prompt": ("login",),
        "max_age": 300,
        "login_hint": "zhangsan",
        "acr_values": "loa2",
        "ui_locales": "zh-CN en",
        "hinted_subject": "sub-1",
        "region": "zj",
    } | changes
    return AuthorizationRequest(**values)  # type: ignore[arg-type]


def _leg(state: str = "upstream-state") -> UpstreamLeg:
    return UpstreamLeg(
        region="zj",
        state_hash=token_hash(state),
        nonce="upstream-nonce",
        code_verifier="dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        redirect_uri="https://tongxing.example.cn/callback/zj",
        started_at=1_740_816_000.5,
        max_age=300,
    )


def _pending(
    name: str = "pending",
    stage: PendingStage = PendingStage.AT_REGION,
    *,
    upstream: UpstreamLeg | None = None,
    expires_in: int = 10,
    **changes: object,
) -> PendingAuthorization:
    return PendingAuthorization(
        id_hash=token_hash(name),
        request=_pending_request(**changes),
        stage=stage,
        expires_at=NOW + expires_in * MINUTE,
        upstream=upstream
        if upstream is not None or stage is not PendingStage.AT_REGION
        else _leg(),
    )


def _race(threads: int, action: Callable[[int], T]) -> list[T | Exception]:
    """Run ``action(i)`` in ``threads`` threads released together; results or exceptions."""
    barrier = threading.Barrier(threads)

    def run(index: int) -> T | Exception:
        barrier.wait(timeout=30)
        try:
            return action(index)
        except Exception as error:  # collected and asserted on by the test
            return error

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(run, range(threads)))


def _count(store: SqlStore, table: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(metadata.tables[table])).scalar_one()


def _live_tokens(store: SqlStore, grant_id: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(
            select(func.count())
            .select_from(refresh_tokens)
            .where(refresh_tokens.c.grant_id == grant_id, refresh_tokens.c.status == "live")
        ).scalar_one()


def _recovery(subject: Subject, count: int = 3) -> list[RecoveryCode]:
    return [
        RecoveryCode(subject.id, i, f"scrypt$256$8$1$salt{i}$hash{i}", NOW)
        for i in range(1, count + 1)
    ]


def _enrolled(store: Store, subject: Subject) -> None:
    store.save_totp_credential(TotpCredential(subject.id, SECRET, NOW))
    assert store.confirm_totp_credential(subject.id, SECRET, STEP, _recovery(subject), NOW)


@contextmanager
def failing_updates(store: SqlStore, table: str) -> Iterator[None]:
    """Make every ``UPDATE`` of ``table`` fail inside the database, as a crash midway would.

    A trigger raises :data:`MIDWAY`: the operation under test runs unchanged up to that
    statement, and the test can then show that nothing it wrote before stayed.
    """
    if table not in metadata.tables:
        raise ValueError(f"no table {table!r}")
    if store.engine.dialect.name == "sqlite":
        create = [
            f"CREATE TRIGGER fail_midway BEFORE UPDATE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{MIDWAY}'); END"
        ]
        drop = ["DROP TRIGGER fail_midway"]
    else:
        create = [
            "CREATE FUNCTION fail_midway() RETURNS trigger LANGUAGE plpgsql "
            f"AS $$ BEGIN RAISE EXCEPTION '{MIDWAY}'; END $$",
            f"CREATE TRIGGER fail_midway BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION fail_midway()",
        ]
        drop = [f"DROP TRIGGER fail_midway ON {table}", "DROP FUNCTION fail_midway()"]
    with store.engine.begin() as conn:
        for statement in create:
            conn.exec_driver_sql(statement)
    try:
        yield
    finally:
        with store.engine.begin() as conn:
            for statement in drop:
                conn.exec_driver_sql(statement)
