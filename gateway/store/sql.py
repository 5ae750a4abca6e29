"""The store on SQL: SQLite (embedded default) and PostgreSQL, with SQLAlchemy Core.

How the single-use and one-live-token guarantees hold on both engines:

* Single use (codes, ``state``, session end) is one conditional ``UPDATE ... WHERE <still
  unused> RETURNING``. On PostgreSQL a concurrent updater blocks on the row lock and re-checks
  the condition once the first one commits, so it matches nothing; on SQLite every write
  transaction starts with ``BEGIN IMMEDIATE``, so writers run one at a time.
* Everything that changes a refresh token family (issue, rotation, revocation) first locks the
  grant row (``SELECT ... FOR UPDATE`` on PostgreSQL; the database lock on SQLite), and a
  partial unique index allows one live token per grant whatever happens. On PostgreSQL the
  successful issue and rotation are each one statement (the lock in a CTE, the inserts fed by
  the UPDATE's ``RETURNING``), run in autocommit; when such a statement writes nothing, the
  transactional path runs and says why (reuse, expiry, revocation), so every refusal is
  decided under the lock as before.
* Identity linking inserts with ``ON CONFLICT DO NOTHING`` and reads back, so concurrent first
  logins agree on one subject.
* A TOTP time step is accepted by one conditional ``UPDATE ... WHERE last_accepted_step <
  :step`` (the same row-lock argument as single use), and a recovery code is spent by
  ``UPDATE ... WHERE used_at IS NULL``.
* An attempt counter is made to exist (``INSERT ... ON CONFLICT DO NOTHING``), then locked
  (``SELECT ... FOR UPDATE``) and updated, so concurrent failures from several replicas are all
  counted.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Row,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, RowMapping
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, SQLAlchemyError

from gateway.store import migrations
from gateway.store.contract import (
    AccessTokenRecord,
    CodeNotFoundError,
    CodeRecord,
    CodeReplayedError,
    Consent,
    DuplicateRecordError,
    Grant,
    GrantNotFoundError,
    JsonObject,
    LoginTransaction,
    LoginTransactionNotFoundError,
    RecordNotFoundError,
    RecoveryCode,
    RefreshTokenNotFoundError,
    RefreshTokenRecord,
    RefreshTokenReuseError,
    RefreshTokenStatus,
    RegistryDocument,
    RegistryKind,
    RevisionConflictError,
    SessionNotFoundError,
    SessionParticipant,
    SsoSession,
    StoreUnavailableError,
    Subject,
    SubjectLink,
    SubjectLinkConflictError,
    SubjectNotFoundError,
    TotpCredential,
    token_hash,
)
from gateway.store.engine import (
    DEFAULT_BUSY_TIMEOUT,
    DEFAULT_MAX_OVERFLOW,
    DEFAULT_POOL_SIZE,
    DEFAULT_POOL_TIMEOUT,
    READ_ONLY,
    create_store_engine,
)
from gateway.store.schema import (
    access_tokens,
    attempt_counters,
    authorization_codes,
    consents,
    grants,
    login_transactions,
    portals,
    recovery_codes,
    refresh_tokens,
    regions,
    session_participants,
    sso_sessions,
    subject_links,
    subjects,
    totp_credentials,
    used_assertions,
)

_REGISTRY_TABLES: dict[RegistryKind, Table] = {
    RegistryKind.REGION: regions,
    RegistryKind.PORTAL: portals,
}

_Insert = postgresql.Insert | sqlite.Insert


def _grant_is_live(grant_id: ColumnElement[str]) -> ColumnElement[bool]:
    return exists().where(and_(grants.c.grant_id == grant_id, grants.c.revoked_at.is_(None)))


# --- the statements of the token endpoints ------------------------------------------------------
#
# Built once, with named parameters, and executed with a dictionary of values: SQLAlchemy then
# neither builds the expression nor computes its cache key on every request (it memoises both on
# the statement object), which is most of what a statement costs on the Python side. PostgreSQL
# prepares them after a few uses (psycopg's prepare threshold).

_SESSION_COLUMNS = [column.label(f"session_{column.name}") for column in sso_sessions.c]
_LIVE_SESSION_OF_GRANT = and_(
    sso_sessions.c.session_hash == grants.c.session_hash,
    sso_sessions.c.ended_at.is_(None),
    sso_sessions.c.expires_at > bindparam("now"),
)
_GRANT = select(grants).where(grants.c.grant_id == bindparam("grant_id"))
_LOCK_GRANT = _GRANT.with_for_update()  # renders without FOR UPDATE on SQLite (BEGIN IMMEDIATE)
_GRANT_SESSION = (
    select(grants, *_SESSION_COLUMNS)
    .select_from(grants.outerjoin(sso_sessions, _LIVE_SESSION_OF_GRANT))
    .where(grants.c.grant_id == bindparam("grant_id"))
)
_ACCESS_TOKEN = select(access_tokens).where(
    access_tokens.c.token_hash == bindparam("hash_"),
    access_tokens.c.expires_at > bindparam("now"),
    _grant_is_live(access_tokens.c.grant_id),
)
_ACCESS_TOKEN_SESSION = (
    select(access_tokens, *_SESSION_COLUMNS)
    .select_from(
        access_tokens.join(grants, grants.c.grant_id == access_tokens.c.grant_id).outerjoin(
            sso_sessions, _LIVE_SESSION_OF_GRANT
        )
    )
    .where(
        access_tokens.c.token_hash == bindparam("hash_"),
        access_tokens.c.expires_at > bindparam("now"),
        grants.c.revoked_at.is_(None),
    )
)
_LIVE_REFRESH_TOKEN = and_(
    refresh_tokens.c.token_hash == bindparam("hash_"),
    refresh_tokens.c.status == RefreshTokenStatus.LIVE.value,
    refresh_tokens.c.expires_at > bindparam("now"),
)
_REFRESH_TOKEN = select(refresh_tokens).where(
    _LIVE_REFRESH_TOKEN, _grant_is_live(refresh_tokens.c.grant_id)
)
_REFRESH_TOKEN_SESSION = (
    select(refresh_tokens, *_SESSION_COLUMNS)
    .select_from(
        refresh_tokens.join(grants, grants.c.grant_id == refresh_tokens.c.grant_id).outerjoin(
            sso_sessions, _LIVE_SESSION_OF_GRANT
        )
    )
    .where(_LIVE_REFRESH_TOKEN, grants.c.revoked_at.is_(None))
)
_ANY_REFRESH_TOKEN = select(refresh_tokens).where(refresh_tokens.c.token_hash == bindparam("hash_"))
# The family lock of a rotation: the grant row of the presented token, found in one statement.
_LOCK_FAMILY = (
    select(grants)
    .where(
        grants.c.grant_id
        == select(refresh_tokens.c.grant_id)
        .where(refresh_tokens.c.token_hash == bindparam("hash_"))
        .scalar_subquery()
    )
    .with_for_update()
)
# Under the family lock: the presented token, if still live and of the family the new one
# continues, becomes rotated. Nothing else can change it meanwhile.
_ROTATE = (
    update(refresh_tokens)
    .where(
        _LIVE_REFRESH_TOKEN,
        refresh_tokens.c.grant_id == bindparam("family_grant"),
        refresh_tokens.c.client_id == bindparam("family_client"),
        refresh_tokens.c.subject == bindparam("family_subject"),
    )
    .values(status=RefreshTokenStatus.ROTATED.value)
    .returning(*refresh_tokens.c)
)
# PostgreSQL only: a whole successful rotation as one statement, in autocommit. The family CTE
# locks the grant row (FOR UPDATE); the UPDATE then re-checks the token against the newest
# committed version of its row (READ COMMITTED), so of concurrent rotations only one matches.
# The inserts take their rows from the UPDATE's RETURNING: nothing is inserted unless the old
# token was rotated, and all of it commits or none. No row back means "not rotated": the
# transactional path then finds out why (reuse, expiry, revocation) and acts on it.
_FAMILY = (
    select(grants.c.grant_id)
    .where(
        grants.c.grant_id
        == select(refresh_tokens.c.grant_id)
        .where(refresh_tokens.c.token_hash == bindparam("hash_"))
        .scalar_subquery(),
        grants.c.grant_id == bindparam("family_grant"),
        grants.c.revoked_at.is_(None),
    )
    .with_for_update()
    .cte("family")
)
_ROTATED = (
    update(refresh_tokens)
    .where(
        _LIVE_REFRESH_TOKEN,
        refresh_tokens.c.grant_id == _FAMILY.c.grant_id,
        refresh_tokens.c.client_id == bindparam("family_client"),
        refresh_tokens.c.subject == bindparam("family_subject"),
    )
    .values(status=RefreshTokenStatus.ROTATED.value)
    .returning(*refresh_tokens.c)
    .cte("rotated")
)


# PostgreSQL only, likewise: a code exchange's first tokens in one statement, under the lock of
# a grant that is live and belongs to their client and subject (else no row: the transactional
# path then raises the right error).
_ISSUABLE = (
    select(grants.c.grant_id, grants.c.client_id, grants.c.subject)
    .where(
        grants.c.grant_id == bindparam("family_grant"),
        grants.c.client_id == bindparam("family_client"),
        grants.c.subject == bindparam("family_subject"),
        grants.c.revoked_at.is_(None),
    )
    .with_for_update()
    .cte("issuable")
)
_TOKEN_COLUMNS = ["token_hash", "grant_id", "client_id", "subject", "scope", "expires_at"]


def _insert_tokens_from(source: Any, table: Table, prefix: str) -> Any:
    """``INSERT INTO table SELECT <new token> FROM source``, as a CTE (PostgreSQL)."""
    columns = list(_TOKEN_COLUMNS)
    values = [
        bindparam(f"{prefix}_hash", type_=table.c.token_hash.type),
        source.c.grant_id,
        source.c.client_id,
        source.c.subject,
        bindparam(f"{prefix}_scope", type_=table.c.scope.type),
        bindparam(f"{prefix}_expires", type_=table.c.expires_at.type),
    ]
    if table is refresh_tokens:
        columns.append("status")
        values.append(literal(RefreshTokenStatus.LIVE.value))
    return (
        table.insert()
        .from_select(columns, select(*values))
        .returning(table.c.token_hash)
        .cte(f"{source.name}_{prefix}")
    )


def _tokens_in_one(source: Any, result: Any) -> dict[bool, Any]:
    """The statement, without and with an access token, keyed by whether there is one."""
    refresh = _insert_tokens_from(source, refresh_tokens, "refresh")
    access = _insert_tokens_from(source, access_tokens, "access")
    return {False: result(refresh).add_cte(refresh), True: result(refresh).add_cte(refresh, access)}


_ROTATE_IN_ONE = _tokens_in_one(_ROTATED, lambda _: select(_ROTATED))
_ISSUE_IN_ONE = _tokens_in_one(_ISSUABLE, lambda refresh: select(refresh.c.token_hash))


_REDEEM_CODE = (
    update(authorization_codes)
    .where(
        authorization_codes.c.code_hash == bindparam("code_hash_"),
        authorization_codes.c.redeemed_at.is_(None),
        authorization_codes.c.expires_at > bindparam("now"),
        _grant_is_live(authorization_codes.c.grant_id),
    )
    .values(redeemed_at=bindparam("now"))
    .returning(*authorization_codes.c)
)
_CODE = select(authorization_codes.c.grant_id, authorization_codes.c.redeemed_at).where(
    authorization_codes.c.code_hash == bindparam("code_hash_")
)


_LIVE_SESSION = select(sso_sessions).where(
    sso_sessions.c.session_hash == bindparam("session_hash_"),
    sso_sessions.c.ended_at.is_(None),
    sso_sessions.c.expires_at > bindparam("now"),
)
_PARTICIPANT = select(session_participants).where(
    session_participants.c.session_hash == bindparam("session_hash_"),
    session_participants.c.client_id == bindparam("client_id_"),
)


@functools.cache
def _add_participant(postgres: bool) -> Any:
    """Join a portal to a session unless it already participates (keeping its first ``sid``)."""
    insert = postgresql.insert if postgres else sqlite.insert
    return insert(session_participants).on_conflict_do_nothing(
        index_elements=[session_participants.c.session_hash, session_participants.c.client_id]
    )


@functools.cache
def _insert_into(table: Table) -> Any:
    """``INSERT INTO table`` with the columns of the values it is executed with (built once)."""
    return table.insert()


class SqlStore:
    """:class:`~gateway.store.contract.Store` on SQLite or PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {engine.dialect.name!r}")
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        # Shares the pool. Reads (see _read), and on PostgreSQL also the writes that are one
        # statement, atomic by themselves: in autocommit they cost one round trip, no BEGIN or
        # COMMIT.
        read_options: dict[str, Any] = {READ_ONLY: True}
        if self._postgres:
            read_options["isolation_level"] = "AUTOCOMMIT"
        self._reader = engine.execution_options(**read_options)

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

    @property
    def engine(self) -> Engine:
        return self._engine

    def __repr__(self) -> str:
        # Never the password of the URL.
        return f"SqlStore({self._engine.url.render_as_string(hide_password=True)!r})"

    # --- lifecycle ------------------------------------------------------------------------------

    def migrate(self) -> None:
        """Run the Alembic migrations up to the newest revision."""
        with _unavailable():
            migrations.upgrade(self._engine)

    def healthy(self) -> bool:
        try:
            with self._read() as conn:
                return bool(conn.execute(text("SELECT 1")).scalar_one() == 1)
        except (SQLAlchemyError, StoreUnavailableError):
            return False

    def close(self) -> None:
        self._engine.dispose()

    # --- national subjects ----------------------------------------------------------------------

    def link_subject(
        self, identity_key: str, region: str, upstream_sub: str, now: datetime.datetime
    ) -> Subject:
        _require_text(identity_key=identity_key, region=region, upstream_sub=upstream_sub)
        _require_aware(now=now)
        with self._write() as conn:
            linked = conn.execute(
                select(subjects)
                .join(subject_links, subject_links.c.subject_id == subjects.c.id)
                .where(
                    subject_links.c.region == region,
                    subject_links.c.upstream_sub == upstream_sub,
                )
            ).first()
            if linked is not None:
                if linked.identity_key != identity_key:
                    raise SubjectLinkConflictError(region)
                return _subject(linked)
            # Two first logins of one person race here: the unique identity_key lets one insert
            # win, and both read back the same row.
            conn.execute(
                self._insert(subjects)
                .values(id=uuid.uuid4().hex, identity_key=identity_key, created_at=now)
                .on_conflict_do_nothing(index_elements=[subjects.c.identity_key])
            )
            subject = conn.execute(
                select(subjects).where(subjects.c.identity_key == identity_key)
            ).one()
            conn.execute(
                self._insert(subject_links)
                .values(
                    region=region, upstream_sub=upstream_sub, subject_id=subject.id, created_at=now
                )
                .on_conflict_do_nothing(
                    index_elements=[subject_links.c.region, subject_links.c.upstream_sub]
                )
            )
            linked_to = conn.execute(
                select(subject_links.c.subject_id).where(
                    subject_links.c.region == region,
                    subject_links.c.upstream_sub == upstream_sub,
                )
            ).scalar_one()
            if linked_to != subject.id:
                # Raised inside the transaction: a subject created just now is rolled back.
                raise SubjectLinkConflictError(region)
            return _subject(subject)

    def get_subject(self, subject_id: str) -> Subject | None:
        with self._read() as conn:
            row = conn.execute(select(subjects).where(subjects.c.id == subject_id)).first()
        return None if row is None else _subject(row)

    def find_subject(self, region: str, upstream_sub: str) -> Subject | None:
        with self._read() as conn:
            row = conn.execute(
                select(subjects)
                .join(subject_links, subject_links.c.subject_id == subjects.c.id)
                .where(
                    subject_links.c.region == region,
                    subject_links.c.upstream_sub == upstream_sub,
                )
            ).first()
        return None if row is None else _subject(row)

    def list_subject_links(self, subject_id: str) -> list[SubjectLink]:
        with self._read() as conn:
            rows = conn.execute(
                select(subject_links)
                .where(subject_links.c.subject_id == subject_id)
                .order_by(subject_links.c.region, subject_links.c.upstream_sub)
            ).all()
        return [
            SubjectLink(row.region, row.upstream_sub, row.subject_id, row.created_at)
            for row in rows
        ]

    # --- registry -------------------------------------------------------------------------------

    def put_document(
        self,
        kind: RegistryKind,
        key: str,
        document: Mapping[str, Any],
        now: datetime.datetime,
        *,
        expected_revision: int | None = None,
    ) -> RegistryDocument:
        table = _REGISTRY_TABLES[RegistryKind(kind)]
        _require_text(key=key)
        _require_aware(now=now)
        body = _json_object(document, "document")
        if expected_revision is not None and expected_revision < 0:
            raise ValueError("expected_revision must be None, 0 (create) or a revision")
        with self._write() as conn:
            row: Row[Any] | None
            if expected_revision is None:
                upsert = self._insert(table).values(
                    key=key, document=body, revision=1, created_at=now, updated_at=now
                )
                row = conn.execute(
                    upsert.on_conflict_do_update(
                        index_elements=[table.c.key],
                        set_={
                            "document": upsert.excluded.document,
                            "revision": table.c.revision + 1,
                            "updated_at": upsert.excluded.updated_at,
                        },
                    ).returning(*table.c)
                ).one()
            elif expected_revision == 0:
                row = conn.execute(
                    self._insert(table)
                    .values(key=key, document=body, revision=1, created_at=now, updated_at=now)
                    .on_conflict_do_nothing(index_elements=[table.c.key])
                    .returning(*table.c)
                ).first()
            else:
                row = conn.execute(
                    update(table)
                    .where(table.c.key == key, table.c.revision == expected_revision)
                    .values(document=body, revision=expected_revision + 1, updated_at=now)
                    .returning(*table.c)
                ).first()
            if row is None:
                actual = conn.execute(
                    select(table.c.revision).where(table.c.key == key)
                ).scalar_one_or_none()
                raise RevisionConflictError(RegistryKind(kind), key, expected_revision or 0, actual)
            return _document(RegistryKind(kind), row)

    def get_document(self, kind: RegistryKind, key: str) -> RegistryDocument | None:
        table = _REGISTRY_TABLES[RegistryKind(kind)]
        with self._read() as conn:
            row = conn.execute(select(table).where(table.c.key == key)).first()
        return None if row is None else _document(RegistryKind(kind), row)

    def list_documents(self, kind: RegistryKind) -> list[RegistryDocument]:
        table = _REGISTRY_TABLES[RegistryKind(kind)]
        with self._read() as conn:
            rows = conn.execute(select(table).order_by(table.c.key)).all()
        return [_document(RegistryKind(kind), row) for row in rows]

    def delete_document(
        self, kind: RegistryKind, key: str, *, expected_revision: int | None = None
    ) -> bool:
        table = _REGISTRY_TABLES[RegistryKind(kind)]
        if expected_revision is not None and expected_revision < 1:
            raise ValueError("expected_revision must be None or a revision")
        with self._write() as conn:
            condition = table.c.key == key
            if expected_revision is not None:
                condition = and_(condition, table.c.revision == expected_revision)
            if conn.execute(delete(table).where(condition)).rowcount > 0:
                return True
            if expected_revision is None:
                return False
            actual = conn.execute(
                select(table.c.revision).where(table.c.key == key)
            ).scalar_one_or_none()
            raise RevisionConflictError(RegistryKind(kind), key, expected_revision, actual)

    # --- grants ---------------------------------------------------------------------------------

    def create_grant(
        self,
        client_id: str,
        subject: str,
        now: datetime.datetime,
        *,
        session_hash: str | None = None,
    ) -> Grant:
        _require_text(client_id=client_id, subject=subject)
        _require_aware(now=now)
        grant = Grant(uuid.uuid4().hex, client_id, subject, session_hash, now)
        with self._write() as conn:
            if session_hash is not None and self._live_session(conn, session_hash, now) is None:
                raise SessionNotFoundError("the grant's SSO session is unknown, ended or expired")
            conn.execute(
                grants.insert().values(
                    grant_id=grant.grant_id,
                    client_id=client_id,
                    subject=subject,
                    session_hash=session_hash,
                    created_at=now,
                )
            )
        return grant

    def get_grant(self, grant_id: str) -> Grant | None:
        with self._read() as conn:
            row = conn.execute(select(grants).where(grants.c.grant_id == grant_id)).first()
        return None if row is None else _grant(row)

    def get_grant_session(
        self, grant_id: str, now: datetime.datetime
    ) -> tuple[Grant, SsoSession | None] | None:
        _require_aware(now=now)
        with self._read() as conn:
            row = conn.execute(_GRANT_SESSION, {"grant_id": grant_id, "now": now}).first()
        if row is None:
            return None
        return _grant(row), _joined_session(row)

    def revoke_grant(self, grant_id: str, now: datetime.datetime) -> bool:
        _require_aware(now=now)
        with self._write() as conn:
            return bool(self._revoke_grants(conn, grants.c.grant_id == grant_id, now))

    def revoke_session_grants(self, session_hash: str, now: datetime.datetime) -> list[str]:
        _require_aware(now=now)
        with self._write() as conn:
            return self._revoke_grants(conn, grants.c.session_hash == session_hash, now)

    # --- authorization codes --------------------------------------------------------------------

    def save_code(self, code: CodeRecord) -> None:
        _require_text(code_hash=code.code_hash)
        claims = _json_object(code.claims, "claims")
        with self._write() as conn:
            self._issuable_grant(conn, code.grant_id, code.client_id, subject=None)
            self._insert_code(conn, code, claims)

    def issue_code(
        self,
        code: CodeRecord,
        subject: str,
        now: datetime.datetime,
        *,
        session_hash: str | None,
        sid: str,
    ) -> tuple[CodeRecord, Grant]:
        _require_text(code_hash=code.code_hash, client_id=code.client_id, subject=subject, sid=sid)
        _require_aware(now=now)
        claims = dict(_json_object(code.claims, "claims"))
        grant = Grant(uuid.uuid4().hex, code.client_id, subject, session_hash, now)
        with self._write() as conn:
            if session_hash is not None and self._live_session(conn, session_hash, now) is None:
                raise SessionNotFoundError("the grant's SSO session is unknown, ended or expired")
            values: dict[str, Any] = {
                "grant_id": grant.grant_id,
                "client_id": grant.client_id,
                "subject": subject,
                "session_hash": session_hash,
                "created_at": now,
            }
            conn.execute(_insert_into(grants), values)
            if session_hash is not None:
                claims["sid"] = self._join_session(conn, session_hash, code.client_id, sid, now).sid
            stored = dataclasses.replace(code, grant_id=grant.grant_id, claims=claims)
            self._insert_code(conn, stored, claims)
        return stored, grant

    def redeem_code(self, code_hash: str, now: datetime.datetime) -> CodeRecord:
        _require_aware(now=now)
        values = {"code_hash_": code_hash, "now": now}
        if self._postgres:
            # The conditional UPDATE alone is atomic: in autocommit it is one round trip. Only
            # a code it did not redeem needs the transaction below (to tell replay from unknown).
            with _unavailable(), self._reader.connect() as conn:
                redeemed = conn.execute(_REDEEM_CODE, values).first()
            if redeemed is not None:
                return _code(redeemed)
        with self._write() as conn:
            redeemed = conn.execute(_REDEEM_CODE, values).first()
            if redeemed is not None:
                return _code(redeemed)
            seen = conn.execute(_CODE, values).first()
            if seen is None or seen.redeemed_at is None:
                raise CodeNotFoundError("authorization code is unknown, expired or revoked")
            # RFC 6749 §4.1.2: the code was used before, so revoke what it yielded. Committed
            # before the error is raised, so the revocation stands.
            replayed_grant: str = seen.grant_id
            self._revoke_grants(conn, grants.c.grant_id == replayed_grant, now)
        raise CodeReplayedError(replayed_grant)

    # --- access tokens --------------------------------------------------------------------------

    def save_access_token(self, token: AccessTokenRecord) -> None:
        _require_text(token_hash=token.token_hash)
        with self._write() as conn:
            self._issuable_grant(conn, token.grant_id, token.client_id, subject=token.subject)
            self._insert_access_token(conn, token)

    def get_access_token(self, token_hash: str, now: datetime.datetime) -> AccessTokenRecord | None:
        _require_aware(now=now)
        with self._read() as conn:
            row = conn.execute(_ACCESS_TOKEN, {"hash_": token_hash, "now": now}).first()
        return None if row is None else _access_token(row)

    def get_access_token_session(
        self, token_hash: str, now: datetime.datetime
    ) -> tuple[AccessTokenRecord, SsoSession | None] | None:
        _require_aware(now=now)
        values = {"hash_": token_hash, "now": now}
        with self._read() as conn:
            row = conn.execute(_ACCESS_TOKEN_SESSION, values).first()
        return None if row is None else (_access_token(row), _joined_session(row))

    def revoke_access_token(self, token_hash: str) -> bool:
        with self._write() as conn:
            result = conn.execute(
                delete(access_tokens).where(access_tokens.c.token_hash == token_hash)
            )
            return result.rowcount > 0

    # --- refresh tokens -------------------------------------------------------------------------

    def save_refresh_token(
        self, token: RefreshTokenRecord, *, access_token: AccessTokenRecord | None = None
    ) -> None:
        _require_text(token_hash=token.token_hash)
        if token.status is not RefreshTokenStatus.LIVE:
            raise ValueError("a new refresh token must be live")
        if access_token is not None:
            _require_text(access_token_hash=access_token.token_hash)
            if (access_token.grant_id, access_token.client_id, access_token.subject) != (
                token.grant_id,
                token.client_id,
                token.subject,
            ):
                raise ValueError("the access token must belong to the same grant")
        if self._postgres and self._tokens_in_one_statement(_ISSUE_IN_ONE, token, access_token, {}):
            return
        with self._write() as conn:
            self._issuable_grant(
                conn, token.grant_id, token.client_id, subject=token.subject, lock=True
            )
            self._insert_refresh_token(conn, token)
            if access_token is not None:
                self._insert_access_token(conn, access_token)

    def get_refresh_token(
        self, token_hash: str, now: datetime.datetime
    ) -> RefreshTokenRecord | None:
        _require_aware(now=now)
        with self._read() as conn:
            row = conn.execute(_REFRESH_TOKEN, {"hash_": token_hash, "now": now}).first()
        return None if row is None else _refresh_token(row)

    def get_refresh_token_session(
        self, token_hash: str, now: datetime.datetime
    ) -> tuple[RefreshTokenRecord, SsoSession | None] | None:
        _require_aware(now=now)
        values = {"hash_": token_hash, "now": now}
        with self._read() as conn:
            row = conn.execute(_REFRESH_TOKEN_SESSION, values).first()
        return None if row is None else (_refresh_token(row), _joined_session(row))

    def rotate_refresh_token(
        self,
        old_hash: str,
        new: RefreshTokenRecord,
        now: datetime.datetime,
        *,
        access_token: AccessTokenRecord | None = None,
    ) -> RefreshTokenRecord:
        _require_aware(now=now)
        _require_text(token_hash=new.token_hash)
        if new.status is not RefreshTokenStatus.LIVE:
            raise ValueError("the new refresh token must be live")
        family_of = (new.grant_id, new.client_id, new.subject)
        if access_token is not None:
            _require_text(access_token_hash=access_token.token_hash)
            if (access_token.grant_id, access_token.client_id, access_token.subject) != family_of:
                raise ValueError("the access token must belong to the same grant")
        if self._postgres:
            values = {"hash_": old_hash, "now": now}
            done = self._tokens_in_one_statement(_ROTATE_IN_ONE, new, access_token, values)
            if done is not None:
                return _refresh_token(done)
        with self._write() as conn:
            # The grant row is the family's lock: rotations and revocations of one family run
            # one after the other, and each sees what the previous one committed.
            grant = conn.execute(_LOCK_FAMILY, {"hash_": old_hash}).first()
            if grant is None:
                raise RefreshTokenNotFoundError("refresh token is unknown")
            if grant.revoked_at is None:
                rotated = conn.execute(
                    _ROTATE,
                    {
                        "hash_": old_hash,
                        "now": now,
                        "family_grant": new.grant_id,
                        "family_client": new.client_id,
                        "family_subject": new.subject,
                    },
                ).first()
                if rotated is not None:
                    self._insert_refresh_token(conn, new)
                    if access_token is not None:
                        # The grant is locked and was checked live above: nothing more to check.
                        self._insert_access_token(conn, access_token)
                    return _refresh_token(rotated)
            # Not rotated: find out why.
            old = _refresh_token(conn.execute(_ANY_REFRESH_TOKEN, {"hash_": old_hash}).one())
            if old.status is not RefreshTokenStatus.ROTATED:
                if (
                    old.status is RefreshTokenStatus.LIVE
                    and old.expires_at > now
                    and grant.revoked_at is None
                ):
                    raise ValueError("the new refresh token must continue the same grant")
                raise RefreshTokenNotFoundError("refresh token is expired or revoked")
            # RFC 9700 §4.14.2: a rotated token came back. One of the two holders is an
            # attacker; revoke the family. Committed before the error is raised.
            self._revoke_grants(conn, grants.c.grant_id == old.grant_id, now)
        raise RefreshTokenReuseError(old.grant_id)

    def _tokens_in_one_statement(
        self,
        statements: Mapping[bool, Any],
        new: RefreshTokenRecord,
        access_token: AccessTokenRecord | None,
        values: dict[str, Any],
    ) -> Row[Any] | None:
        """Run one of the single-statement token writes (PostgreSQL); its row, if it wrote."""
        values |= {
            "family_grant": new.grant_id,
            "family_client": new.client_id,
            "family_subject": new.subject,
            "refresh_hash": new.token_hash,
            "refresh_scope": new.scope,
            "refresh_expires": new.expires_at,
        }
        if access_token is not None:
            values |= {
                "access_hash": access_token.token_hash,
                "access_scope": access_token.scope,
                "access_expires": access_token.expires_at,
            }
        try:
            with _unavailable(), self._reader.connect() as conn:
                return conn.execute(statements[access_token is not None], values).first()
        except IntegrityError as error:
            raise DuplicateRecordError(
                "this refresh token (or a live one in its family) or access token already exists"
            ) from error

    # --- SSO sessions ---------------------------------------------------------------------------

    def create_session(self, session: SsoSession) -> None:
        _require_text(session_hash=session.session_hash, region=session.region)
        amr = [str(method) for method in session.amr]
        claims = _json_object(session.claims, "claims")
        with self._write() as conn:
            known = conn.execute(
                select(subjects.c.id).where(subjects.c.id == session.subject)
            ).first()
            if known is None:
                raise SubjectNotFoundError("the session's subject is unknown")
            self._insert_new(
                conn,
                sso_sessions,
                "SSO session",
                session_hash=session.session_hash,
                subject=session.subject,
                region=session.region,
                auth_time=session.auth_time,
                acr=session.acr,
                amr=amr,
                claims=claims,
                created_at=session.created_at,
                expires_at=session.expires_at,
                ended_at=session.ended_at,
            )

    def get_session(self, session_hash: str, now: datetime.datetime) -> SsoSession | None:
        _require_aware(now=now)
        with self._read() as conn:
            row = self._live_session(conn, session_hash, now)
        return None if row is None else _session(row._mapping)

    def raise_session_assurance(
        self, session_hash: str, acr: str, amr: tuple[str, ...], now: datetime.datetime
    ) -> SsoSession:
        _require_text(acr=acr)
        _require_aware(now=now)
        with self._write() as conn:
            if self._live_session(conn, session_hash, now) is None:
                raise SessionNotFoundError("the SSO session is unknown, ended or expired")
            conn.execute(
                update(sso_sessions)
                .where(sso_sessions.c.session_hash == session_hash)
                .values(acr=acr, amr=list(amr))
            )
        session = self.get_session(session_hash, now)
        if session is None:  # ended between the two statements
            raise SessionNotFoundError("the SSO session is unknown, ended or expired")
        return session

    def add_participant(
        self, session_hash: str, client_id: str, sid: str, now: datetime.datetime
    ) -> SessionParticipant:
        _require_text(client_id=client_id, sid=sid)
        _require_aware(now=now)
        with self._write() as conn:
            if self._live_session(conn, session_hash, now) is None:
                raise SessionNotFoundError("the SSO session is unknown, ended or expired")
            return self._join_session(conn, session_hash, client_id, sid, now)

    def list_participants(self, session_hash: str) -> list[SessionParticipant]:
        with self._read() as conn:
            return self._participants(conn, session_hash)

    def end_session(self, session_hash: str, now: datetime.datetime) -> list[SessionParticipant]:
        _require_aware(now=now)
        with self._write() as conn:
            ended = conn.execute(
                update(sso_sessions)
                .where(
                    sso_sessions.c.session_hash == session_hash, sso_sessions.c.ended_at.is_(None)
                )
                .values(ended_at=now)
                .returning(sso_sessions.c.session_hash)
            ).first()
            if ended is None:
                return []
            return self._participants(conn, session_hash)

    # --- upstream login transactions ------------------------------------------------------------

    def save_login_transaction(self, transaction: LoginTransaction) -> None:
        _require_text(
            state_hash=transaction.state_hash,
            region=transaction.region,
            nonce=transaction.nonce,
            code_verifier=transaction.code_verifier,
        )
        request = _json_object(transaction.request, "request")
        with self._write() as conn:
            self._insert_new(
                conn,
                login_transactions,
                "login transaction",
                state_hash=transaction.state_hash,
                region=transaction.region,
                nonce=transaction.nonce,
                code_verifier=transaction.code_verifier,
                request=request,
                expires_at=transaction.expires_at,
                consumed_at=transaction.consumed_at,
            )

    def consume_login_transaction(
        self, state_hash: str, now: datetime.datetime
    ) -> LoginTransaction:
        _require_aware(now=now)
        table = login_transactions
        with self._write() as conn:
            row = conn.execute(
                update(table)
                .where(
                    table.c.state_hash == state_hash,
                    table.c.consumed_at.is_(None),
                    table.c.expires_at > now,
                )
                .values(consumed_at=now)
                .returning(*table.c)
            ).first()
        if row is None:
            raise LoginTransactionNotFoundError("state is unknown, expired or already used")
        return LoginTransaction(
            state_hash=row.state_hash,
            region=row.region,
            nonce=row.nonce,
            code_verifier=row.code_verifier,
            request=row.request,
            expires_at=row.expires_at,
            consumed_at=row.consumed_at,
        )

    # --- second factor --------------------------------------------------------------------------

    def save_totp_credential(self, credential: TotpCredential) -> None:
        _require_text(subject=credential.subject)
        if credential.confirmed_at is not None:
            raise ValueError("a new TOTP credential must be pending (confirmed_at None)")
        if not credential.secret:
            raise ValueError("secret must not be empty")
        table = totp_credentials
        with self._write() as conn:
            known = conn.execute(
                select(subjects.c.id).where(subjects.c.id == credential.subject)
            ).first()
            if known is None:
                raise SubjectNotFoundError("the credential's subject is unknown")
            upsert = self._insert(table).values(
                subject=credential.subject,
                secret=credential.secret,
                created_at=credential.created_at,
                confirmed_at=None,
                last_accepted_step=None,
                last_used_at=None,
            )
            # Replace a pending enrolment only: a confirmed factor is never overwritten here.
            stored = conn.execute(
                upsert.on_conflict_do_update(
                    index_elements=[table.c.subject],
                    set_={
                        "secret": upsert.excluded.secret,
                        "created_at": upsert.excluded.created_at,
                        "last_accepted_step": None,
                        "last_used_at": None,
                    },
                    where=table.c.confirmed_at.is_(None),
                ).returning(table.c.subject)
            ).first()
            if stored is None:
                raise DuplicateRecordError("the subject already has a confirmed TOTP credential")

    def get_totp_credential(self, subject: str) -> TotpCredential | None:
        with self._read() as conn:
            row = conn.execute(
                select(totp_credentials).where(totp_credentials.c.subject == subject)
            ).first()
        return None if row is None else _totp_credential(row)

    def confirm_totp_credential(
        self,
        subject: str,
        secret: bytes,
        step: int,
        recovery_codes: Sequence[RecoveryCode],
        now: datetime.datetime,
    ) -> bool:
        _require_aware(now=now)
        _require_step(step)
        _require_codes(subject, recovery_codes)
        table = totp_credentials
        with self._write() as conn:
            confirmed = conn.execute(
                update(table)
                .where(
                    table.c.subject == subject,
                    table.c.confirmed_at.is_(None),
                    table.c.secret == secret,
                )
                .values(confirmed_at=now, last_accepted_step=step, last_used_at=now)
                .returning(table.c.subject)
            ).first()
            if confirmed is None:
                return False
            self._write_recovery_codes(conn, subject, recovery_codes)
            return True

    def delete_totp_credential(self, subject: str) -> bool:
        with self._write() as conn:
            # Recovery codes go with it (ON DELETE CASCADE).
            result = conn.execute(
                delete(totp_credentials).where(totp_credentials.c.subject == subject)
            )
            return result.rowcount > 0

    def accept_totp_step(self, subject: str, step: int, now: datetime.datetime) -> bool:
        _require_aware(now=now)
        _require_step(step)
        table = totp_credentials
        with self._write() as conn:
            accepted = conn.execute(
                update(table)
                .where(
                    table.c.subject == subject,
                    table.c.confirmed_at.is_not(None),
                    or_(table.c.last_accepted_step.is_(None), table.c.last_accepted_step < step),
                )
                .values(last_accepted_step=step, last_used_at=now)
                .returning(table.c.subject)
            ).first()
            return accepted is not None

    def list_recovery_codes(self, subject: str) -> list[RecoveryCode]:
        with self._read() as conn:
            rows = conn.execute(
                select(recovery_codes)
                .where(recovery_codes.c.subject == subject)
                .order_by(recovery_codes.c.code_id)
            ).all()
        return [_recovery_code(row) for row in rows]

    def replace_recovery_codes(self, subject: str, recovery_codes: Sequence[RecoveryCode]) -> None:
        _require_codes(subject, recovery_codes)
        with self._write() as conn:
            credential = conn.execute(
                select(totp_credentials.c.subject)
                .where(
                    totp_credentials.c.subject == subject,
                    totp_credentials.c.confirmed_at.is_not(None),
                )
                .with_for_update()
            ).first()
            if credential is None:
                raise RecordNotFoundError("the subject has no confirmed TOTP credential")
            self._write_recovery_codes(conn, subject, recovery_codes)

    def use_recovery_code(self, subject: str, code_id: int, now: datetime.datetime) -> bool:
        _require_aware(now=now)
        table = recovery_codes
        with self._write() as conn:
            used = conn.execute(
                update(table)
                .where(
                    table.c.subject == subject,
                    table.c.code_id == code_id,
                    table.c.used_at.is_(None),
                )
                .values(used_at=now)
                .returning(table.c.code_id)
            ).first()
            return used is not None

    def record_failure(
        self, key: str, now: datetime.datetime, limit: int, lockout: datetime.timedelta
    ) -> datetime.datetime | None:
        _require_text(key=key)
        _require_aware(now=now)
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if lockout <= datetime.timedelta(0):
            raise ValueError("lockout must be positive")
        table = attempt_counters
        with self._write() as conn:
            # Make the row exist (a stale one, expired at once), then lock it: concurrent
            # failures from any replica queue on the row lock and each sees the last count.
            conn.execute(
                self._insert(table)
                .values(key=key, failures=0, window_started_at=now, expires_at=now)
                .on_conflict_do_nothing(index_elements=[table.c.key])
            )
            row = conn.execute(select(table).where(table.c.key == key).with_for_update()).one()
            locked_until: datetime.datetime | None = row.locked_until
            if locked_until is not None and locked_until > now:
                failures, started = row.failures + 1, row.window_started_at
            else:
                stale = row.expires_at <= now
                failures = 1 if stale else row.failures + 1
                started = now if stale else row.window_started_at
                locked_until = now + lockout if failures >= limit else None
            window_ends = started + lockout
            conn.execute(
                update(table)
                .where(table.c.key == key)
                .values(
                    failures=failures,
                    window_started_at=started,
                    locked_until=locked_until,
                    expires_at=max(window_ends, locked_until or window_ends),
                )
            )
            return locked_until

    def is_locked(self, key: str, now: datetime.datetime) -> datetime.datetime | None:
        _require_aware(now=now)
        table = attempt_counters
        with self._read() as conn:
            locked_until: datetime.datetime | None = conn.execute(
                select(table.c.locked_until).where(table.c.key == key, table.c.locked_until > now)
            ).scalar_one_or_none()
        return locked_until

    def reset_failures(self, key: str) -> bool:
        with self._write() as conn:
            result = conn.execute(delete(attempt_counters).where(attempt_counters.c.key == key))
            return result.rowcount > 0

    # --- housekeeping ---------------------------------------------------------------------------

    # --- consents -------------------------------------------------------------------------------

    def save_consent(
        self, subject: str, client_id: str, claims: frozenset[str], now: datetime.datetime
    ) -> Consent:
        _require_text(subject=subject, client_id=client_id)
        _require_aware(now=now)
        with self._write() as conn:
            if conn.execute(select(subjects.c.id).where(subjects.c.id == subject)).first() is None:
                raise SubjectNotFoundError("the consent's subject is unknown")
            row = conn.execute(
                select(consents.c.claims, consents.c.revoked_at).where(
                    consents.c.subject == subject, consents.c.client_id == client_id
                )
            ).first()
            kept = set(row.claims) if row is not None and row.revoked_at is None else set()
            merged = sorted(kept | set(claims))
            upsert = self._insert(consents).values(
                subject=subject,
                client_id=client_id,
                claims=merged,
                granted_at=now,
                revoked_at=None,
            )
            conn.execute(
                upsert.on_conflict_do_update(
                    index_elements=[consents.c.subject, consents.c.client_id],
                    set_={"claims": merged, "granted_at": now, "revoked_at": None},
                )
            )
        return Consent(subject, client_id, frozenset(merged), now)

    def get_consent(self, subject: str, client_id: str) -> Consent | None:
        with self._read() as conn:
            row = conn.execute(
                select(consents).where(
                    consents.c.subject == subject,
                    consents.c.client_id == client_id,
                    consents.c.revoked_at.is_(None),
                )
            ).first()
        if row is None:
            return None
        return Consent(row.subject, row.client_id, frozenset(row.claims), row.granted_at)

    def list_consents(self, subject: str) -> list[Consent]:
        with self._read() as conn:
            rows = conn.execute(
                select(consents)
                .where(consents.c.subject == subject, consents.c.revoked_at.is_(None))
                .order_by(consents.c.client_id)
            ).all()
        return [Consent(r.subject, r.client_id, frozenset(r.claims), r.granted_at) for r in rows]

    def revoke_consent(self, subject: str, client_id: str, now: datetime.datetime) -> bool:
        _require_aware(now=now)
        with self._write() as conn:
            done = conn.execute(
                update(consents)
                .where(
                    consents.c.subject == subject,
                    consents.c.client_id == client_id,
                    consents.c.revoked_at.is_(None),
                )
                .values(revoked_at=now)
            )
        return bool(done.rowcount)

    def purge_expired(self, now: datetime.datetime) -> int:
        """Delete expired codes, transactions, tokens, sessions, attempt counters and used
        assertions, and spent revoked grants.

        Participants are deleted with their session and counted. A revoked grant goes once no
        code or token refers to it; a live grant stays (its session may still issue tokens).
        """
        _require_aware(now=now)
        expired_sessions = select(sso_sessions.c.session_hash).where(
            sso_sessions.c.expires_at <= now
        )
        statements = [
            delete(authorization_codes).where(authorization_codes.c.expires_at <= now),
            delete(login_transactions).where(login_transactions.c.expires_at <= now),
            delete(access_tokens).where(access_tokens.c.expires_at <= now),
            delete(refresh_tokens).where(refresh_tokens.c.expires_at <= now),
            delete(session_participants).where(
                session_participants.c.session_hash.in_(expired_sessions)
            ),
            delete(sso_sessions).where(sso_sessions.c.expires_at <= now),
            delete(attempt_counters).where(attempt_counters.c.expires_at <= now),
            delete(used_assertions).where(used_assertions.c.expires_at <= now),
            delete(grants).where(
                grants.c.revoked_at.is_not(None),
                ~exists().where(authorization_codes.c.grant_id == grants.c.grant_id),
                ~exists().where(access_tokens.c.grant_id == grants.c.grant_id),
                ~exists().where(refresh_tokens.c.grant_id == grants.c.grant_id),
            ),
        ]
        with self._write() as conn:
            return sum(conn.execute(statement).rowcount for statement in statements)

    # --- client assertions ----------------------------------------------------------------------

    def use_assertion(
        self,
        client_id: str,
        jti: str,
        expires_at: datetime.datetime,
        now: datetime.datetime,
    ) -> bool:
        _require_text(client_id=client_id, jti=jti)
        _require_aware(expires_at=expires_at, now=now)
        # One statement: a new key is inserted; a known one is taken over only if its record
        # has expired (the WHERE of the upsert); a live one is left alone and returns no row.
        table = used_assertions
        insert = self._insert(table).values(
            assertion_hash=token_hash(f"{client_id}\0{jti}"), expires_at=expires_at
        )
        statement = insert.on_conflict_do_update(
            index_elements=[table.c.assertion_hash],
            set_={"expires_at": insert.excluded.expires_at},
            where=table.c.expires_at <= now,
        ).returning(table.c.assertion_hash)
        with self._write() as conn:
            return conn.execute(statement).first() is not None

    # --- helpers --------------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` on SQLite); commits unless it raises."""
        with _unavailable(), self._engine.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """One read: a deferred (shared) transaction on SQLite, autocommit on PostgreSQL.

        On SQLite the transaction gives the statements of one read a single snapshot. PostgreSQL
        runs the store at READ COMMITTED, where every statement takes its own snapshot inside a
        transaction or not, so ``BEGIN`` and ``COMMIT`` around a read would change nothing but
        cost two more round trips to the server on every lookup.
        """
        with _unavailable(), self._reader.connect() as conn:
            if self._postgres:
                yield conn
                return
            with conn.begin():
                yield conn

    def _insert(self, table: Table) -> _Insert:
        if self._postgres:
            return postgresql.insert(table)
        return sqlite.insert(table)

    def _join_session(
        self,
        conn: Connection,
        session_hash: str,
        client_id: str,
        sid: str,
        now: datetime.datetime,
    ) -> SessionParticipant:
        """Add the portal to the (checked live) session unless it takes part already; its row."""
        values = {"session_hash": session_hash, "client_id": client_id, "sid": sid}
        conn.execute(_add_participant(self._postgres), values | {"created_at": now})
        keys = {"session_hash_": session_hash, "client_id_": client_id}
        return _participant(conn.execute(_PARTICIPANT, keys).one())

    @staticmethod
    def _insert_new(conn: Connection, table: Table, what: str, **values: Any) -> None:
        _require_aware(**{k: v for k, v in values.items() if isinstance(v, datetime.datetime)})
        try:
            conn.execute(_insert_into(table), values)
        except IntegrityError as error:
            raise DuplicateRecordError(f"this {what} already exists") from error

    def _insert_code(self, conn: Connection, code: CodeRecord, claims: JsonObject) -> None:
        self._insert_new(
            conn,
            authorization_codes,
            "authorization code",
            code_hash=code.code_hash,
            grant_id=code.grant_id,
            client_id=code.client_id,
            redirect_uri=code.redirect_uri,
            scope=code.scope,
            nonce=code.nonce,
            code_challenge=code.code_challenge,
            code_challenge_method=code.code_challenge_method,
            claims=claims,
            expires_at=code.expires_at,
            redeemed_at=code.redeemed_at,
        )

    def _insert_access_token(self, conn: Connection, token: AccessTokenRecord) -> None:
        self._insert_new(conn, access_tokens, "access token", **_token_columns(token))

    def _insert_refresh_token(self, conn: Connection, token: RefreshTokenRecord) -> None:
        self._insert_new(
            conn,
            refresh_tokens,
            "refresh token (or a live one in its family)",
            **_token_columns(token),
            status=RefreshTokenStatus.LIVE.value,
        )

    @staticmethod
    def _write_recovery_codes(
        conn: Connection, subject: str, codes: Sequence[RecoveryCode]
    ) -> None:
        conn.execute(delete(recovery_codes).where(recovery_codes.c.subject == subject))
        if codes:
            conn.execute(
                recovery_codes.insert(),
                [
                    {
                        "subject": subject,
                        "code_id": code.code_id,
                        "code_hash": code.code_hash,
                        "created_at": code.created_at,
                        "used_at": code.used_at,
                    }
                    for code in codes
                ],
            )

    def _issuable_grant(
        self,
        conn: Connection,
        grant_id: str,
        client_id: str,
        *,
        subject: str | None,
        lock: bool = False,
    ) -> None:
        """Refuse to issue under an unknown or revoked grant, or for another client/subject."""
        row = conn.execute(_LOCK_GRANT if lock else _GRANT, {"grant_id": grant_id}).first()
        if row is None or row.revoked_at is not None:
            raise GrantNotFoundError("the grant is unknown or revoked")
        if row.client_id != client_id:
            raise ValueError("the record's client_id differs from its grant's")
        if subject is not None and row.subject != subject:
            raise ValueError("the record's subject differs from its grant's")

    @staticmethod
    def _revoke_grants(
        conn: Connection, which: ColumnElement[bool], now: datetime.datetime
    ) -> list[str]:
        """Revoke matching live grants and kill their live refresh tokens; return their ids.

        Codes and access tokens need no update: every read checks the grant. Rotated refresh
        tokens keep their status so that presenting one later is still reported as reuse.
        """
        revoked = list(
            conn.execute(
                update(grants)
                .where(which, grants.c.revoked_at.is_(None))
                .values(revoked_at=now)
                .returning(grants.c.grant_id)
            ).scalars()
        )
        if revoked:
            conn.execute(
                update(refresh_tokens)
                .where(
                    refresh_tokens.c.grant_id.in_(revoked),
                    refresh_tokens.c.status == RefreshTokenStatus.LIVE.value,
                )
                .values(status=RefreshTokenStatus.REVOKED.value)
            )
        return sorted(revoked)

    @staticmethod
    def _live_session(
        conn: Connection, session_hash: str, now: datetime.datetime
    ) -> Row[Any] | None:
        return conn.execute(_LIVE_SESSION, {"session_hash_": session_hash, "now": now}).first()

    @staticmethod
    def _participants(conn: Connection, session_hash: str) -> list[SessionParticipant]:
        rows = conn.execute(
            select(session_participants)
            .where(session_participants.c.session_hash == session_hash)
            .order_by(session_participants.c.created_at, session_participants.c.client_id)
        ).all()
        return [_participant(row) for row in rows]


# --- module helpers -----------------------------------------------------------------------------


@contextmanager
def _unavailable() -> Iterator[None]:
    """Turn connection-level failures into :class:`StoreUnavailableError` (no SQL, no values)."""
    try:
        yield
    except (OperationalError, InterfaceError) as error:
        raise StoreUnavailableError(f"database unavailable: {error.orig}") from error


def _require_text(**values: str) -> None:
    for name, value in values.items():
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string")


def _require_step(step: int) -> None:
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError("step must be a non-negative integer (RFC 6238 time step)")


def _require_codes(subject: str, codes: Sequence[RecoveryCode]) -> None:
    _require_text(subject=subject)
    ids = [code.code_id for code in codes]
    if len(set(ids)) != len(ids):
        raise ValueError("recovery code ids must be unique")
    for code in codes:
        if code.subject != subject:
            raise ValueError("every recovery code must belong to the subject")
        _require_text(code_hash=code.code_hash)


def _require_aware(**values: datetime.datetime | None) -> None:
    for name, value in values.items():
        if value is not None and (
            not isinstance(value, datetime.datetime) or value.utcoffset() is None
        ):
            raise ValueError(f"{name} must be a timezone-aware datetime")


def _json_object(value: Mapping[str, Any], what: str) -> JsonObject:
    """A deep copy through JSON: refuses what JSON cannot hold, returns what will be read back."""
    try:
        copied = json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} is not a JSON object: {error}") from None
    if not isinstance(copied, dict):  # pragma: no cover - dict() above guarantees an object
        raise ValueError(f"{what} is not a JSON object")
    return copied


def _subject(row: Row[Any]) -> Subject:
    return Subject(row.id, row.identity_key, row.created_at)


def _document(kind: RegistryKind, row: Row[Any]) -> RegistryDocument:
    return RegistryDocument(
        kind, row.key, row.document, row.revision, row.created_at, row.updated_at
    )


def _grant(row: Row[Any]) -> Grant:
    return Grant(
        row.grant_id, row.client_id, row.subject, row.session_hash, row.created_at, row.revoked_at
    )


def _session(row: RowMapping, prefix: str = "") -> SsoSession:
    return SsoSession(
        session_hash=row[f"{prefix}session_hash"],
        subject=row[f"{prefix}subject"],
        region=row[f"{prefix}region"],
        auth_time=row[f"{prefix}auth_time"],
        acr=row[f"{prefix}acr"],
        amr=tuple(row[f"{prefix}amr"]),
        created_at=row[f"{prefix}created_at"],
        expires_at=row[f"{prefix}expires_at"],
        ended_at=row[f"{prefix}ended_at"],
        claims=row[f"{prefix}claims"],
    )


def _token_columns(token: AccessTokenRecord | RefreshTokenRecord) -> dict[str, Any]:
    """The columns access and refresh tokens share (:data:`_TOKEN_COLUMNS`), from a record."""
    return {column: getattr(token, column) for column in _TOKEN_COLUMNS}


def _joined_session(row: Row[Any]) -> SsoSession | None:
    """The live SSO session outer-joined under :data:`_SESSION_COLUMNS`, if there was one."""
    mapping = row._mapping
    return _session(mapping, prefix="session_") if mapping["session_session_hash"] else None


def _access_token(row: Row[Any]) -> AccessTokenRecord:
    return AccessTokenRecord(
        row.token_hash, row.grant_id, row.client_id, row.subject, row.scope, row.expires_at
    )


def _code(row: Row[Any]) -> CodeRecord:
    return CodeRecord(
        code_hash=row.code_hash,
        grant_id=row.grant_id,
        client_id=row.client_id,
        redirect_uri=row.redirect_uri,
        scope=row.scope,
        nonce=row.nonce,
        code_challenge=row.code_challenge,
        code_challenge_method=row.code_challenge_method,
        claims=row.claims,
        expires_at=row.expires_at,
        redeemed_at=row.redeemed_at,
    )


def _refresh_token(row: Row[Any]) -> RefreshTokenRecord:
    return RefreshTokenRecord(
        token_hash=row.token_hash,
        grant_id=row.grant_id,
        client_id=row.client_id,
        subject=row.subject,
        scope=row.scope,
        expires_at=row.expires_at,
        status=RefreshTokenStatus(row.status),
    )


def _totp_credential(row: Row[Any]) -> TotpCredential:
    return TotpCredential(
        subject=row.subject,
        secret=bytes(row.secret),
        created_at=row.created_at,
        confirmed_at=row.confirmed_at,
        last_accepted_step=row.last_accepted_step,
        last_used_at=row.last_used_at,
    )


def _recovery_code(row: Row[Any]) -> RecoveryCode:
    return RecoveryCode(row.subject, row.code_id, row.code_hash, row.created_at, row.used_at)


def _participant(row: Row[Any]) -> SessionParticipant:
    return SessionParticipant(row.session_hash, row.client_id, row.sid, row.created_at)


__all__ = ["SqlStore"]
