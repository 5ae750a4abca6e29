"""Pushed authorization requests (RFC 9126, task P20).

One row per pushed request: the hash of its ``request_uri``, the portal that pushed it, its
parameters (JSON) and ``expires_at`` (indexed for housekeeping). A row is deleted when
``/authorize`` takes it (one-time use, RFC 9126 §4) or once it has expired.

Revision ID: 0017
Revises: 0016
Create Date: 2027-02-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from gateway.store.schema import UtcDateTime

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    json = sa.JSON().with_variant(JSONB(), "postgresql")
    op.create_table(
        "pushed_authorization_requests",
        sa.Column("reference_hash", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("parameters", json, nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("reference_hash", name=op.f("pk_pushed_authorization_requests")),
    )
    op.create_index(
        op.f("ix_pushed_authorization_requests_expires_at"),
        "pushed_authorization_requests",
        ["expires_at"],
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_pushed_authorization_requests_expires_at"),
        table_name="pushed_authorization_requests",
    )
    op.drop_table("pushed_authorization_requests")
