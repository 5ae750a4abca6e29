"""The audit trail on SQL: one locked head row puts every append in one hash-chained order.

How the guarantees of :mod:`gateway.store.contract.audit` hold on both engines:

* **One order, no fork.** An append locks the head row (``SELECT ... FOR UPDATE`` on
  PostgreSQL; on SQLite every write transaction begins ``IMMEDIATE``, holding the database's
  write lock), reads the newest sequence and hash, inserts the next record and moves the head,
  in one transaction. Concurrent appends from threads or replicas wait their turn; the primary
  key on ``sequence`` would refuse a fork anyway.
* **Append-only on PostgreSQL.** A trigger (revision 0008) refuses ``UPDATE`` and ``TRUNCATE``,
  and ``DELETE`` unless the transaction-local setting ``tongxing.audit_purge`` is ``on``, which
  only :meth:`SqlAudit.purge_audit` sets (``set_config(..., true)``: it ends with the
  transaction). This keeps the gateway's own code and a careless operator from changing the
  trail; an insider who owns the table can still drop the trigger, and then the hash chain is
  what shows the change (:meth:`SqlAudit.verify_audit`).
* **Retention.** The purge deletes whole days from the start (every record up to the last one
  of the newest day to go) and records that record's sequence and hash as the anchor in the
  same transaction, so what remains still verifies.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import delete, select, text, update
from sqlalchemy.engine import Connection

from gateway.store.contract import StoreError
from gateway.store.contract.audit import (
    AuditAnchor,
    AuditEntry,
    AuditRecord,
    AuditVerification,
    audit_chain,
    audit_hash,
    canonical_details,
    verify_records,
)
from gateway.store.schema import audit_head, audit_records
from gateway.store.sql.base import SqlBase, json_object, require_aware

HEAD_ID = 1
PURGE_SETTING = "tongxing.audit_purge"
"""The PostgreSQL setting that lets the trigger allow a ``DELETE`` (the purge's transaction)."""


class AuditHeadMissingError(StoreError):
    """The audit trail's head row is gone: the schema was not migrated, or it was tampered with."""


class SqlAudit(SqlBase):
    """:class:`~gateway.store.contract.audit.AuditStore` on SQL."""

    def append_audit(self, entry: AuditEntry) -> AuditRecord:
        # Through JSON and back: what is hashed is exactly what a reader gets back.
        entry = _with_details(entry, json_object(entry.details, "audit details"))
        with self._write() as conn:
            head = _locked_head(conn)
            chain = max(audit_chain(entry.occurred_at), head.head_chain)
            sequence = int(head.head_sequence) + 1
            digest = audit_hash(sequence, chain, entry, head.head_hash)
            conn.execute(
                audit_records.insert(),
                {
                    "sequence": sequence,
                    "chain": chain,
                    "occurred_at": entry.occurred_at,
                    "kind": entry.kind,
                    "outcome": entry.outcome,
                    "subject": entry.subject,
                    "principal": entry.principal,
                    "portal": entry.portal,
                    "region": entry.region,
                    "level": entry.level,
                    "details": canonical_details(entry.details),
                    "prev_hash": head.head_hash,
                    "hash": digest,
                },
            )
            conn.execute(
                update(audit_head)
                .where(audit_head.c.id == HEAD_ID)
                .values(head_sequence=sequence, head_hash=digest, head_chain=chain)
            )
        return AuditRecord(sequence, chain, entry, head.head_hash, digest)

    def list_audit(
        self,
        *,
        since: datetime.datetime | None = None,
        until: datetime.datetime | None = None,
        after_sequence: int = 0,
        limit: int = 1000,
    ) -> list[AuditRecord]:
        require_aware(since=since, until=until)
        query = select(audit_records).where(audit_records.c.sequence > after_sequence)
        if since is not None:
            query = query.where(audit_records.c.occurred_at >= since)
        if until is not None:
            query = query.where(audit_records.c.occurred_at < until)
        with self._read() as conn:
            rows = conn.execute(query.order_by(audit_records.c.sequence).limit(limit)).all()
        return [_record(row) for row in rows]

    def recent_audit(
        self, subject: str, kinds: frozenset[str], limit: int = 20
    ) -> list[AuditRecord]:
        query = (
            select(audit_records)
            .where(audit_records.c.subject == subject, audit_records.c.kind.in_(sorted(kinds)))
            .order_by(audit_records.c.sequence.desc())
            .limit(limit)
        )
        with self._read() as conn:
            return [_record(row) for row in conn.execute(query).all()]

    def audit_anchor(self) -> AuditAnchor:
        with self._read() as conn:
            head = conn.execute(select(audit_head).where(audit_head.c.id == HEAD_ID)).first()
        if head is None:
            raise AuditHeadMissingError("the audit trail has no head row")
        return AuditAnchor(
            int(head.anchor_sequence),
            head.anchor_hash,
            int(head.head_sequence),
            head.head_hash,
        )

    def iter_audit(self, through: int | None = None, batch: int = 1000) -> Iterator[AuditRecord]:
        after = 0
        while True:
            query = select(audit_records).where(audit_records.c.sequence > after)
            if through is not None:
                query = query.where(audit_records.c.sequence <= through)
            with self._read() as conn:
                rows = conn.execute(query.order_by(audit_records.c.sequence).limit(batch)).all()
            for row in rows:
                yield _record(row)
            if len(rows) < batch:
                return
            after = int(rows[-1].sequence)

    def verify_audit(self) -> AuditVerification:
        """Verify up to the head read first (later appends are for the next run); if the purge
        moved the anchor meanwhile, once more from the new anchor."""
        anchor = self.audit_anchor()
        result = verify_records(anchor, self.iter_audit(through=anchor.head_sequence))
        if not result.intact:
            again = self.audit_anchor()
            if again.anchor_sequence != anchor.anchor_sequence:
                result = verify_records(again, self.iter_audit(through=again.head_sequence))
        return result

    def purge_audit(self, before: datetime.datetime) -> int:
        require_aware(before=before)
        cutoff = audit_chain(before)
        old = select(audit_records.c.sequence).where(audit_records.c.chain < cutoff).limit(1)
        with self._read() as conn:
            if conn.execute(old).first() is None:  # the usual case: no lock taken
                return 0
        with self._write() as conn:
            _locked_head(conn)
            last = conn.execute(
                select(audit_records.c.sequence, audit_records.c.hash)
                .where(audit_records.c.chain < cutoff)
                .order_by(audit_records.c.sequence.desc())
                .limit(1)
            ).first()
            if last is None:  # another replica purged first
                return 0
            if self._postgres:
                conn.execute(text("SELECT set_config(:name, 'on', true)"), {"name": PURGE_SETTING})
            deleted = conn.execute(
                delete(audit_records).where(audit_records.c.sequence <= last.sequence)
            ).rowcount
            conn.execute(
                update(audit_head)
                .where(audit_head.c.id == HEAD_ID)
                .values(anchor_sequence=last.sequence, anchor_hash=last.hash)
            )
        return int(deleted)


def _locked_head(conn: Connection) -> Any:
    head = conn.execute(
        select(audit_head).where(audit_head.c.id == HEAD_ID).with_for_update()
    ).first()
    if head is None:
        raise AuditHeadMissingError("the audit trail has no head row")
    return head


def _with_details(entry: AuditEntry, details: dict[str, Any]) -> AuditEntry:
    return AuditEntry(
        kind=entry.kind,
        outcome=entry.outcome,
        occurred_at=entry.occurred_at,
        subject=entry.subject,
        principal=entry.principal,
        portal=entry.portal,
        region=entry.region,
        level=entry.level,
        details=details,
    )


def _record(row: Any) -> AuditRecord:
    """A stored row as a record, as it is: validated when appended, never again on read, so a
    tampered row still reaches verification (which reports it) instead of failing the read."""
    try:
        details = json.loads(row.details)
    except ValueError:
        details = {"unreadable": row.details}
    entry = object.__new__(AuditEntry)
    for name, value in {
        "kind": row.kind,
        "outcome": row.outcome,
        "occurred_at": row.occurred_at,
        "subject": row.subject,
        "principal": row.principal,
        "portal": row.portal,
        "region": row.region,
        "level": row.level,
        "details": details if isinstance(details, dict) else {"unreadable": row.details},
    }.items():
        object.__setattr__(entry, name, value)
    return AuditRecord(int(row.sequence), row.chain, entry, row.prev_hash, row.hash)


__all__ = ["PURGE_SETTING", "AuditHeadMissingError", "SqlAudit"]
