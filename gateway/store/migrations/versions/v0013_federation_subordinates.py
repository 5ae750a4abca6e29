"""Federation subordinates: regions and portals the trust anchor vouches for (issue 17).

One row per (kind, key): the entity identifier (unique) and federation JWK Set a subordinate
statement names (OpenID Federation 1.0 §3), and the subordinate's own metadata policy (§6.1).

Revision ID: 0013
Revises: 0012
Create Date: 2027-02-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from gateway.store.schema import UtcDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    json = sa.JSON().with_variant(JSONB(), "postgresql")
    op.create_table(
        "federation_subordinates",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("entity_id", sa.String(2048), nullable=False),
        sa.Column("jwks", json, nullable=False),
        sa.Column("metadata_policy", json, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('region', 'portal')", name=op.f("ck_federation_subordinates_kind")
        ),
        sa.PrimaryKeyConstraint("kind", "key", name=op.f("pk_federation_subordinates")),
        sa.UniqueConstraint("entity_id", name=op.f("uq_federation_subordinates_entity_id")),
    )


def downgrade() -> None:
    op.drop_table("federation_subordinates")
