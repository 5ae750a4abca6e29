"""A logout at the region reaches the gateway, and failed deliveries to portals are retried.

The SSO session records the region's ``sid`` and the person's upstream ``sub`` (indexed by
region), by which a region's back-channel logout token finds it (Back-Channel Logout 1.0 §2.7);
``logout_deliveries`` keeps the logout tokens a portal did not accept, to try again.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Sessions opened before the upgrade have neither: a region's logout cannot find them, and
    # they end as before (at the gateway, or when they expire).
    op.add_column("sso_sessions", sa.Column("region_sid", sa.String(255), nullable=True))
    op.add_column("sso_sessions", sa.Column("region_sub", sa.String(255), nullable=True))
    op.create_index(
        op.f("ix_sso_sessions_region_region_sid"), "sso_sessions", ["region", "region_sid"]
    )
    op.create_index(
        op.f("ix_sso_sessions_region_region_sub"), "sso_sessions", ["region", "region_sub"]
    )
    op.create_table(
        "logout_deliveries",
        sa.Column("delivery_id", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("sid", sa.String(255), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_status", sa.String(255), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
        sa.Column("given_up_at", UtcDateTime(), nullable=True),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f("pk_logout_deliveries")),
    )
    op.create_index(
        op.f("ix_logout_deliveries_next_attempt_at"), "logout_deliveries", ["next_attempt_at"]
    )
    op.create_index(op.f("ix_logout_deliveries_expires_at"), "logout_deliveries", ["expires_at"])


def downgrade() -> None:
    op.drop_table("logout_deliveries")
    op.drop_index(op.f("ix_sso_sessions_region_region_sub"), table_name="sso_sessions")
    op.drop_index(op.f("ix_sso_sessions_region_region_sid"), table_name="sso_sessions")
    with op.batch_alter_table("sso_sessions") as batch:
        batch.drop_column("region_sub")
        batch.drop_column("region_sid")
