"""Second factor: TOTP credentials, recovery codes, attempt counters.

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "totp_credentials",
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("confirmed_at", UtcDateTime(), nullable=True),
        sa.Column("last_accepted_step", sa.BigInteger(), nullable=True),
        sa.Column("last_used_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["subject"],
            ["subjects.id"],
            name=op.f("fk_totp_credentials_subject_subjects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("subject", name=op.f("pk_totp_credentials")),
    )
    op.create_table(
        "recovery_codes",
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("code_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(255), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("used_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["subject"],
            ["totp_credentials.subject"],
            name=op.f("fk_recovery_codes_subject_totp_credentials"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("subject", "code_id", name=op.f("pk_recovery_codes")),
    )
    op.create_table(
        "attempt_counters",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", UtcDateTime(), nullable=False),
        sa.Column("locked_until", UtcDateTime(), nullable=True),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_attempt_counters")),
    )
    op.create_index(op.f("ix_attempt_counters_expires_at"), "attempt_counters", ["expires_at"])


def downgrade() -> None:
    for table in ("attempt_counters", "recovery_codes", "totp_credentials"):
        op.drop_table(table)
