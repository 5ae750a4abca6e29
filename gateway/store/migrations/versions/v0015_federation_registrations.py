"""Federation explicit registrations: clients OpenID Federation 1.0 §12.2 registered (issue 17).

One row per assigned ``client_id``: the portal's entity identifier (unique: a re-registration
replaces the previous one, §12.2.2), the registered portal (JSON) and ``expires_at``, the end
of the trust chain it was made from (§12.2.6), indexed for housekeeping.

Revision ID: 0015
Revises: 0014
Create Date: 2027-02-14
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from gateway.store.schema import UtcDateTime

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    json = sa.JSON().with_variant(JSONB(), "postgresql")
    op.create_table(
        "federation_registrations",
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("entity_id", sa.String(2048), nullable=False),
        sa.Column("portal", json, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_federation_registrations")),
        sa.UniqueConstraint("entity_id", name=op.f("uq_federation_registrations_entity_id")),
    )
    op.create_index(
        op.f("ix_federation_registrations_expires_at"),
        "federation_registrations",
        ["expires_at"],
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_federation_registrations_expires_at"), table_name="federation_registrations"
    )
    op.drop_table("federation_registrations")
