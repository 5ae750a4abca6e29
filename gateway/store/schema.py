"""Tables of the SQL store (SQLAlchemy Core), shared by :mod:`gateway.store.sql` and tests.

The migrations in :mod:`gateway.store.migrations` create exactly these tables; the contract
suite checks that the two never drift apart. Column types are portable between SQLite and
PostgreSQL: times are ``timestamptz`` on PostgreSQL and ISO text in UTC on SQLite (which sorts
and compares correctly because every value is written in the same format).
"""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine

# Constraint names are part of the schema: fixed by convention so migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

HASH = 64  # hex SHA-256
ID = 64
NAME = 255


class UtcDateTime(TypeDecorator[datetime.datetime]):
    """A timezone-aware UTC datetime on every engine; naive values are refused.

    SQLite has no time zone type: values are stored as naive UTC and given ``UTC`` back on
    read, so comparisons in SQL (``expires_at > :now``) are correct on both engines.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime.datetime | None, dialect: Dialect
    ) -> datetime.datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError("naive datetime: the store takes timezone-aware UTC times only")
        value = value.astimezone(datetime.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(
        self, value: datetime.datetime | None, dialect: Dialect
    ) -> datetime.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=datetime.UTC)
        return value.astimezone(datetime.UTC)


def json_type() -> TypeEngine[Any]:
    """JSON on SQLite, JSONB on PostgreSQL (indexable, and compact)."""
    return JSON().with_variant(JSONB(), "postgresql")


metadata = MetaData(naming_convention=NAMING_CONVENTION)

subjects = Table(
    "subjects",
    metadata,
    Column("id", String(ID), primary_key=True),
    # HMAC of the resident identity number: the only key a person is ever linked by.
    Column("identity_key", String(NAME), nullable=False, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
)

subject_links = Table(
    "subject_links",
    metadata,
    Column("region", String(ID), primary_key=True),
    Column("upstream_sub", String(NAME), primary_key=True),
    Column(
        "subject_id",
        String(ID),
        ForeignKey("subjects.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("created_at", UtcDateTime(), nullable=False),
)


def _registry_table(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("key", String(NAME), primary_key=True),
        Column("document", json_type(), nullable=False),
        Column("revision", Integer(), nullable=False),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("updated_at", UtcDateTime(), nullable=False),
    )


regions = _registry_table("regions")
portals = _registry_table("portals")

sso_sessions = Table(
    "sso_sessions",
    metadata,
    Column("session_hash", String(HASH), primary_key=True),
    Column(
        "subject",
        String(ID),
        ForeignKey("subjects.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("region", String(ID), nullable=False),
    Column("auth_time", UtcDateTime(), nullable=False),
    Column("acr", String(NAME), nullable=True),
    Column("amr", json_type(), nullable=False),
    Column("claims", json_type(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
    Column("ended_at", UtcDateTime(), nullable=True),
    # Revision 0007: the region's own session id (its ID token's sid) and the person's upstream
    # sub, by which a region's back-channel logout token finds the session (Back-Channel Logout
    # 1.0 §2.4, §2.7).
    Column("region_sid", String(NAME), nullable=True),
    Column("region_sub", String(NAME), nullable=True),
    Index("ix_sso_sessions_region_region_sid", "region", "region_sid"),
    Index("ix_sso_sessions_region_region_sub", "region", "region_sub"),
)

session_participants = Table(
    "session_participants",
    metadata,
    Column(
        "session_hash",
        String(HASH),
        ForeignKey("sso_sessions.session_hash", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("client_id", String(NAME), primary_key=True),
    Column("sid", String(NAME), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    # Revision 0012: a logout naming the portal's session by (client_id, sid) finds it by this
    # index (an id_token_hint's sid, RP-Initiated Logout 1.0 §2; find_participant_session).
    Index("ix_session_participants_client_id_sid", "client_id", "sid"),
)

grants = Table(
    "grants",
    metadata,
    Column("grant_id", String(ID), primary_key=True),
    Column("client_id", String(NAME), nullable=False),
    # A national subject id, or the client itself for client_credentials: no foreign key.
    Column("subject", String(NAME), nullable=False, index=True),
    Column(
        "session_hash",
        String(HASH),
        ForeignKey("sso_sessions.session_hash", ondelete="SET NULL"),
        nullable=True,
        index=True,
    ),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
    # Revision 0012: the portal's ``claims`` request parameter (OIDC Core §5.5) of the
    # authorization that made the grant (normalised JSON, gateway.verified), read with the grant
    # by every token and userinfo statement; NULL when the portal sent none.
    Column("claims_request", Text(), nullable=True),
)

authorization_codes = Table(
    "authorization_codes",
    metadata,
    Column("code_hash", String(HASH), primary_key=True),
    Column(
        "grant_id",
        String(ID),
        ForeignKey("grants.grant_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("client_id", String(NAME), nullable=False),
    Column("redirect_uri", Text(), nullable=False),
    Column("scope", Text(), nullable=False),
    Column("nonce", Text(), nullable=True),
    Column("code_challenge", String(128), nullable=True),
    Column("code_challenge_method", String(16), nullable=True),
    Column("claims", json_type(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
    Column("redeemed_at", UtcDateTime(), nullable=True),
)

access_tokens = Table(
    "access_tokens",
    metadata,
    Column("token_hash", String(HASH), primary_key=True),
    Column(
        "grant_id",
        String(ID),
        ForeignKey("grants.grant_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("client_id", String(NAME), nullable=False),
    Column("subject", String(NAME), nullable=False),
    Column("scope", Text(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", String(HASH), primary_key=True),
    Column(
        "grant_id",
        String(ID),
        ForeignKey("grants.grant_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("client_id", String(NAME), nullable=False),
    Column("subject", String(NAME), nullable=False),
    Column("scope", Text(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    CheckConstraint("status IN ('live', 'rotated', 'revoked')", name="status"),
)

# RFC 9700 §4.14.2: at most one live refresh token per family, enforced by the database itself
# so that no interleaving of concurrent rotations can leave two.
Index(
    "uq_refresh_tokens_one_live_per_grant",
    refresh_tokens.c.grant_id,
    unique=True,
    postgresql_where=text("status = 'live'"),
    sqlite_where=text("status = 'live'"),
)

# --- second factor (revision 0002) ----------------------------------------------------------------

# One TOTP factor per subject (RFC 6238). The secret is AES-GCM ciphertext made by gateway.mfa;
# the store never sees the key. last_accepted_step is the replay guard: a step is accepted only
# if it is newer, by one conditional UPDATE.
totp_credentials = Table(
    "totp_credentials",
    metadata,
    Column(
        "subject",
        String(ID),
        ForeignKey("subjects.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("secret", LargeBinary(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("confirmed_at", UtcDateTime(), nullable=True),
    Column("last_accepted_step", BigInteger(), nullable=True),
    Column("last_used_at", UtcDateTime(), nullable=True),
)

# Recovery codes: slow salted hashes only; a code is spent by setting used_at, once.
recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column(
        "subject",
        String(ID),
        ForeignKey("totp_credentials.subject", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("code_id", Integer(), primary_key=True),
    Column("code_hash", String(NAME), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("used_at", UtcDateTime(), nullable=True),
)

# Failed second-factor attempts per key ("subject:<id>", "ip:<address>"), shared by every replica.
# expires_at is when the row stops mattering (its window ended and no lock is in force).
attempt_counters = Table(
    "attempt_counters",
    metadata,
    Column("key", String(NAME), primary_key=True),
    Column("failures", Integer(), nullable=False),
    Column("window_started_at", UtcDateTime(), nullable=False),
    Column("locked_until", UtcDateTime(), nullable=True),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
)

# The jti of every private_key_jwt client assertion seen (RFC 7523 §3, item 7), by hash of client
# and jti, until the assertion could no longer be accepted anyway: shared by every replica, so a
# replay is refused whichever one it reaches.
used_assertions = Table(
    "used_assertions",
    metadata,
    Column("assertion_hash", String(HASH), primary_key=True),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
)

consents = Table(
    "consents",
    metadata,
    Column(
        "subject",
        String(ID),
        ForeignKey("subjects.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("client_id", String(NAME), primary_key=True),
    Column("claims", json_type(), nullable=False),
    Column("granted_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
)

# --- pending authorizations (revision 0005) ------------------------------------------------------

# A portal's authorization request from /authorize to its answer (the sign-in's one record), by
# hash of the opaque id the browser's cookie holds. upstream_state_hash is the region's answer's
# lookup key while the person is at their region (unique: one record per state); request, upstream
# and consent_claims are bounded by the store (MAX_RECORD_BYTES). A record is deleted when the
# portal is answered, or purged once expired.
pending_authorizations = Table(
    "pending_authorizations",
    metadata,
    Column("id_hash", String(HASH), primary_key=True),
    Column("stage", String(16), nullable=False),
    Column("request", json_type(), nullable=False),
    Column("upstream_state_hash", String(HASH), nullable=True, unique=True),
    Column("upstream", json_type(), nullable=True),
    Column("session_hash", String(HASH), nullable=True),
    Column("consent_claims", json_type(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
)

# --- logout deliveries (revision 0007) ----------------------------------------------------------

# A back-channel logout token a portal did not accept (Back-Channel Logout 1.0 §2.5, §2.8), kept
# to try again with back-off: what is needed to make a fresh token (the sub the portal knows and
# the sid it was given; never a token, which would expire), how often it was tried, when next,
# and what the portal last answered. A row is claimed before a try by moving next_attempt_at
# (one conditional UPDATE), so several replicas never send the same one twice at once. Given up
# after a bounded number of tries; purged at expires_at.
logout_deliveries = Table(
    "logout_deliveries",
    metadata,
    Column("delivery_id", String(ID), primary_key=True),
    Column("client_id", String(NAME), nullable=False),
    Column("subject", String(NAME), nullable=False),
    Column("sid", String(NAME), nullable=False),
    Column("attempts", Integer(), nullable=False),
    Column("last_status", String(NAME), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("next_attempt_at", UtcDateTime(), nullable=False, index=True),
    Column("given_up_at", UtcDateTime(), nullable=True),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
)

# --- the audit trail (revision 0008) ------------------------------------------------------------

# Append-only records of what happened (GB/T 22239-2019 §8.1.4; gateway.store.contract.audit):
# one gapless sequence, hash-chained (each record's hash covers its fields and prev_hash), in one
# chain per UTC day. details is canonical JSON text, so what is hashed is what is kept, byte for
# byte, on both engines. No foreign key to subjects: a record outlives whatever it names. On
# PostgreSQL a trigger refuses UPDATE, TRUNCATE and any DELETE but the retention purge's.
audit_records = Table(
    "audit_records",
    metadata,
    Column("sequence", BigInteger(), primary_key=True, autoincrement=False),
    Column("chain", String(16), nullable=False, index=True),
    Column("occurred_at", UtcDateTime(), nullable=False, index=True),
    Column("kind", String(64), nullable=False),
    Column("outcome", String(64), nullable=False),
    Column("subject", String(ID), nullable=True),
    Column("principal", String(NAME), nullable=True),
    Column("portal", String(NAME), nullable=True),
    Column("region", String(ID), nullable=True),
    Column("level", String(NAME), nullable=True),
    Column("details", Text(), nullable=False),
    Column("prev_hash", String(HASH), nullable=False),
    Column("hash", String(HASH), nullable=False),
    Index("ix_audit_records_subject_sequence", "subject", "sequence"),
)

# The one head row (id 1): the newest record (every append locks this row first, so appends from
# every replica take turns) and the anchor the retention purge left (the last record it deleted),
# from which verification of the kept records starts.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=False),
    Column("head_sequence", BigInteger(), nullable=False),
    Column("head_hash", String(HASH), nullable=False),
    Column("head_chain", String(16), nullable=False),
    Column("anchor_sequence", BigInteger(), nullable=False),
    Column("anchor_hash", String(HASH), nullable=False),
    CheckConstraint("id = 1", name="one_row"),
)

# --- the policy set (revision 0009) --------------------------------------------------------------

# One row per generation of the Cedar policy set (gateway.store.contract.policy_sets); the newest
# is active. Every gateway process asks for max(generation) every few seconds, answered from the
# primary key's index. documents maps file names to text; digest is SHA-256 over their canonical
# form (gateway.policy.loader.policy_digest).
policy_sets = Table(
    "policy_sets",
    metadata,
    Column("generation", BigInteger(), primary_key=True, autoincrement=False),
    Column("documents", json_type(), nullable=False),
    Column("digest", String(HASH), nullable=False),
    Column("activated_by", String(NAME), nullable=False),
    Column("activated_at", UtcDateTime(), nullable=False),
)

# --- enterprises and mandates (revision 0010) ---------------------------------------------------

# Legal persons (gateway.store.contract.mandates): keyed by the HMAC of the unified social credit
# code (gateway.enterprise.enterprise_key); the code itself only sealed, for release.
enterprises = Table(
    "enterprises",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("enterprise_key", String(HASH), nullable=False, unique=True),
    Column("name", String(NAME), nullable=False),
    Column("kind", String(NAME), nullable=False),
    Column("credit_code_sealed", Text(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# Who signed in for an enterprise through an enterprise region, in which role.
enterprise_people = Table(
    "enterprise_people",
    metadata,
    Column(
        "enterprise_id",
        String(ID),
        ForeignKey("enterprises.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "subject",
        String(ID),
        ForeignKey("subjects.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("role", String(32), primary_key=True),
    Column("first_seen", UtcDateTime(), nullable=False),
    Column("last_seen", UtcDateTime(), nullable=False),
)

# A representative's mandate to an agent: an invitation (by hash, bound to the agent's identity
# key) until accepted, then live until valid_until unless revoked.
mandates = Table(
    "mandates",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column(
        "enterprise_id",
        String(ID),
        ForeignKey("enterprises.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("granted_by", String(ID), nullable=False),
    Column("agent_key", String(HASH), nullable=False),
    Column("invitation_hash", String(HASH), nullable=False, unique=True),
    Column("invitation_expires_at", UtcDateTime(), nullable=False),
    Column("portals", json_type(), nullable=False),
    Column("sectors", json_type(), nullable=False),
    Column("valid_until", UtcDateTime(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("agent_subject", String(ID), nullable=True, index=True),
    Column("accepted_at", UtcDateTime(), nullable=True),
    Column("revoked_at", UtcDateTime(), nullable=True),
)

# The enterprise a person acts for at one portal in one SSO session (gone with the session).
acting_for = Table(
    "acting_for",
    metadata,
    Column(
        "session_hash",
        String(HASH),
        ForeignKey("sso_sessions.session_hash", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("client_id", String(NAME), primary_key=True),
    Column("pending_hash", String(HASH), nullable=False),
    Column("enterprise_id", String(ID), nullable=True),
    Column("role", String(32), nullable=True),
    Column("mandate_id", String(ID), nullable=True),
    Column("chosen_at", UtcDateTime(), nullable=False),
)

# --- verified claims (revision 0011) -------------------------------------------------------------

# The verified_claims a proofing provider asserted for the person of one SSO session (OpenID
# Connect for Identity Assurance 1.0), sealed; gone with the session (gateway.proofing).
verified_claims = Table(
    "verified_claims",
    metadata,
    Column(
        "session_hash",
        String(HASH),
        ForeignKey("sso_sessions.session_hash", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("subject", String(ID), nullable=False),
    Column("provider", String(ID), nullable=False),
    Column("sealed", Text(), nullable=False),
    Column("verified_at", UtcDateTime(), nullable=False),
)

# --- federation subordinates (revision 0013) ---------------------------------------------------

# Regions and portals the OpenID Federation trust anchor vouches for (gateway.federation).
federation_subordinates = Table(
    "federation_subordinates",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("key", String(NAME), primary_key=True),
    Column("entity_id", String(2048), nullable=False, unique=True),
    Column("jwks", json_type(), nullable=False),
    Column("metadata_policy", json_type(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    # Revision 0016 (I20): intermediates, and the constraints of the anchor's statement (§6.2).
    Column("constraints", json_type(), nullable=False),
    CheckConstraint("kind IN ('region', 'portal', 'intermediate')", name="kind"),
)

# --- federation trust marks (revision 0014) ----------------------------------------------------

# Trust marks the gateway issued to its subordinates (OpenID Federation 1.0 §7), by jti; revoked,
# never deleted (the status endpoint, §8.4, answers for them).
federation_trust_marks = Table(
    "federation_trust_marks",
    metadata,
    Column("jti", String(ID), primary_key=True),
    Column("trust_mark_type", String(2048), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("key", String(NAME), nullable=False),
    Column("entity_id", String(2048), nullable=False),
    Column("issued_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=True),
    Column("revoked_at", UtcDateTime(), nullable=True),
    CheckConstraint("kind IN ('region', 'portal')", name="kind"),
    Index("ix_federation_trust_marks_kind_key", "kind", "key"),
)

# --- federation explicit registrations (revision 0015) -----------------------------------------

# Clients registered through OpenID Federation 1.0 §12.2 (gateway.federation.explicit): one per
# entity, usable until expires_at (§12.2.6), purged after.
federation_registrations = Table(
    "federation_registrations",
    metadata,
    Column("client_id", String(NAME), primary_key=True),
    Column("entity_id", String(2048), nullable=False, unique=True),
    Column("portal", json_type(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
)

# Pushed authorization requests (RFC 9126, revision 0017): the request_uri's hash, the portal that
# pushed it, its parameters; taken once at /authorize, purged at expires_at.
pushed_authorization_requests = Table(
    "pushed_authorization_requests",
    metadata,
    Column("reference_hash", String(HASH), primary_key=True),
    Column("client_id", String(NAME), nullable=False),
    Column("parameters", json_type(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
)
