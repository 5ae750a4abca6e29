"""The audit trail: append-only, hash-chained records and their head (GB/T 22239-2019 §8.1.4).

``audit_records`` holds the records (see :mod:`gateway.store.contract.audit`); ``audit_head`` its
one row, the newest record and the retention purge's anchor, made here so every append finds it.
On PostgreSQL a trigger refuses ``UPDATE`` and ``TRUNCATE`` of the records, and ``DELETE`` unless
the transaction set ``tongxing.audit_purge`` to ``on`` (only the retention purge does).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

GENESIS_HASH = "0" * 64

APPEND_ONLY_FUNCTION = """
CREATE FUNCTION audit_records_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('tongxing.audit_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit records are append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "audit_records",
        sa.Column("sequence", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("chain", sa.String(16), nullable=False),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(64), nullable=True),
        sa.Column("principal", sa.String(255), nullable=True),
        sa.Column("portal", sa.String(255), nullable=True),
        sa.Column("region", sa.String(64), nullable=True),
        sa.Column("level", sa.String(255), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("sequence", name=op.f("pk_audit_records")),
    )
    op.create_index(op.f("ix_audit_records_chain"), "audit_records", ["chain"])
    op.create_index(op.f("ix_audit_records_occurred_at"), "audit_records", ["occurred_at"])
    op.create_index(
        op.f("ix_audit_records_subject_sequence"), "audit_records", ["subject", "sequence"]
    )
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("head_sequence", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("head_chain", sa.String(16), nullable=False),
        sa.Column("anchor_sequence", sa.BigInteger(), nullable=False),
        sa.Column("anchor_hash", sa.String(64), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_head_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.bulk_insert(
        head,
        [
            {
                "id": 1,
                "head_sequence": 0,
                "head_hash": GENESIS_HASH,
                "head_chain": "",
                "anchor_sequence": 0,
                "anchor_hash": GENESIS_HASH,
            }
        ],
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPEND_ONLY_FUNCTION)
        op.execute(
            "CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records "
            "FOR EACH ROW EXECUTE FUNCTION audit_records_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_records_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_records_no_truncate ON audit_records")
        op.execute("DROP TRIGGER audit_records_append_only ON audit_records")
        op.execute("DROP FUNCTION audit_records_append_only()")
    op.drop_table("audit_head")
    op.drop_table("audit_records")
