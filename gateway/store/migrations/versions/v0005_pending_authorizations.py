"""Pending authorizations: a portal's authorization request from /authorize to its answer.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime, json_type

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "pending_authorizations",
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("request", json_type(), nullable=False),
        sa.Column("upstream_state_hash", sa.String(64), nullable=True),
        sa.Column("upstream", json_type(), nullable=True),
        sa.Column("session_hash", sa.String(64), nullable=True),
        sa.Column("consent_claims", json_type(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_pending_authorizations")),
        sa.UniqueConstraint(
            "upstream_state_hash", name=op.f("uq_pending_authorizations_upstream_state_hash")
        ),
    )
    op.create_index(
        op.f("ix_pending_authorizations_expires_at"), "pending_authorizations", ["expires_at"]
    )


def downgrade() -> None:
    op.drop_table("pending_authorizations")
