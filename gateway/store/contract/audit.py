"""The audit trail: append-only, hash-chained records of what happened (GB/T 22239-2019 §8.1.4).

A level-3 system keeps, for every user, audit records with the date and time, the user, the
event type and its outcome (§8.1.4 a, b), protected from deletion, change and overwriting
(§8.1.4 c), and kept: the Cybersecurity Law (Art. 21 (3)) asks for at least six months
(THREAT_MODEL row 9).

**Tamper evidence.** Every record carries ``prev_hash``, the ``hash`` of the record before it,
and its own ``hash``: SHA-256 over a canonical encoding of its fields and ``prev_hash``
(:func:`audit_hash`). Records are numbered by one gapless ``sequence``; the store keeps the
newest sequence and hash in a head row, so removing the newest records shows too. Whoever
changes, removes or reorders a record breaks the chain at that record, and
:meth:`AuditStore.verify_audit` names the first one.

**Chains.** One chain per UTC day (``chain`` is the day, ``2025-03-01``), linked: the first record
of a day follows the last record of the day before. So the records are one sequence (an insider
cannot drop a whole day unnoticed), while the retention purge can still delete whole old days
from the start: it records the hash and sequence of the last record it deleted (the *anchor*),
and verification of what remains starts from there. A day is the unit because retention is
counted in days, and one head (one lock) keeps appends from every replica in one total order;
the trail records sign-ins and changes, not token issuance, so one short lock per record is far
from a bottleneck.

Records hold identifiers only: the national subject's opaque id, an admin principal's name, a
portal's client id, a region's code; never an identity number, a token or a secret
(THREAT_MODEL row 8). ``details`` is a small JSON object (at most :data:`MAX_DETAILS_BYTES`).
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from gateway.store.contract.common import JsonObject, require_aware

GENESIS_HASH: Final = "0" * 64
"""The ``prev_hash`` of the very first record (and the anchor while nothing was purged)."""

MAX_DETAILS_BYTES: Final = 16 * 1024
"""The largest ``details`` the store accepts, as compact UTF-8 JSON (THREAT_MODEL row 7)."""

HASH_VERSION: Final = 1
"""Part of every hashed encoding, so a future change of the encoding cannot be confused."""


def audit_chain(moment: datetime.datetime) -> str:
    """The chain (UTC day) a record made at ``moment`` opens or joins."""
    return moment.astimezone(datetime.UTC).date().isoformat()


def canonical_details(details: JsonObject) -> str:
    """``details`` as compact JSON with sorted keys: what is hashed and measured."""
    return json.dumps(
        details, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


@dataclass(frozen=True)
class AuditEntry:
    """What a caller appends: who (``subject`` and/or ``principal``), what (``kind``), how it
    ended (``outcome``), when (``occurred_at``), where (``portal``, ``region``) and at which
    ``level``; anything else in ``details``."""

    kind: str
    outcome: str
    occurred_at: datetime.datetime
    subject: str | None = None
    principal: str | None = None
    portal: str | None = None
    region: str | None = None
    level: str | None = None
    details: JsonObject = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        require_aware(self, occurred_at=self.occurred_at)
        if not self.kind or not self.outcome:
            raise ValueError("an audit record needs a kind and an outcome")
        try:
            size = len(canonical_details(self.details).encode("utf-8"))
        except (TypeError, ValueError) as error:
            raise ValueError(f"audit details are not a JSON object: {error}") from None
        if size > MAX_DETAILS_BYTES:
            raise ValueError(f"audit details of {size} bytes exceed {MAX_DETAILS_BYTES}")


@dataclass(frozen=True)
class AuditRecord:
    """An appended record: the entry, its place (``chain``, ``sequence``) and its hashes."""

    sequence: int
    chain: str
    entry: AuditEntry
    prev_hash: str
    hash: str

    def as_json(self) -> dict[str, Any]:
        """One line of ``tongxing audit export``: every field, times in ISO 8601 UTC."""
        entry = self.entry
        return {
            "sequence": self.sequence,
            "chain": self.chain,
            "time": entry.occurred_at.astimezone(datetime.UTC).isoformat(),
            "kind": entry.kind,
            "outcome": entry.outcome,
            "subject": entry.subject,
            "principal": entry.principal,
            "portal": entry.portal,
            "region": entry.region,
            "level": entry.level,
            "details": entry.details,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def audit_hash(sequence: int, chain: str, entry: AuditEntry, prev_hash: str) -> str:
    """SHA-256 (lower-case hex) of the canonical encoding of a record and its predecessor's hash.

    The encoding is a JSON array (sorted keys inside ``details``, no spaces, UTF-8) of the
    version, every field and ``prev_hash``; times as ISO 8601 UTC with microseconds, which both
    engines keep exactly. Anyone can recompute it from an export.
    """
    encoded = json.dumps(
        [
            HASH_VERSION,
            sequence,
            chain,
            entry.occurred_at.astimezone(datetime.UTC).isoformat(timespec="microseconds"),
            entry.kind,
            entry.outcome,
            entry.subject,
            entry.principal,
            entry.portal,
            entry.region,
            entry.level,
            json.loads(canonical_details(entry.details)),
            prev_hash,
        ],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AuditAnchor:
    """Where the kept records start: the sequence and hash of the last record purged
    (``0`` and :data:`GENESIS_HASH` while nothing was), and the newest record (the head)."""

    anchor_sequence: int
    anchor_hash: str
    head_sequence: int
    head_hash: str


@dataclass(frozen=True)
class AuditVerification:
    """What :meth:`AuditStore.verify_audit` found: how many records and chains it checked, and
    the first problem (``None`` when the trail is intact)."""

    records: int
    chains: int
    first_sequence: int | None
    last_sequence: int | None
    problem: str | None = None
    problem_sequence: int | None = None

    @property
    def intact(self) -> bool:
        return self.problem is None


class AuditStore(Protocol):
    """The audit trail: append, read, verify, and the retention purge."""

    def append_audit(self, entry: AuditEntry) -> AuditRecord:
        """Append one record after the newest one, in one transaction.

        Race-safe across threads and replicas: concurrent appends are put in one order, each
        linked to the one before it, with no gap and no fork. The record joins the chain of
        ``occurred_at``'s day, or the newest chain if that day is older (a replica's clock a
        little behind), so chains never go back in time.
        """
        ...

    def list_audit(
        self,
        *,
        since: datetime.datetime | None = None,
        until: datetime.datetime | None = None,
        after_sequence: int = 0,
        limit: int = 1000,
    ) -> list[AuditRecord]:
        """Records with ``since <= occurred_at < until`` and a sequence above
        ``after_sequence``, oldest first, at most ``limit`` (page on with the last sequence)."""
        ...

    def recent_audit(
        self, subject: str, kinds: frozenset[str], limit: int = 20
    ) -> list[AuditRecord]:
        """A subject's newest records of the given kinds, newest first (the account page)."""
        ...

    def audit_anchor(self) -> AuditAnchor:
        """The anchor left by the purge, and the head."""
        ...

    def iter_audit(self, through: int | None = None, batch: int = 1000) -> Iterator[AuditRecord]:
        """Every kept record up to sequence ``through`` (all when ``None``), oldest first, read
        in batches of ``batch``."""
        ...

    def verify_audit(self) -> AuditVerification:
        """Check the whole trail: every hash recomputed, every link to the record before it
        (the first one to the anchor), no gap in the sequence, the newest one the head.

        Reports the first record that was changed, removed (a gap, or the newest ones gone) or
        reordered (it no longer follows the one before it).
        """
        ...

    def purge_audit(self, before: datetime.datetime) -> int:
        """Delete the whole chains (days) older than ``before``'s day, from the start, and
        record the anchor; return how many records went. The only way records leave."""
        ...


def verify_records(anchor: AuditAnchor, records: Iterator[AuditRecord]) -> AuditVerification:
    """The verification of :meth:`AuditStore.verify_audit` over ``records`` (oldest first), so
    every engine checks the same way and an export can be checked the same way too."""
    previous_sequence = anchor.anchor_sequence
    previous_hash = anchor.anchor_hash
    previous_chain = ""
    count = 0
    chains = 0
    first: int | None = None

    def result(problem: str | None = None, at: int | None = None) -> AuditVerification:
        last = previous_sequence if count else None
        return AuditVerification(count, chains, first, last, problem, at)

    for record in records:
        if record.sequence != previous_sequence + 1:
            return result(
                f"record {previous_sequence + 1} is missing (removed): the next kept record "
                f"is {record.sequence}",
                previous_sequence + 1,
            )
        if record.prev_hash != previous_hash:
            return result(
                f"record {record.sequence} does not follow record {previous_sequence} "
                "(a record before it was removed, or records were reordered)",
                record.sequence,
            )
        if audit_hash(record.sequence, record.chain, record.entry, record.prev_hash) != (
            record.hash
        ):
            return result(
                f"record {record.sequence} was changed: its fields do not match its hash",
                record.sequence,
            )
        if record.chain < previous_chain:
            return result(f"record {record.sequence} is out of its chain's order", record.sequence)
        if record.chain != previous_chain:
            chains += 1
            previous_chain = record.chain
        if first is None:
            first = record.sequence
        count += 1
        previous_sequence = record.sequence
        previous_hash = record.hash
    if previous_sequence != anchor.head_sequence or previous_hash != anchor.head_hash:
        if previous_sequence < anchor.head_sequence:
            return result(
                f"records {previous_sequence + 1} to {anchor.head_sequence} are missing "
                "(the newest records were removed)",
                previous_sequence + 1,
            )
        return result(
            f"record {previous_sequence} is not the head the store recorded "
            f"({anchor.head_sequence})",
            previous_sequence,
        )
    return result()


__all__ = [
    "GENESIS_HASH",
    "MAX_DETAILS_BYTES",
    "AuditAnchor",
    "AuditEntry",
    "AuditRecord",
    "AuditStore",
    "AuditVerification",
    "audit_chain",
    "audit_hash",
    "canonical_details",
    "verify_records",
]
