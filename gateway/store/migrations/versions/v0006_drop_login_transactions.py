"""The login transactions go: the pending authorization (revision 0005) carries the round trip
to the region now, and nothing reads or writes this table any more.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime, json_type

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # What it held expires in minutes and is useless without the code that made it: a sign-in in
    # flight during the upgrade starts again at the portal.
    op.drop_index(op.f("ix_login_transactions_expires_at"), table_name="login_transactions")
    op.drop_table("login_transactions")


def downgrade() -> None:
    op.create_table(
        "login_transactions",
        sa.Column("state_hash", sa.String(64), nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("nonce", sa.Text(), nullable=False),
        sa.Column("code_verifier", sa.Text(), nullable=False),
        sa.Column("request", json_type(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("consumed_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("state_hash", name=op.f("pk_login_transactions")),
    )
    op.create_index(op.f("ix_login_transactions_expires_at"), "login_transactions", ["expires_at"])
