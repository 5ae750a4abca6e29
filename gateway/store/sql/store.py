""":class:`SqlStore`: every aggregate's SQL class composed into the whole store."""

from __future__ import annotations

import datetime

from sqlalchemy import delete, exists, select, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from gateway.store import migrations
from gateway.store.contract import StoreUnavailableError
from gateway.store.engine import (
    DEFAULT_BUSY_TIMEOUT,
    DEFAULT_MAX_OVERFLOW,
    DEFAULT_POOL_SIZE,
    DEFAULT_POOL_TIMEOUT,
    create_store_engine,
)
from gateway.store.schema import (
    access_tokens,
    attempt_counters,
    authorization_codes,
    federation_registrations,
    grants,
    logout_deliveries,
    pending_authorizations,
    pushed_authorization_requests,
    refresh_tokens,
    session_participants,
    sso_sessions,
    used_assertions,
)
from gateway.store.sql.attempts import SqlAttempts
from gateway.store.sql.audit import SqlAudit
from gateway.store.sql.base import require_aware, unavailable
from gateway.store.sql.consents import SqlConsents
from gateway.store.sql.deliveries import SqlDeliveries
from gateway.store.sql.federation import SqlFederation  # issue 17
from gateway.store.sql.federation_registrations import SqlFederationRegistrations  # §12.2
from gateway.store.sql.mandates import SqlMandates
from gateway.store.sql.pending_authorizations import SqlPendingAuthorizations
from gateway.store.sql.policy_sets import SqlPolicySets
from gateway.store.sql.pushed_requests import SqlPushedRequests  # RFC 9126
from gateway.store.sql.registry import SqlRegistry
from gateway.store.sql.replay import SqlReplay
from gateway.store.sql.second_factors import SqlSecondFactors
from gateway.store.sql.sessions import SqlSessions
from gateway.store.sql.subjects import SqlSubjects
from gateway.store.sql.tokens import SqlTokens
from gateway.store.sql.verified_claims import SqlVerifiedClaims


class SqlStore(
    SqlSubjects,
    SqlRegistry,
    SqlTokens,
    SqlSessions,
    SqlPendingAuthorizations,
    SqlSecondFactors,
    SqlAttempts,
    SqlConsents,
    SqlReplay,
    SqlDeliveries,
    SqlAudit,
    SqlPolicySets,
    SqlMandates,
    SqlVerifiedClaims,
    SqlFederation,
    SqlFederationRegistrations,
    SqlPushedRequests,
):
    """:class:`~gateway.store.contract.Store` on SQLite or PostgreSQL.

    One class per aggregate, all on one engine (:class:`~gateway.store.sql.base.SqlBase`);
    this one adds what concerns the store as a whole (:class:`~gateway.store.contract.
    LifecycleStore`).
    """

    @classmethod
    def from_url(
        cls,
        url: str | URL,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        max_overflow: int = DEFAULT_MAX_OVERFLOW,
        pool_timeout: float = DEFAULT_POOL_TIMEOUT,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> SqlStore:
        """A store for ``sqlite:///path/to/file.db`` or ``postgresql[+psycopg]://...``."""
        return cls(
            create_store_engine(
                url,
                pool_size=pool_size,
                max_overflow=max_overflow,
                pool_timeout=pool_timeout,
                busy_timeout=busy_timeout,
            )
        )

    def __repr__(self) -> str:
        # Never the password of the URL.
        return f"SqlStore({self._engine.url.render_as_string(hide_password=True)!r})"

    def migrate(self) -> None:
        """Run the Alembic migrations up to the newest revision."""
        with unavailable():
            migrations.upgrade(self._engine)

    def healthy(self) -> bool:
        try:
            with self._read() as conn:
                return bool(conn.execute(text("SELECT 1")).scalar_one() == 1)
        except (SQLAlchemyError, StoreUnavailableError):
            return False

    def close(self) -> None:
        self._engine.dispose()

    def purge_expired(self, now: datetime.datetime) -> int:
        """Delete expired codes, pending authorizations, tokens, sessions, attempt counters,
        used assertions and logout deliveries, and spent revoked grants.

        Participants are deleted with their session and counted. A revoked grant goes once no
        code or token refers to it; a live grant stays (its session may still issue tokens).
        """
        require_aware(now=now)
        expired_sessions = select(sso_sessions.c.session_hash).where(
            sso_sessions.c.expires_at <= now
        )
        statements = [
            delete(authorization_codes).where(authorization_codes.c.expires_at <= now),
            delete(pending_authorizations).where(pending_authorizations.c.expires_at <= now),
            delete(access_tokens).where(access_tokens.c.expires_at <= now),
            delete(refresh_tokens).where(refresh_tokens.c.expires_at <= now),
            delete(session_participants).where(
                session_participants.c.session_hash.in_(expired_sessions)
            ),
            delete(sso_sessions).where(sso_sessions.c.expires_at <= now),
            delete(attempt_counters).where(attempt_counters.c.expires_at <= now),
            delete(used_assertions).where(used_assertions.c.expires_at <= now),
            delete(logout_deliveries).where(logout_deliveries.c.expires_at <= now),
            delete(federation_registrations).where(federation_registrations.c.expires_at <= now),
            delete(pushed_authorization_requests).where(
                pushed_authorization_requests.c.expires_at <= now
            ),
            delete(grants).where(
                grants.c.revoked_at.is_not(None),
                ~exists().where(authorization_codes.c.grant_id == grants.c.grant_id),
                ~exists().where(access_tokens.c.grant_id == grants.c.grant_id),
                ~exists().where(refresh_tokens.c.grant_id == grants.c.grant_id),
            ),
        ]
        with self._write() as conn:
            return sum(conn.execute(statement).rowcount for statement in statements)


__all__ = ["SqlStore"]
