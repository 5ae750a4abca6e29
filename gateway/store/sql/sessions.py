"""SSO sessions on SQL: ending one is a single conditional ``UPDATE ... WHERE ended_at IS NULL``.

A logout (:meth:`SqlSessions.end_session_and_revoke_grants`) ends the session and revokes its
grants in one transaction. The grants made in a session are made under a shared lock on its
row (:func:`live_session` with ``lock=True``: ``FOR SHARE`` on PostgreSQL), which the logout's
``UPDATE`` conflicts with: a grant being made while the session ends either waits and then
finds the session ended, or commits first and is revoked with the others. On SQLite every
write transaction holds the database lock from ``BEGIN IMMEDIATE`` on, so they cannot overlap.
"""

from __future__ import annotations

import datetime
import functools
from typing import Any

from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping

from gateway.store.contract import (
    EndedSession,
    SessionNotFoundError,
    SessionParticipant,
    SsoSession,
    SubjectNotFoundError,
)
from gateway.store.schema import grants, session_participants, sso_sessions
from gateway.store.sql.base import SqlBase, json_object, require_aware, require_text
from gateway.store.sql.grants import revoke_grants
from gateway.store.sql.subjects import subject_exists

MAX_REGION_SESSIONS = 1000
"""The most sessions one :meth:`SqlSessions.find_region_sessions` reads."""

SESSION_COLUMNS = [column.label(f"session_{column.name}") for column in sso_sessions.c]
"""The session's columns in a read joined with it (see :func:`joined_session`)."""

_LIVE_SESSION = select(sso_sessions).where(
    sso_sessions.c.session_hash == bindparam("session_hash_"),
    sso_sessions.c.ended_at.is_(None),
    sso_sessions.c.expires_at > bindparam("now"),
)
# Held by whoever makes a grant in the session until it commits; see the module docstring.
_SHARE_LIVE_SESSION = _LIVE_SESSION.with_for_update(read=True)
_PARTICIPANT = select(session_participants).where(
    session_participants.c.session_hash == bindparam("session_hash_"),
    session_participants.c.client_id == bindparam("client_id_"),
)
_END_SESSION = (
    update(sso_sessions)
    .where(
        sso_sessions.c.session_hash == bindparam("session_hash_"),
        sso_sessions.c.ended_at.is_(None),
    )
    .values(ended_at=bindparam("now"))
    .returning(*sso_sessions.c)
)


class SqlSessions(SqlBase):
    """:class:`~gateway.store.contract.SessionStore` on SQL."""

    def create_session(self, session: SsoSession) -> None:
        require_text(session_hash=session.session_hash, region=session.region)
        amr = [str(method) for method in session.amr]
        claims = json_object(session.claims, "claims")
        with self._write() as conn:
            if not subject_exists(conn, session.subject):
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
                region_sid=session.region_sid,
                region_sub=session.region_sub,
            )

    def get_session(self, session_hash: str, now: datetime.datetime) -> SsoSession | None:
        require_aware(now=now)
        with self._read() as conn:
            row = live_session(conn, session_hash, now)
        return None if row is None else session_from_row(row._mapping)

    def raise_session_assurance(
        self, session_hash: str, acr: str, amr: tuple[str, ...], now: datetime.datetime
    ) -> SsoSession:
        require_text(acr=acr)
        require_aware(now=now)
        with self._write() as conn:
            if live_session(conn, session_hash, now) is None:
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
        require_text(client_id=client_id, sid=sid)
        require_aware(now=now)
        with self._write() as conn:
            if live_session(conn, session_hash, now) is None:
                raise SessionNotFoundError("the SSO session is unknown, ended or expired")
            return join_session(conn, self._postgres, session_hash, client_id, sid, now)

    def list_participants(self, session_hash: str) -> list[SessionParticipant]:
        with self._read() as conn:
            return participants(conn, session_hash)

    def end_session(self, session_hash: str, now: datetime.datetime) -> list[SessionParticipant]:
        require_aware(now=now)
        with self._write() as conn:
            ended = conn.execute(_END_SESSION, {"session_hash_": session_hash, "now": now}).first()
            if ended is None:
                return []
            return participants(conn, session_hash)

    def find_subject_sessions(
        self, subject: str, now: datetime.datetime, *, limit: int = 100
    ) -> list[SsoSession]:
        require_text(subject=subject)
        require_aware(now=now)
        if not 0 < limit <= MAX_REGION_SESSIONS:
            raise ValueError(f"limit must be between 1 and {MAX_REGION_SESSIONS}")
        query = (
            select(sso_sessions)
            .where(
                sso_sessions.c.subject == subject,
                sso_sessions.c.ended_at.is_(None),
                sso_sessions.c.expires_at > now,
            )
            .order_by(sso_sessions.c.created_at, sso_sessions.c.session_hash)
            .limit(limit)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [session_from_row(row._mapping) for row in rows]

    def find_region_sessions(
        self,
        region: str,
        now: datetime.datetime,
        *,
        region_sid: str | None = None,
        region_sub: str | None = None,
        limit: int = 100,
    ) -> list[SsoSession]:
        require_text(region=region)
        require_aware(now=now)
        if not 0 < limit <= MAX_REGION_SESSIONS:
            raise ValueError(f"limit must be between 1 and {MAX_REGION_SESSIONS}")
        query = select(sso_sessions).where(
            sso_sessions.c.region == region,
            sso_sessions.c.ended_at.is_(None),
            sso_sessions.c.expires_at > now,
        )
        if region_sid is not None:
            query = query.where(sso_sessions.c.region_sid == region_sid)
        elif region_sub is not None:
            query = query.where(sso_sessions.c.region_sub == region_sub)
        query = query.order_by(sso_sessions.c.created_at, sso_sessions.c.session_hash).limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [session_from_row(row._mapping) for row in rows]

    def find_participant_session(
        self, client_id: str, sid: str, now: datetime.datetime
    ) -> SsoSession | None:
        require_text(client_id=client_id, sid=sid)
        require_aware(now=now)
        query = (
            select(sso_sessions)
            .join(
                session_participants,
                session_participants.c.session_hash == sso_sessions.c.session_hash,
            )
            .where(
                session_participants.c.client_id == client_id,
                session_participants.c.sid == sid,
                sso_sessions.c.ended_at.is_(None),
                sso_sessions.c.expires_at > now,
            )
            .order_by(sso_sessions.c.created_at, sso_sessions.c.session_hash)
            .limit(1)
        )
        with self._read() as conn:
            row = conn.execute(query).first()
        return None if row is None else session_from_row(row._mapping)

    def end_session_and_revoke_grants(
        self, session_hash: str, now: datetime.datetime
    ) -> EndedSession:
        require_aware(now=now)
        with self._write() as conn:
            ended = conn.execute(_END_SESSION, {"session_hash_": session_hash, "now": now}).first()
            told = [] if ended is None else participants(conn, session_hash)
            revoked = revoke_grants(conn, grants.c.session_hash == session_hash, now)
        # Live until this call ended it: what get_session returned a moment before.
        session = None
        if ended is not None and ended.expires_at > now:
            session = session_from_row(ended._mapping)
        return EndedSession(session, told, revoked)


def live_session(
    conn: Connection, session_hash: str, now: datetime.datetime, *, lock: bool = False
) -> Row[Any] | None:
    """The session's row unless it is unknown, ended or expired.

    ``lock``: hold a shared lock on it until the transaction ends, as whoever makes a grant in
    the session must (see the module docstring).
    """
    statement = _SHARE_LIVE_SESSION if lock else _LIVE_SESSION
    return conn.execute(statement, {"session_hash_": session_hash, "now": now}).first()


@functools.cache
def _add_participant(postgres: bool) -> Any:
    """Join a portal to a session unless it already participates (keeping its first ``sid``)."""
    insert = postgresql.insert if postgres else sqlite.insert
    return insert(session_participants).on_conflict_do_nothing(
        index_elements=[session_participants.c.session_hash, session_participants.c.client_id]
    )


def join_session(
    conn: Connection,
    postgres: bool,
    session_hash: str,
    client_id: str,
    sid: str,
    now: datetime.datetime,
) -> SessionParticipant:
    """Add the portal to the (checked live) session unless it takes part already; its row."""
    values = {"session_hash": session_hash, "client_id": client_id, "sid": sid}
    conn.execute(_add_participant(postgres), values | {"created_at": now})
    keys = {"session_hash_": session_hash, "client_id_": client_id}
    return _participant(conn.execute(_PARTICIPANT, keys).one())


def participants(conn: Connection, session_hash: str) -> list[SessionParticipant]:
    rows = conn.execute(
        select(session_participants)
        .where(session_participants.c.session_hash == session_hash)
        .order_by(session_participants.c.created_at, session_participants.c.client_id)
    ).all()
    return [_participant(row) for row in rows]


def session_from_row(row: RowMapping, prefix: str = "") -> SsoSession:
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
        region_sid=row[f"{prefix}region_sid"],
        region_sub=row[f"{prefix}region_sub"],
    )


def joined_session(row: Row[Any]) -> SsoSession | None:
    """The live SSO session outer-joined under :data:`SESSION_COLUMNS`, if there was one."""
    mapping = row._mapping
    return session_from_row(mapping, prefix="session_") if mapping["session_session_hash"] else None


def _participant(row: Row[Any]) -> SessionParticipant:
    return SessionParticipant(row.session_hash, row.client_id, row.sid, row.created_at)


__all__ = [
    "SESSION_COLUMNS",
    "SqlSessions",
    "join_session",
    "joined_session",
    "live_session",
    "participants",
    "session_from_row",
]
