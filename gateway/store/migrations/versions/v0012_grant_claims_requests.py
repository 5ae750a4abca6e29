"""The ``claims`` request kept with its grant, and an index for logout by a portal's ``sid``.

``grants.claims_request``: the ``claims`` request parameter (OIDC Core §5.5) of the
authorization that made the grant, read by the token and userinfo statements that already read
the grant, so no token request runs a statement of its own for it. It replaces
``claims_requests`` (one row per SSO session and portal, written on every code issue and read
on every ID token and userinfo answer), which is dropped: a request kept there belonged to
authorizations whose codes live a minute, and grants made before the upgrade answer as if no
``claims`` parameter had been sent (what the portal's next authorization corrects).

``ix_session_participants_client_id_sid``: a logout naming a portal's session by its ``sid``
(``find_participant_session``) finds the participant by index, not by a scan.

Revision ID: 0012
Revises: 0011
Create Date: 2027-02-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("grants", sa.Column("claims_request", sa.Text(), nullable=True))
    op.drop_table("claims_requests")
    op.create_index(
        op.f("ix_session_participants_client_id_sid"),
        "session_participants",
        ["client_id", "sid"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_session_participants_client_id_sid"), table_name="session_participants")
    op.create_table(
        "claims_requests",
        sa.Column("session_hash", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_hash"],
            ["sso_sessions.session_hash"],
            name=op.f("fk_claims_requests_session_hash_sso_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_hash", "client_id", name=op.f("pk_claims_requests")),
    )
    with op.batch_alter_table("grants") as batch:
        batch.drop_column("claims_request")
