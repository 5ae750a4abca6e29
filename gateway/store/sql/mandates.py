"""Enterprises and mandates on SQL (:class:`~gateway.store.contract.mandates.MandateStore`).

* An enterprise is created race-safe with ``INSERT ... ON CONFLICT DO NOTHING`` on its key and
  read back, as a national subject is (:mod:`gateway.store.sql.subjects`).
* An invitation is accepted by ONE conditional ``UPDATE`` (unaccepted, unrevoked, unexpired,
  this agent's key): of two concurrent acceptances the second matches nothing.
* A revocation is one conditional ``UPDATE`` too: revoked once, and only by its enterprise.
* Mandates nobody can use any more are purged by one ``DELETE`` (housekeeping).
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from gateway.store.contract.mandates import (
    ActingFor,
    Enterprise,
    EnterprisePerson,
    Mandate,
    MandateNotFoundError,
)
from gateway.store.schema import acting_for, enterprise_people, enterprises, mandates
from gateway.store.sql.base import SqlBase, require_aware, require_text


class SqlMandates(SqlBase):
    """:class:`~gateway.store.contract.mandates.MandateStore` on SQL."""

    # -- enterprises ------------------------------------------------------------------------

    def save_enterprise(
        self, key: str, name: str, kind: str, credit_code_sealed: str, now: datetime.datetime
    ) -> Enterprise:
        require_text(key=key, name=name, kind=kind, credit_code_sealed=credit_code_sealed)
        require_aware(now=now)
        with self._write() as conn:
            conn.execute(
                self._insert(enterprises)
                .values(
                    id=uuid.uuid4().hex,
                    enterprise_key=key,
                    name=name,
                    kind=kind,
                    credit_code_sealed=credit_code_sealed,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=[enterprises.c.enterprise_key])
            )
            conn.execute(
                update(enterprises)
                .where(enterprises.c.enterprise_key == key)
                .values(name=name, kind=kind, updated_at=now)
            )
            row = conn.execute(select(enterprises).where(enterprises.c.enterprise_key == key)).one()
        return _enterprise(row)

    def get_enterprise(self, enterprise_id: str) -> Enterprise | None:
        with self._read() as conn:
            row = conn.execute(select(enterprises).where(enterprises.c.id == enterprise_id)).first()
        return None if row is None else _enterprise(row)

    def record_enterprise_person(
        self, enterprise_id: str, subject: str, role: str, now: datetime.datetime
    ) -> EnterprisePerson:
        require_text(enterprise_id=enterprise_id, subject=subject, role=role)
        require_aware(now=now)
        with self._write() as conn:
            conn.execute(
                self._insert(enterprise_people)
                .values(
                    enterprise_id=enterprise_id,
                    subject=subject,
                    role=role,
                    first_seen=now,
                    last_seen=now,
                )
                .on_conflict_do_update(
                    index_elements=[
                        enterprise_people.c.enterprise_id,
                        enterprise_people.c.subject,
                        enterprise_people.c.role,
                    ],
                    set_={"last_seen": now},
                )
            )
            row = conn.execute(
                select(enterprise_people).where(
                    enterprise_people.c.enterprise_id == enterprise_id,
                    enterprise_people.c.subject == subject,
                    enterprise_people.c.role == role,
                )
            ).one()
        return _person(row)

    def list_enterprise_people(self, enterprise_id: str) -> list[EnterprisePerson]:
        with self._read() as conn:
            rows = conn.execute(
                select(enterprise_people)
                .where(enterprise_people.c.enterprise_id == enterprise_id)
                .order_by(enterprise_people.c.first_seen, enterprise_people.c.subject)
            ).all()
        return [_person(row) for row in rows]

    # -- mandates ---------------------------------------------------------------------------

    def create_mandate(self, mandate: Mandate) -> None:
        require_text(
            id=mandate.id,
            enterprise_id=mandate.enterprise_id,
            granted_by=mandate.granted_by,
            agent_key=mandate.agent_key,
            invitation_hash=mandate.invitation_hash,
        )
        if mandate.accepted_at is not None or mandate.revoked_at is not None:
            raise ValueError("a new mandate is neither accepted nor revoked")
        with self._write() as conn:
            self._insert_new(
                conn,
                mandates,
                "mandate",
                id=mandate.id,
                enterprise_id=mandate.enterprise_id,
                granted_by=mandate.granted_by,
                agent_key=mandate.agent_key,
                invitation_hash=mandate.invitation_hash,
                invitation_expires_at=mandate.invitation_expires_at,
                portals=list(mandate.portals),
                sectors=list(mandate.sectors),
                valid_until=mandate.valid_until,
                created_at=mandate.created_at,
            )

    def accept_mandate(
        self, invitation_hash: str, agent_key: str, agent_subject: str, now: datetime.datetime
    ) -> Mandate:
        require_text(
            invitation_hash=invitation_hash, agent_key=agent_key, agent_subject=agent_subject
        )
        require_aware(now=now)
        with self._write() as conn:
            done = conn.execute(
                update(mandates)
                .where(
                    mandates.c.invitation_hash == invitation_hash,
                    mandates.c.agent_key == agent_key,
                    mandates.c.accepted_at.is_(None),
                    mandates.c.revoked_at.is_(None),
                    mandates.c.invitation_expires_at > now,
                    mandates.c.valid_until > now,
                )
                .values(agent_subject=agent_subject, accepted_at=now)
            )
            if done.rowcount != 1:
                raise MandateNotFoundError("no live invitation for this agent")
            row = conn.execute(
                select(mandates).where(mandates.c.invitation_hash == invitation_hash)
            ).one()
        return _mandate(row)

    def revoke_mandate(
        self, mandate_id: str, enterprise_id: str, now: datetime.datetime
    ) -> Mandate | None:
        require_aware(now=now)
        with self._write() as conn:
            done = conn.execute(
                update(mandates)
                .where(
                    mandates.c.id == mandate_id,
                    mandates.c.enterprise_id == enterprise_id,
                    mandates.c.revoked_at.is_(None),
                )
                .values(revoked_at=now)
            )
            if done.rowcount != 1:
                return None
            row = conn.execute(select(mandates).where(mandates.c.id == mandate_id)).one()
        return _mandate(row)

    def get_mandate(self, mandate_id: str) -> Mandate | None:
        with self._read() as conn:
            row = conn.execute(select(mandates).where(mandates.c.id == mandate_id)).first()
        return None if row is None else _mandate(row)

    def list_enterprise_mandates(self, enterprise_id: str) -> list[Mandate]:
        with self._read() as conn:
            rows = conn.execute(
                select(mandates)
                .where(mandates.c.enterprise_id == enterprise_id)
                .order_by(mandates.c.created_at.desc(), mandates.c.id)
            ).all()
        return [_mandate(row) for row in rows]

    def list_agent_mandates(self, agent_subject: str, now: datetime.datetime) -> list[Mandate]:
        require_aware(now=now)
        with self._read() as conn:
            rows = conn.execute(
                select(mandates)
                .where(
                    mandates.c.agent_subject == agent_subject,
                    mandates.c.accepted_at.is_not(None),
                    mandates.c.revoked_at.is_(None),
                    mandates.c.valid_until > now,
                )
                .order_by(mandates.c.created_at.desc(), mandates.c.id)
            ).all()
        return [_mandate(row) for row in rows]

    def purge_mandates(self, now: datetime.datetime, retention: datetime.timedelta) -> int:
        require_aware(now=now)
        if retention < datetime.timedelta(0):
            raise ValueError("the retention must not be negative")
        ended_before = now - retention
        with self._write() as conn:
            return int(
                conn.execute(
                    delete(mandates).where(
                        or_(
                            and_(
                                mandates.c.accepted_at.is_(None),
                                mandates.c.invitation_expires_at <= now,
                            ),
                            mandates.c.valid_until <= ended_before,
                            mandates.c.revoked_at <= ended_before,
                        )
                    )
                ).rowcount
            )

    # -- acting for -------------------------------------------------------------------------

    def choose_acting_for(self, choice: ActingFor) -> None:
        require_text(
            session_hash=choice.session_hash,
            client_id=choice.client_id,
            pending_hash=choice.pending_hash,
        )
        values: dict[str, Any] = {
            "pending_hash": choice.pending_hash,
            "enterprise_id": choice.enterprise_id,
            "role": choice.role,
            "mandate_id": choice.mandate_id,
            "chosen_at": choice.chosen_at,
        }
        with self._write() as conn:
            try:
                conn.execute(
                    self._insert(acting_for)
                    .values(session_hash=choice.session_hash, client_id=choice.client_id, **values)
                    .on_conflict_do_update(
                        index_elements=[acting_for.c.session_hash, acting_for.c.client_id],
                        set_=values,
                    )
                )
            except IntegrityError:  # the session is gone (its foreign key)
                raise MandateNotFoundError("the SSO session of the choice is gone") from None

    def get_acting_for(self, session_hash: str, client_id: str) -> ActingFor | None:
        with self._read() as conn:
            row = conn.execute(
                select(acting_for).where(
                    acting_for.c.session_hash == session_hash,
                    acting_for.c.client_id == client_id,
                )
            ).first()
        if row is None:
            return None
        return ActingFor(
            session_hash=row.session_hash,
            client_id=row.client_id,
            pending_hash=row.pending_hash,
            enterprise_id=row.enterprise_id,
            role=row.role,
            mandate_id=row.mandate_id,
            chosen_at=row.chosen_at,
        )


def _enterprise(row: Any) -> Enterprise:
    return Enterprise(
        id=row.id,
        key=row.enterprise_key,
        name=row.name,
        kind=row.kind,
        credit_code_sealed=row.credit_code_sealed,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _person(row: Any) -> EnterprisePerson:
    return EnterprisePerson(
        enterprise_id=row.enterprise_id,
        subject=row.subject,
        role=row.role,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
    )


def _mandate(row: Any) -> Mandate:
    return Mandate(
        id=row.id,
        enterprise_id=row.enterprise_id,
        granted_by=row.granted_by,
        agent_key=row.agent_key,
        invitation_hash=row.invitation_hash,
        invitation_expires_at=row.invitation_expires_at,
        portals=tuple(row.portals),
        sectors=tuple(row.sectors),
        valid_until=row.valid_until,
        created_at=row.created_at,
        agent_subject=row.agent_subject,
        accepted_at=row.accepted_at,
        revoked_at=row.revoked_at,
    )


__all__ = ["SqlMandates"]
