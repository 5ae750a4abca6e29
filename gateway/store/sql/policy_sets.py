"""Generations of the policy set on SQL: one row each, the newest active (revision 0009)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import Row, func, select
from sqlalchemy.exc import IntegrityError

from gateway.store.contract.common import StoreUnavailableError
from gateway.store.contract.policy_sets import PolicyGenerationConflictError, PolicySetRecord
from gateway.store.schema import policy_sets
from gateway.store.sql.base import SqlBase, insert_into, json_object, require_aware, require_text

#: Concurrent unconditional writers collide on the next generation's key; each retry reads the
#: newest generation again, so this bounds how many writers may race, not how long one waits.
WRITE_ATTEMPTS: Final = 5


class SqlPolicySets(SqlBase):
    """:class:`~gateway.store.contract.PolicySetStore` on SQL.

    The next generation is ``max(generation) + 1``, inserted under the primary key: two writers
    that read the same maximum cannot both insert (on PostgreSQL the second one's insert waits
    for the first to commit, then fails on the key; on SQLite writers take turns from ``BEGIN
    IMMEDIATE``). The loser reads again and writes the generation after, or reports the conflict
    when it asked for a particular generation.
    """

    def policy_set_generation(self) -> int | None:
        with self._read() as conn:
            value = conn.execute(select(func.max(policy_sets.c.generation))).scalar_one_or_none()
        return None if value is None else int(value)

    def active_policy_set(self) -> PolicySetRecord | None:
        with self._read() as conn:
            row = conn.execute(
                select(policy_sets).order_by(policy_sets.c.generation.desc()).limit(1)
            ).first()
        return None if row is None else _record(row)

    def put_policy_set(
        self,
        documents: Mapping[str, str],
        digest: str,
        activated_by: str,
        now: datetime.datetime,
        *,
        expected_generation: int | None = None,
    ) -> PolicySetRecord:
        require_text(digest=digest, activated_by=activated_by)
        require_aware(now=now)
        if expected_generation is not None and expected_generation < 0:
            raise ValueError("expected_generation must be None, 0 (first set) or a generation")
        if not documents or not all(
            isinstance(name, str) and name and isinstance(text, str)
            for name, text in documents.items()
        ):
            raise ValueError("documents must map file names to their text")
        body = json_object(documents, "documents")
        for _ in range(WRITE_ATTEMPTS):
            try:
                with self._write() as conn:
                    current = conn.execute(
                        select(func.max(policy_sets.c.generation))
                    ).scalar_one_or_none()
                    newest = 0 if current is None else int(current)
                    if expected_generation is not None and expected_generation != newest:
                        raise PolicyGenerationConflictError(expected_generation, current)
                    record = PolicySetRecord(newest + 1, body, digest, activated_by, now)
                    conn.execute(
                        insert_into(policy_sets),
                        {
                            "generation": record.generation,
                            "documents": body,
                            "digest": digest,
                            "activated_by": activated_by,
                            "activated_at": now,
                        },
                    )
                    return record
            except IntegrityError:
                if expected_generation is not None:
                    raise PolicyGenerationConflictError(
                        expected_generation, self.policy_set_generation()
                    ) from None
        raise StoreUnavailableError(
            f"the policy set could not be written: {WRITE_ATTEMPTS} concurrent writers won first"
        )


def _record(row: Row[Any]) -> PolicySetRecord:
    return PolicySetRecord(
        int(row.generation), dict(row.documents), row.digest, row.activated_by, row.activated_at
    )


__all__ = ["SqlPolicySets"]
