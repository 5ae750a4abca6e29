"""Federation trust marks: the marks the trust anchor issued to its subordinates (issue 17).

One row per issued trust mark (OpenID Federation 1.0 §7), by its ``jti``: its type, the
subordinate ``(kind, key)`` and the entity identifier it was issued to (its ``sub``), ``iat``,
``exp`` and, once the platform withdrew it, ``revoked_at`` (the status endpoint, §8.4).

Revision ID: 0014
Revises: 0013
Create Date: 2027-02-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "federation_trust_marks",
        sa.Column("jti", sa.String(64), nullable=False),
        sa.Column("trust_mark_type", sa.String(2048), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("entity_id", sa.String(2048), nullable=False),
        sa.Column("issued_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=True),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('region', 'portal')", name=op.f("ck_federation_trust_marks_kind")
        ),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_federation_trust_marks")),
    )
    op.create_index(
        op.f("ix_federation_trust_marks_kind_key"), "federation_trust_marks", ["kind", "key"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_federation_trust_marks_kind_key"), table_name="federation_trust_marks")
    op.drop_table("federation_trust_marks")
