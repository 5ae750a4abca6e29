"""Verified claims per SSO session, and the portals' claims requests in it (issue 16).

``verified_claims``: what a proofing provider asserted for the person of a session (OpenID
Connect for Identity Assurance 1.0), sealed, deleted with the session. ``claims_requests``: the
``claims`` request parameter (OIDC Core §5.5) each portal sent in a session, for its ID tokens
and userinfo answers, deleted with the session.

Revision ID: 0011
Revises: 0010
Create Date: 2027-01-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "verified_claims",
        sa.Column("session_hash", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("verified_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_hash"],
            ["sso_sessions.session_hash"],
            name=op.f("fk_verified_claims_session_hash_sso_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_hash", name=op.f("pk_verified_claims")),
    )
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


def downgrade() -> None:
    op.drop_table("claims_requests")
    op.drop_table("verified_claims")
