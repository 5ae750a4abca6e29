"""Federation intermediates: subordinate entities that vouch for their own subordinates (I20).

A subordinate of kind ``intermediate`` is a province's federation entity under the national
trust anchor (OpenID Federation 1.0 §1.2, "Intermediate Entity"); ``constraints`` is what the
anchor puts in its subordinate statement about it (§3.1.3, §6.2), ``{}`` for regions and
portals. SQLite alters the check constraint in batch mode (a table copy).

Revision ID: 0016
Revises: 0015
Create Date: 2027-02-16
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | None = None
depends_on: str | None = None

_TABLE = "federation_subordinates"


def upgrade() -> None:
    json = sa.JSON().with_variant(JSONB(), "postgresql")
    with op.batch_alter_table(_TABLE) as batch:
        batch.add_column(sa.Column("constraints", json, nullable=False, server_default="{}"))
        batch.drop_constraint(op.f("ck_federation_subordinates_kind"), type_="check")
        batch.create_check_constraint(
            op.f("ck_federation_subordinates_kind"),
            "kind IN ('region', 'portal', 'intermediate')",
        )
    with op.batch_alter_table(_TABLE) as batch:
        batch.alter_column("constraints", server_default=None)


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM federation_subordinates WHERE kind = 'intermediate'"))
    with op.batch_alter_table(_TABLE) as batch:
        batch.drop_constraint(op.f("ck_federation_subordinates_kind"), type_="check")
        batch.create_check_constraint(
            op.f("ck_federation_subordinates_kind"), "kind IN ('region', 'portal')"
        )
        batch.drop_column("constraints")
