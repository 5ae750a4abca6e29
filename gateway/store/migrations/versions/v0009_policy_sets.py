"""The policy set in the store: one row per generation, the newest active.

A reload writes the validated Cedar documents as a new generation, and every gateway process
polls the newest generation and activates it, so one set is enforced by every worker and replica
(issue 14, gateway.store.contract.policy_sets). Until the first gateway of this revision starts
the table is empty, and that gateway records its policy files as generation 1.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime, json_type

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "policy_sets",
        sa.Column("generation", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("documents", json_type(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("activated_by", sa.String(255), nullable=False),
        sa.Column("activated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("generation", name=op.f("pk_policy_sets")),
    )


def downgrade() -> None:
    op.drop_table("policy_sets")
