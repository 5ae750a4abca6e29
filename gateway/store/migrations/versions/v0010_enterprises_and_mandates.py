"""Enterprises, the people who signed in for them, mandates, and who acts for whom (issue 16).

``enterprises`` are keyed by the HMAC of their unified social credit code (the code only
sealed); ``enterprise_people`` record a national subject's sign-ins for an enterprise through an
``enterprise`` region and the role asserted; ``mandates`` a legal representative's authorisation
of an agent (an invitation bound to the agent's identity key until accepted); ``acting_for`` the
enterprise a person chose at a portal in an SSO session, gone with the session.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime, json_type

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "enterprises",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("enterprise_key", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(255), nullable=False),
        sa.Column("credit_code_sealed", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enterprises")),
        sa.UniqueConstraint("enterprise_key", name=op.f("uq_enterprises_enterprise_key")),
    )
    op.create_table(
        "enterprise_people",
        sa.Column("enterprise_id", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("first_seen", UtcDateTime(), nullable=False),
        sa.Column("last_seen", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["enterprise_id"],
            ["enterprises.id"],
            name=op.f("fk_enterprise_people_enterprise_id_enterprises"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subject"],
            ["subjects.id"],
            name=op.f("fk_enterprise_people_subject_subjects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "enterprise_id", "subject", "role", name=op.f("pk_enterprise_people")
        ),
    )
    op.create_table(
        "mandates",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("enterprise_id", sa.String(64), nullable=False),
        sa.Column("granted_by", sa.String(64), nullable=False),
        sa.Column("agent_key", sa.String(64), nullable=False),
        sa.Column("invitation_hash", sa.String(64), nullable=False),
        sa.Column("invitation_expires_at", UtcDateTime(), nullable=False),
        sa.Column("portals", json_type(), nullable=False),
        sa.Column("sectors", json_type(), nullable=False),
        sa.Column("valid_until", UtcDateTime(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("agent_subject", sa.String(64), nullable=True),
        sa.Column("accepted_at", UtcDateTime(), nullable=True),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["enterprise_id"],
            ["enterprises.id"],
            name=op.f("fk_mandates_enterprise_id_enterprises"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mandates")),
        sa.UniqueConstraint("invitation_hash", name=op.f("uq_mandates_invitation_hash")),
    )
    op.create_index(op.f("ix_mandates_enterprise_id"), "mandates", ["enterprise_id"])
    op.create_index(op.f("ix_mandates_agent_subject"), "mandates", ["agent_subject"])
    op.create_table(
        "acting_for",
        sa.Column("session_hash", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("pending_hash", sa.String(64), nullable=False),
        sa.Column("enterprise_id", sa.String(64), nullable=True),
        sa.Column("role", sa.String(32), nullable=True),
        sa.Column("mandate_id", sa.String(64), nullable=True),
        sa.Column("chosen_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_hash"],
            ["sso_sessions.session_hash"],
            name=op.f("fk_acting_for_session_hash_sso_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_hash", "client_id", name=op.f("pk_acting_for")),
    )


def downgrade() -> None:
    op.drop_table("acting_for")
    op.drop_table("mandates")
    op.drop_table("enterprise_people")
    op.drop_table("enterprises")
