"""Grants, codes and tokens on SQL: single use and one live refresh token per family.

* A code is redeemed by one conditional ``UPDATE ... WHERE redeemed_at IS NULL RETURNING``. On
  PostgreSQL a concurrent updater blocks on the row lock and re-checks the condition once the
  first one commits, so it matches nothing; on SQLite every write transaction starts with
  ``BEGIN IMMEDIATE``, so writers run one at a time.
* Everything that changes a refresh token family (issue, rotation, revocation) first locks the
  grant row (``SELECT ... FOR UPDATE`` on PostgreSQL; the database lock on SQLite), and a
  partial unique index allows one live token per grant whatever happens. On PostgreSQL the
  successful issue and rotation are each one statement (the lock in a CTE, the inserts fed by
  the UPDATE's ``RETURNING``), run in autocommit; when such a statement writes nothing, the
  transactional path runs and says why (reuse, expiry, revocation), so every refusal is
  decided under the lock as before.
* A grant in an SSO session is made under a shared lock on the session's row, so that a logout
  revokes it or it is not made (see :mod:`gateway.store.sql.sessions`).
* The portal's ``claims`` request (OIDC Core §5.5) is a column of its grant, written with the
  grant and read by the statements that already join the grant (code redemption, the access
  and refresh token reads): it costs the token endpoints no statement of their own.
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from collections.abc import Mapping
from typing import Any

import psycopg
from sqlalchemy import Row, Table, and_, bindparam, delete, literal, select, update
from sqlalchemy.engine import Connection

from gateway.store.contract import (
    AccessTokenRecord,
    CodeNotFoundError,
    CodeRecord,
    CodeReplayedError,
    DuplicateRecordError,
    Grant,
    JsonObject,
    RefreshTokenNotFoundError,
    RefreshTokenRecord,
    RefreshTokenReuseError,
    RefreshTokenStanding,
    RefreshTokenState,
    RefreshTokenStatus,
    SessionNotFoundError,
    SsoSession,
)
from gateway.store.contract.tokens import MAX_CLAIMS_REQUEST_BYTES
from gateway.store.schema import (
    access_tokens,
    authorization_codes,
    grants,
    refresh_tokens,
    sso_sessions,
)
from gateway.store.sql.base import (
    SqlBase,
    insert_into,
    json_object,
    require_aware,
    require_text,
)
from gateway.store.sql.grants import (
    grant_from_row,
    grant_is_live,
    issuable_grant,
    revoke_grants,
)
from gateway.store.sql.sessions import SESSION_COLUMNS, join_session, joined_session, live_session

# --- the statements of the token endpoints ------------------------------------------------------
#
# Built once, with named parameters, and executed with a dictionary of values: SQLAlchemy then
# neither builds the expression nor computes its cache key on every request (it memoises both on
# the statement object), which is most of what a statement costs on the Python side. PostgreSQL
# prepares them after a few uses (psycopg's prepare threshold).

_LIVE_SESSION_OF_GRANT = and_(
    sso_sessions.c.session_hash == grants.c.session_hash,
    sso_sessions.c.ended_at.is_(None),
    sso_sessions.c.expires_at > bindparam("now"),
)
_GRANT_SESSION = (
    select(grants, *SESSION_COLUMNS)
    .select_from(grants.outerjoin(sso_sessions, _LIVE_SESSION_OF_GRANT))
    .where(grants.c.grant_id == bindparam("grant_id"))
)
_ACCESS_TOKEN = select(access_tokens).where(
    access_tokens.c.token_hash == bindparam("hash_"),
    access_tokens.c.expires_at > bindparam("now"),
    grant_is_live(access_tokens.c.grant_id),
)
_ACCESS_TOKEN_SESSION = (
    select(access_tokens, grants.c.claims_request, *SESSION_COLUMNS)
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
    _LIVE_REFRESH_TOKEN, grant_is_live(refresh_tokens.c.grant_id)
)
_REFRESH_TOKEN_SESSION = (
    select(refresh_tokens, grants.c.claims_request, *SESSION_COLUMNS)
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

# PostgreSQL only: a new grant without a session and its access token (client credentials), as
# one statement in autocommit; the token's INSERT takes the grant's columns from its RETURNING.
_NEW_GRANT = (
    grants.insert()
    .values(
        grant_id=bindparam("family_grant"),
        client_id=bindparam("family_client"),
        subject=bindparam("family_subject"),
        created_at=bindparam("now"),
    )
    .returning(grants.c.grant_id, grants.c.client_id, grants.c.subject)
    .cte("new_grant")
)
_GRANT_ACCESS_TOKEN = _insert_tokens_from(_NEW_GRANT, access_tokens, "access")
_GRANT_WITH_ACCESS_TOKEN = select(_GRANT_ACCESS_TOKEN.c.token_hash)


_REDEEM_CODE = (
    update(authorization_codes)
    .where(
        authorization_codes.c.code_hash == bindparam("code_hash_"),
        authorization_codes.c.redeemed_at.is_(None),
        authorization_codes.c.expires_at > bindparam("now"),
        grant_is_live(authorization_codes.c.grant_id),
    )
    .values(redeemed_at=bindparam("now"))
    .returning(*authorization_codes.c)
)
# PostgreSQL only: the redemption above with the code's grant and its live SSO session, in one
# statement (the read sees the grant as the UPDATE's condition found it, live).
_REDEEMED = _REDEEM_CODE.cte("redeemed")
_REDEEM_CODE_SESSION = select(
    _REDEEMED, *(column.label(f"grant_{column.name}") for column in grants.c), *SESSION_COLUMNS
).select_from(
    _REDEEMED.join(grants, grants.c.grant_id == _REDEEMED.c.grant_id).outerjoin(
        sso_sessions, _LIVE_SESSION_OF_GRANT
    )
)
_CODE = select(authorization_codes.c.grant_id, authorization_codes.c.redeemed_at).where(
    authorization_codes.c.code_hash == bindparam("code_hash_")
)

# What a presented refresh token meets (refresh_token_status): its row and its grant's revocation.
_STANDING = (
    select(
        refresh_tokens.c.grant_id,
        refresh_tokens.c.status,
        refresh_tokens.c.expires_at,
        grants.c.revoked_at,
    )
    .select_from(refresh_tokens.outerjoin(grants, grants.c.grant_id == refresh_tokens.c.grant_id))
    .where(refresh_tokens.c.token_hash == bindparam("hash_"))
)


class SqlTokens(SqlBase):
    """:class:`~gateway.store.contract.TokenStore` on SQL."""

    # --- grants ---------------------------------------------------------------------------------

    def create_grant(
        self,
        client_id: str,
        subject: str,
        now: datetime.datetime,
        *,
        session_hash: str | None = None,
    ) -> Grant:
        require_text(client_id=client_id, subject=subject)
        require_aware(now=now)
        grant = Grant(uuid.uuid4().hex, client_id, subject, session_hash, now)
        with self._write() as conn:
            if (
                session_hash is not None
                and live_session(conn, session_hash, now, lock=True) is None
            ):
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
        return None if row is None else grant_from_row(row)

    def get_grant_session(
        self, grant_id: str, now: datetime.datetime
    ) -> tuple[Grant, SsoSession | None] | None:
        require_aware(now=now)
        row = self._first(_GRANT_SESSION, {"grant_id": grant_id, "now": now})
        if row is None:
            return None
        return grant_from_row(row), joined_session(row)

    def revoke_grant(self, grant_id: str, now: datetime.datetime) -> bool:
        require_aware(now=now)
        with self._write() as conn:
            return bool(revoke_grants(conn, grants.c.grant_id == grant_id, now))

    def revoke_session_grants(self, session_hash: str, now: datetime.datetime) -> list[str]:
        require_aware(now=now)
        with self._write() as conn:
            return revoke_grants(conn, grants.c.session_hash == session_hash, now)

    # --- authorization codes --------------------------------------------------------------------

    def save_code(self, code: CodeRecord) -> None:
        require_text(code_hash=code.code_hash)
        claims = json_object(code.claims, "claims")
        with self._write() as conn:
            issuable_grant(conn, code.grant_id, code.client_id, subject=None)
            self._insert_code(conn, code, claims)

    def issue_code(
        self,
        code: CodeRecord,
        subject: str,
        now: datetime.datetime,
        *,
        session_hash: str | None,
        sid: str,
        claims_request: str | None = None,
    ) -> tuple[CodeRecord, Grant]:
        require_text(code_hash=code.code_hash, client_id=code.client_id, subject=subject, sid=sid)
        require_aware(now=now)
        if claims_request is not None and (
            not claims_request or len(claims_request.encode("utf-8")) > MAX_CLAIMS_REQUEST_BYTES
        ):
            raise ValueError(
                f"a claims request is empty or longer than {MAX_CLAIMS_REQUEST_BYTES} bytes"
            )
        claims = dict(json_object(code.claims, "claims"))
        grant = Grant(
            uuid.uuid4().hex,
            code.client_id,
            subject,
            session_hash,
            now,
            claims_request=claims_request,
        )
        with self._write() as conn:
            if (
                session_hash is not None
                and live_session(conn, session_hash, now, lock=True) is None
            ):
                raise SessionNotFoundError("the grant's SSO session is unknown, ended or expired")
            values: dict[str, Any] = {
                "grant_id": grant.grant_id,
                "client_id": grant.client_id,
                "subject": subject,
                "session_hash": session_hash,
                "created_at": now,
                "claims_request": claims_request,
            }
            conn.execute(insert_into(grants), values)
            if session_hash is not None:
                claims["sid"] = join_session(
                    conn, self._postgres, session_hash, code.client_id, sid, now
                ).sid
            stored = dataclasses.replace(code, grant_id=grant.grant_id, claims=claims)
            self._insert_code(conn, stored, claims)
        return stored, grant

    def redeem_code(self, code_hash: str, now: datetime.datetime) -> CodeRecord:
        require_aware(now=now)
        values = {"code_hash_": code_hash, "now": now}
        if self._postgres:
            # The conditional UPDATE alone is atomic: in autocommit it is one round trip. Only
            # a code it did not redeem needs the transaction below (to tell replay from unknown).
            redeemed = self._hot(_REDEEM_CODE, values)
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
            revoke_grants(conn, grants.c.grant_id == replayed_grant, now)
        raise CodeReplayedError(replayed_grant)

    def redeem_code_session(
        self, code_hash: str, now: datetime.datetime
    ) -> tuple[CodeRecord, Grant, SsoSession | None]:
        require_aware(now=now)
        if self._postgres:
            row = self._hot(_REDEEM_CODE_SESSION, {"code_hash_": code_hash, "now": now})
            if row is not None:
                grant = Grant(
                    row.grant_grant_id,
                    row.grant_client_id,
                    row.grant_subject,
                    row.grant_session_hash,
                    row.grant_created_at,
                    row.grant_revoked_at,
                    row.grant_claims_request,
                )
                return _code(row), grant, joined_session(row)
        # Not redeemed above (or SQLite): redeem_code tells replay from unknown, as ever.
        code = self.redeem_code(code_hash, now)
        found = self.get_grant_session(code.grant_id, now)
        if found is None:  # pragma: no cover - a redeemed code's grant exists (foreign key)
            raise CodeNotFoundError("authorization code is unknown, expired or revoked")
        return code, found[0], found[1]

    # --- access tokens --------------------------------------------------------------------------

    def issue_access_token_grant(
        self, token: AccessTokenRecord, now: datetime.datetime
    ) -> tuple[AccessTokenRecord, Grant]:
        require_text(token_hash=token.token_hash, client_id=token.client_id, subject=token.subject)
        require_aware(now=now, expires_at=token.expires_at)
        grant = Grant(uuid.uuid4().hex, token.client_id, token.subject, None, now)
        stored = dataclasses.replace(token, grant_id=grant.grant_id)
        if self._postgres:
            values = {
                "family_grant": grant.grant_id,
                "family_client": grant.client_id,
                "family_subject": grant.subject,
                "now": now,
                "access_hash": stored.token_hash,
                "access_scope": stored.scope,
                "access_expires": stored.expires_at,
            }
            try:
                self._hot(_GRANT_WITH_ACCESS_TOKEN, values)
            except psycopg.IntegrityError as error:
                raise DuplicateRecordError("this access token already exists") from error
            return stored, grant
        with self._write() as conn:
            conn.execute(
                insert_into(grants),
                {
                    "grant_id": grant.grant_id,
                    "client_id": grant.client_id,
                    "subject": grant.subject,
                    "session_hash": None,
                    "created_at": now,
                },
            )
            self._insert_access_token(conn, stored)
        return stored, grant

    def save_access_token(self, token: AccessTokenRecord) -> None:
        require_text(token_hash=token.token_hash)
        with self._write() as conn:
            issuable_grant(conn, token.grant_id, token.client_id, subject=token.subject)
            self._insert_access_token(conn, token)

    def get_access_token(self, token_hash: str, now: datetime.datetime) -> AccessTokenRecord | None:
        require_aware(now=now)
        row = self._first(_ACCESS_TOKEN, {"hash_": token_hash, "now": now})
        return None if row is None else _access_token(row)

    def get_access_token_session(
        self, token_hash: str, now: datetime.datetime
    ) -> tuple[AccessTokenRecord, SsoSession | None, str | None] | None:
        require_aware(now=now)
        row = self._first(_ACCESS_TOKEN_SESSION, {"hash_": token_hash, "now": now})
        if row is None:
            return None
        return _access_token(row), joined_session(row), row.claims_request

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
        require_text(token_hash=token.token_hash)
        if token.status is not RefreshTokenStatus.LIVE:
            raise ValueError("a new refresh token must be live")
        if access_token is not None:
            require_text(access_token_hash=access_token.token_hash)
            if (access_token.grant_id, access_token.client_id, access_token.subject) != (
                token.grant_id,
                token.client_id,
                token.subject,
            ):
                raise ValueError("the access token must belong to the same grant")
        if self._postgres and self._tokens_in_one_statement(_ISSUE_IN_ONE, token, access_token, {}):
            return
        with self._write() as conn:
            issuable_grant(conn, token.grant_id, token.client_id, subject=token.subject, lock=True)
            self._insert_refresh_token(conn, token)
            if access_token is not None:
                self._insert_access_token(conn, access_token)

    def get_refresh_token(
        self, token_hash: str, now: datetime.datetime
    ) -> RefreshTokenRecord | None:
        require_aware(now=now)
        row = self._first(_REFRESH_TOKEN, {"hash_": token_hash, "now": now})
        return None if row is None else _refresh_token(row)

    def get_refresh_token_session(
        self, token_hash: str, now: datetime.datetime
    ) -> tuple[RefreshTokenRecord, SsoSession | None, str | None] | None:
        require_aware(now=now)
        row = self._first(_REFRESH_TOKEN_SESSION, {"hash_": token_hash, "now": now})
        if row is None:
            return None
        return _refresh_token(row), joined_session(row), row.claims_request

    def refresh_token_status(self, token_hash: str, now: datetime.datetime) -> RefreshTokenStanding:
        require_aware(now=now)
        with self._read() as conn:
            row = conn.execute(_STANDING, {"hash_": token_hash}).first()
        if row is None:
            return RefreshTokenStanding(RefreshTokenState.UNKNOWN)
        grant_id: str = row.grant_id
        status = RefreshTokenStatus(row.status)
        # Reuse is reuse whatever else holds, as in rotate_refresh_token.
        if status is RefreshTokenStatus.ROTATED:
            return RefreshTokenStanding(RefreshTokenState.ROTATED, grant_id)
        if status is RefreshTokenStatus.REVOKED or row.revoked_at is not None:
            return RefreshTokenStanding(RefreshTokenState.REVOKED, grant_id)
        if row.expires_at <= now:
            return RefreshTokenStanding(RefreshTokenState.EXPIRED, grant_id)
        return RefreshTokenStanding(RefreshTokenState.ACTIVE, grant_id)

    def rotate_refresh_token(
        self,
        old_hash: str,
        new: RefreshTokenRecord,
        now: datetime.datetime,
        *,
        access_token: AccessTokenRecord | None = None,
    ) -> RefreshTokenRecord:
        require_aware(now=now)
        require_text(token_hash=new.token_hash)
        if new.status is not RefreshTokenStatus.LIVE:
            raise ValueError("the new refresh token must be live")
        family_of = (new.grant_id, new.client_id, new.subject)
        if access_token is not None:
            require_text(access_token_hash=access_token.token_hash)
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
            revoke_grants(conn, grants.c.grant_id == old.grant_id, now)
        raise RefreshTokenReuseError(old.grant_id)

    def _tokens_in_one_statement(
        self,
        statements: Mapping[bool, Any],
        new: RefreshTokenRecord,
        access_token: AccessTokenRecord | None,
        values: dict[str, Any],
    ) -> Any:
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
            row = self._hot(statements[access_token is not None], values)
        except psycopg.IntegrityError as error:
            raise DuplicateRecordError(
                "this refresh token (or a live one in its family) or access token already exists"
            ) from error
        return row

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


# --- rows -> records ----------------------------------------------------------------------------


def _token_columns(token: AccessTokenRecord | RefreshTokenRecord) -> dict[str, Any]:
    """The columns access and refresh tokens share (:data:`_TOKEN_COLUMNS`), from a record."""
    return {column: getattr(token, column) for column in _TOKEN_COLUMNS}


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


__all__ = ["SqlTokens"]
