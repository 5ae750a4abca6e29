"""Initial schema: subjects, registry, SSO sessions, grants, codes, tokens, login transactions.

Revision ID: 0001
Revises:
Create Date: 2025-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.store.schema import UtcDateTime, json_type

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "subjects",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("identity_key", sa.String(255), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subjects")),
        sa.UniqueConstraint("identity_key", name=op.f("uq_subjects_identity_key")),
    )
    op.create_table(
        "subject_links",
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("upstream_sub", sa.String(255), nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["subjects.id"],
            name=op.f("fk_subject_links_subject_id_subjects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("region", "upstream_sub", name=op.f("pk_subject_links")),
    )
    op.create_index(op.f("ix_subject_links_subject_id"), "subject_links", ["subject_id"])

    for registry in ("regions", "portals"):
        op.create_table(
            registry,
            sa.Column("key", sa.String(255), nullable=False),
            sa.Column("document", json_type(), nullable=False),
            sa.Column("revision", sa.Integer(), nullable=False),
            sa.Column("created_at", UtcDateTime(), nullable=False),
            sa.Column("updated_at", UtcDateTime(), nullable=False),
            sa.PrimaryKeyConstraint("key", name=op.f(f"pk_{registry}")),
        )

    op.create_table(
        "sso_sessions",
        sa.Column("session_hash", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("auth_time", UtcDateTime(), nullable=False),
        sa.Column("acr", sa.String(255), nullable=True),
        sa.Column("amr", json_type(), nullable=False),
        sa.Column("claims", json_type(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("ended_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["subject"],
            ["subjects.id"],
            name=op.f("fk_sso_sessions_subject_subjects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_hash", name=op.f("pk_sso_sessions")),
    )
    op.create_index(op.f("ix_sso_sessions_subject"), "sso_sessions", ["subject"])
    op.create_index(op.f("ix_sso_sessions_expires_at"), "sso_sessions", ["expires_at"])

    op.create_table(
        "session_participants",
        sa.Column("session_hash", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("sid", sa.String(255), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_hash"],
            ["sso_sessions.session_hash"],
            name=op.f("fk_session_participants_session_hash_sso_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_hash", "client_id", name=op.f("pk_session_participants")),
    )

    op.create_table(
        "grants",
        sa.Column("grant_id", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("session_hash", sa.String(64), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_hash"],
            ["sso_sessions.session_hash"],
            name=op.f("fk_grants_session_hash_sso_sessions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("grant_id", name=op.f("pk_grants")),
    )
    op.create_index(op.f("ix_grants_subject"), "grants", ["subject"])
    op.create_index(op.f("ix_grants_session_hash"), "grants", ["session_hash"])

    op.create_table(
        "authorization_codes",
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("grant_id", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("nonce", sa.Text(), nullable=True),
        sa.Column("code_challenge", sa.String(128), nullable=True),
        sa.Column("code_challenge_method", sa.String(16), nullable=True),
        sa.Column("claims", json_type(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("redeemed_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["grants.grant_id"],
            name=op.f("fk_authorization_codes_grant_id_grants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_authorization_codes")),
    )
    op.create_index(op.f("ix_authorization_codes_grant_id"), "authorization_codes", ["grant_id"])
    op.create_index(
        op.f("ix_authorization_codes_expires_at"), "authorization_codes", ["expires_at"]
    )

    op.create_table(
        "access_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("grant_id", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["grants.grant_id"],
            name=op.f("fk_access_tokens_grant_id_grants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_access_tokens")),
    )
    op.create_index(op.f("ix_access_tokens_grant_id"), "access_tokens", ["grant_id"])
    op.create_index(op.f("ix_access_tokens_expires_at"), "access_tokens", ["expires_at"])

    op.create_table(
        "refresh_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("grant_id", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.CheckConstraint(
            "status IN ('live', 'rotated', 'revoked')", name=op.f("ck_refresh_tokens_status")
        ),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["grants.grant_id"],
            name=op.f("fk_refresh_tokens_grant_id_grants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_refresh_tokens")),
    )
    op.create_index(op.f("ix_refresh_tokens_grant_id"), "refresh_tokens", ["grant_id"])
    op.create_index(op.f("ix_refresh_tokens_expires_at"), "refresh_tokens", ["expires_at"])
    # RFC 9700 §4.14.2: one live refresh token per family, enforced by the database.
    op.create_index(
        "uq_refresh_tokens_one_live_per_grant",
        "refresh_tokens",
        ["grant_id"],
        unique=True,
        postgresql_where=sa.text("status = 'live'"),
        sqlite_where=sa.text("status = 'live'"),
    )

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


def downgrade() -> None:
    for table in (
        "login_transactions",
        "refresh_tokens",
        "access_tokens",
        "authorization_codes",
        "grants",
        "session_participants",
        "sso_sessions",
        "portals",
        "regions",
        "subject_links",
        "subjects",
    ):
        op.drop_table(table)
