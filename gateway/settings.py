"""The gateway's configuration: typed, validated at start-up, one prefix (``TONGXING_``).

Secrets are :class:`~pydantic.SecretStr` and have no defaults: a production gateway refuses to
start without them. The demo (``tongxing demo``) generates them once into its data folder and
passes them in explicitly, so the embedded defaults never hide a missing secret in production.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from limits import parse as parse_limit
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.federation.policy import check_policy
from gateway.federation.trust_marks import check_trust_mark_types  # T18
from gateway.registry import CODE_PATTERN, PRINCIPAL_PATTERN, Level
from gateway.verified import ProofingProviderSettings

MIN_SECRET_LENGTH = 32
#: Issue 16, the verification result only (gateway.proofing): "no" answers one portal may get
#: about one person within :data:`VERIFICATION_HOLD`; the last of them holds that portal's
#: questions about that person until the hold ends (429). The defaults of the settings below.
VERIFICATION_MISSES = 5
VERIFICATION_HOLD = timedelta(hours=24)
#: Issue 18: how long a mandate that expired or was revoked stays listed (gateway.housekeeping).
MANDATE_RETENTION = timedelta(days=30)
#: The principal names of the two tokens the settings hold themselves.
PLATFORM_PRINCIPAL = "platform"
OPERATOR_PRINCIPAL = "operator"
AdminRole = Literal["platform", "operator", "reader"]


class AdminClientGrant(BaseModel):
    """A further principal of the admin API: a name, a role and the SHA-256 of its token.

    Only the hash is configured (it is no secret, so it may live in a ConfigMap); the token itself
    (at least :data:`MIN_SECRET_LENGTH` characters) stays with whoever holds it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=PRINCIPAL_PATTERN)]
    role: AdminRole
    token_sha256: Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{64}$")]

    @field_validator("token_sha256")
    @classmethod
    def _lower_case(cls, value: str) -> str:
        return value.lower()


class RateLimits(BaseModel):
    """How many requests each class of endpoint admits per key, in a moving window, in ONE
    process (:mod:`gateway.limits`); a request over the limit is answered 429 with
    ``Retry-After`` (RFC 6585 §4) before it reaches the store.

    Limits use the ``limits`` library's notation (``"300/minute"``, ``"5 per 2 seconds"``). They
    are per process: N replicas with W workers each admit N x W times a limit, so the shared
    limit belongs at the ingress; these are a backstop that keeps one process's store calls
    bounded. ``max_keys`` bounds the memory: past it the oldest key is forgotten.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    #: ``/authorize`` (and the chooser's answer), per client address (IPv6 by /64).
    authorize: str = "300/minute"
    #: ``/callback/<region>``, per client address.
    callback: str = "300/minute"
    #: ``/token``, ``/revoke``: per claimed client id and address (the id is not yet verified).
    token: str = "600/minute"  # noqa: S105 - a rate, not a secret
    #: ``/introspect``: per claimed client id and address.
    introspect: str = "1200/minute"
    #: ``/token``, ``/revoke`` and ``/introspect`` together, per address (invented ids share it).
    token_address: str = "3000/minute"  # noqa: S105 - a rate, not a secret
    #: The second-factor forms (``/mfa*``, ``/consents/second-factor/*``), per address.
    mfa: str = "120/minute"
    #: The admin API, per principal (its token's hash); unknown tokens per address.
    admin: str = "1200/minute"
    #: ``/verification`` (issue 16: the verification result only), per portal.
    verification: str = "60/minute"
    max_keys: Annotated[int, Field(ge=100, le=10_000_000)] = 100_000

    @field_validator(
        "authorize",
        "callback",
        "token",
        "introspect",
        "token_address",
        "mfa",
        "admin",
        "verification",
    )
    @classmethod
    def _parses(cls, value: str) -> str:
        try:
            parse_limit(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a rate limit ({exc})") from None
        return value


class RegionCircuit(BaseModel):
    """The circuit breaker of each region (:mod:`gateway.region_health`), per process.

    After ``failures`` consecutive failed calls (connection error, timeout, 5xx) a region is
    short-circuited: sign-ins there are refused at once. A background probe asks for its
    discovery document every ``probe_seconds`` and closes the circuit when it answers; without
    a probe, one sign-in is let through as a trial ``open_seconds`` after the last failure.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    failures: Annotated[int, Field(ge=1, le=1000)] = 3
    open_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    probe_seconds: Annotated[float, Field(gt=0, le=3600)] = 5.0


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "tongxing"


class Settings(BaseSettings):
    """Everything the gateway reads from its environment."""

    # hide_input_in_errors: a validation error must never echo a secret into a log.
    model_config = SettingsConfigDict(
        env_prefix="TONGXING_", extra="forbid", frozen=True, hide_input_in_errors=True
    )

    issuer: AnyHttpUrl = Field(description="The gateway's issuer URL (OIDC Core §2, `iss`).")
    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; empty means SQLite in data_dir (the embedded default).",
    )
    keys_file: Path | None = Field(
        default=None, description="Private signing keys (JSON); default data_dir/keys.json."
    )
    create_keys: bool = Field(
        default=False, description="Generate keys_file on first start when it is missing."
    )
    national_secret: SecretStr = Field(description="HMAC key for resident identity numbers.")
    pairwise_secret: SecretStr = Field(description="HMAC key for pairwise subject identifiers.")
    admin_token: SecretStr = Field(
        description="Bearer token of the admin API's platform principal (role platform)."
    )
    operator_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of this release's operator (principal operator, role operator).",
    )
    admin_clients: list[AdminClientGrant] = Field(
        default_factory=list,
        description="Further admin API principals: name, role and the SHA-256 of their token.",
    )
    # THREAT_MODEL row 2: the platform, not a region or its resource, bounds what a region vouches.
    level_ceiling: Level = Field(
        default="loa2", description="The highest level any region may vouch for."
    )
    region_level_ceilings: dict[Annotated[str, Field(pattern=CODE_PATTERN)], Level] = Field(
        default_factory=dict,
        description="Per-region ceilings (region code -> level), instead of level_ceiling.",
    )
    session_secret: SecretStr = Field(description="Signs the gateway's own cookies.")
    mfa_secret: SecretStr = Field(
        description="Seals second-factor secrets and session identity numbers at rest."
    )
    policy_dir: Path | None = Field(
        default=None, description="Cedar policies and schema; default: the shipped baseline."
    )

    access_token_lifetime: Annotated[timedelta, Field(gt=timedelta(0))] = timedelta(minutes=5)
    id_token_lifetime: Annotated[timedelta, Field(gt=timedelta(0))] = timedelta(minutes=5)
    refresh_token_lifetime: Annotated[timedelta, Field(gt=timedelta(0))] = timedelta(hours=8)
    code_lifetime: Annotated[timedelta, Field(gt=timedelta(0))] = timedelta(seconds=60)
    sso_session_lifetime: Annotated[timedelta, Field(gt=timedelta(0))] = timedelta(hours=8)
    # How often each process deletes expired codes, pending sign-ins, tokens and sessions.
    purge_interval: Annotated[timedelta, Field(ge=timedelta(seconds=1))] = timedelta(minutes=1)
    upstream_timeout: Annotated[float, Field(gt=0, le=30)] = 5.0
    # Behind an ingress: how many proxies to trust for X-Forwarded-* (Werkzeug ProxyFix).
    proxy_hops: Annotated[int, Field(ge=0, le=5)] = 0
    # Plain-HTTP issuers are for loopback development and tests only.
    insecure_allow_http: bool = False
    # THREAT_MODEL row 1: URLs the gateway calls on a registration's behalf (gateway.outbound).
    outbound_ca_file: Path | None = Field(
        default=None,
        description=(
            "A PEM file of further CA certificates to trust, beside the usual roots, when the "
            "gateway calls a URL a registration names (a portal's sector_identifier_uri or "
            "back-channel logout URI, a federation entity's configuration) and a region's "
            "endpoints: TONGXING_OUTBOUND_CA_FILE, for a private CA."
        ),
    )

    # Issue 14: limits per process (gateway.limits) and per-region health (gateway.region_health).
    rate_limits: RateLimits = Field(
        default_factory=lambda: RateLimits(),
        description="Requests per moving window, per process (JSON: TONGXING_RATE_LIMITS).",
    )
    region_circuit: RegionCircuit = Field(
        default_factory=lambda: RegionCircuit(),
        description="When a failing region is short-circuited (JSON: TONGXING_REGION_CIRCUIT).",
    )
    # Issue 14: how long the audit trail keeps its records (gateway.audit). GB/T 22239-2019
    # §8.1.4 asks for records kept; the Cybersecurity Law (Art. 21) six months at least, hence
    # 184 days. The purge deletes whole days older than this (gateway.housekeeping).
    audit_retention: Annotated[timedelta, Field(ge=timedelta(days=1))] = timedelta(days=184)
    # Issue 18: ended mandates (expired or revoked) stay listed for their enterprise this long,
    # then the purge deletes them (gateway.housekeeping); the audit trail keeps their history.
    mandate_retention: Annotated[
        timedelta, Field(ge=timedelta(days=1), le=timedelta(days=3650))
    ] = MANDATE_RETENTION
    # Issue 14, THREAT_MODEL row 8: region client secrets are sealed in the registry documents
    # (gateway.sealing.RegionSecretSealer). Rotation: docs/security/secrets.md.
    sealing_keys: list[SecretStr] = Field(
        default_factory=list,
        description=(
            "Keys that seal region client secrets at rest (JSON list: TONGXING_SEALING_KEYS, "
            "each at least 32 characters): the first seals, every one opens. Empty: a key "
            "derived from mfa_secret seals them (the gateway logs that it does)."
        ),
    )

    # Issue 16: identity proofing (OpenID Connect for Identity Assurance 1.0, gateway.proofing).
    proofing_providers: list[ProofingProviderSettings] = Field(
        default_factory=list,
        description=(
            "Proofing providers the platform trusts (JSON list: TONGXING_PROOFING_PROVIDERS): "
            "upstream OpenID Providers answering with verified_claims, each with the trust "
            "frameworks and claims it may vouch for. The first is where a citizen who needs "
            "loa3 is sent; none: loa3 cannot be reached."
        ),
    )

    # Issue 16: the verification result only is no oracle (gateway.proofing, THREAT_MODEL row 7):
    # after verification_misses "no" answers about one person within verification_hold, that
    # portal's questions about that person are held (429) until the hold ends, on every replica.
    verification_misses: Annotated[int, Field(ge=1, le=100)] = VERIFICATION_MISSES
    verification_hold: Annotated[
        timedelta, Field(ge=timedelta(minutes=1), le=timedelta(days=30))
    ] = VERIFICATION_HOLD

    # Issue 17: the OpenID Federation trust anchor (gateway.federation), keys apart from tokens'.
    federation_keys_file: Path | None = Field(
        default=None,
        description="Federation signing keys (JSON, as keys_file); default data_dir/"
        "federation-keys.json. Generated with create_keys; rotated with `tongxing keys rotate`.",
    )
    federation_organization_name: str = Field(default="Tongxing", min_length=1, max_length=255)
    federation_statement_lifetime: Annotated[
        timedelta, Field(ge=timedelta(minutes=5), le=timedelta(days=7))
    ] = timedelta(days=1)
    federation_metadata_policy: dict[str, Any] = Field(
        default_factory=dict,
        description="The platform's metadata policy for subordinates (OpenID Federation 1.0 "
        "§6.1, JSON: TONGXING_FEDERATION_METADATA_POLICY); a forbidden policy fails start-up.",
    )
    federation_metadata_policy_crit: list[str] = Field(default_factory=list)
    federation_automatic_registration: bool = Field(
        default=False,
        description="OpenID Federation 1.0 §12.1: a portal the platform recorded as a federation "
        "subordinate (no portal registration) signs in by its entity identifier, with a signed "
        "request object and private_key_jwt (gateway.federation.registration).",
    )
    federation_explicit_registration: bool = Field(  # X19
        default=False,
        description="OpenID Federation 1.0 §12.2: a portal the platform recorded as a federation "
        "subordinate registers by posting its entity configuration to /federation/register "
        "and gets a client_id (gateway.federation.explicit).",
    )

    federation_trust_mark_types: dict[str, dict[str, Any]] = Field(  # T18: trust marks (§7)
        default_factory=dict,
        description="Trust mark types the platform vouches for (JSON: {type URL: {ref, logo_uri, "
        "lifetime seconds}}); the gateway issues them through the admin API.",
    )

    # Task P20: pushed authorization requests (RFC 9126, gateway.provider.par).
    pushed_request_lifetime: Annotated[
        timedelta, Field(ge=timedelta(seconds=10), le=timedelta(minutes=10))
    ] = timedelta(seconds=60)
    require_pushed_authorization_requests: bool = Field(
        default=False,
        description="RFC 9126 §5, §6: every portal must push its authorization request to /par "
        "(a portal's registration may require it alone).",
    )

    @model_validator(mode="after")
    def _federation_policy(self) -> Settings:
        check_policy(self.federation_metadata_policy, self.federation_metadata_policy_crit)
        check_trust_mark_types(self.federation_trust_mark_types)  # T18
        if self.federation_keys_path == self.signing_keys_file:
            raise ValueError("federation_keys_file must not be the token signing keys_file")
        return self

    @field_validator("proofing_providers")
    @classmethod
    def _distinct_providers(
        cls, value: list[ProofingProviderSettings]
    ) -> list[ProofingProviderSettings]:
        if len({provider.id for provider in value}) != len(value):
            raise ValueError("proofing provider ids must be unique")
        return value

    @field_validator("sealing_keys")
    @classmethod
    def _sealing_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        for key in value:
            _long_enough(key)
        if len({key.get_secret_value() for key in value}) != len(value):
            raise ValueError("sealing keys must be different")
        return value

    @field_validator(
        "national_secret", "pairwise_secret", "admin_token", "session_secret", "mfa_secret"
    )
    @classmethod
    def _secrets_long_enough(cls, value: SecretStr) -> SecretStr:
        return _long_enough(value)

    @field_validator("operator_token")
    @classmethod
    def _operator_token_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else _long_enough(value)

    @field_validator("admin_clients")
    @classmethod
    def _distinct_clients(cls, value: list[AdminClientGrant]) -> list[AdminClientGrant]:
        names = [client.name for client in value]
        reserved = {PLATFORM_PRINCIPAL, OPERATOR_PRINCIPAL} & set(names)
        if reserved:
            raise ValueError(f"{', '.join(sorted(reserved))}: reserved for the settings' tokens")
        if len(set(names)) != len(names):
            raise ValueError("admin client names must be unique")
        if len({client.token_sha256 for client in value}) != len(value):
            raise ValueError("two admin clients have the same token")
        return value

    @field_validator("issuer")
    @classmethod
    def _issuer_shape(cls, value: AnyHttpUrl) -> AnyHttpUrl:
        parts = urlsplit(str(value))
        if parts.query or parts.fragment:
            raise ValueError("an issuer has no query or fragment (OIDC Discovery §3)")
        return value

    @model_validator(mode="after")
    def _https_issuer(self) -> Settings:
        if urlsplit(str(self.issuer)).scheme != "https" and not self.insecure_allow_http:
            raise ValueError(
                "issuer must use https (set TONGXING_INSECURE_ALLOW_HTTP=true for loopback tests)"
            )
        return self

    @model_validator(mode="after")
    def _one_principal_per_token(self) -> Settings:
        # A token that matched two principals would make the weaker role a guess.
        hashes = [token_sha256(self.admin_token)]
        if self.operator_token is not None:
            hashes.append(token_sha256(self.operator_token))
        hashes.extend(client.token_sha256 for client in self.admin_clients)
        if len(set(hashes)) != len(hashes):
            raise ValueError(
                "admin_token, operator_token and admin_clients must all have different tokens"
            )
        return self

    def ceiling_for(self, code: str) -> Level:
        """The highest level region ``code`` may vouch for (THREAT_MODEL row 2)."""
        return self.region_level_ceilings.get(code, self.level_ceiling)

    @property
    def issuer_url(self) -> str:
        """The issuer exactly as published: no trailing slash."""
        return str(self.issuer).rstrip("/")

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'tongxing.db'}"

    @property
    def signing_keys_file(self) -> Path:
        return self.keys_file or self.data_dir / "keys.json"

    @property
    def federation_keys_path(self) -> Path:
        """The federation key ring's file (issue 17), never the token ring's."""
        return self.federation_keys_file or self.data_dir / "federation-keys.json"


def _long_enough(value: SecretStr) -> SecretStr:
    if len(value.get_secret_value()) < MIN_SECRET_LENGTH:
        raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters")
    return value


def token_sha256(token: SecretStr | str) -> str:
    """The lower-case hex SHA-256 of an admin token, as ``admin_clients`` configures it."""
    value = token.get_secret_value() if isinstance(token, SecretStr) else token
    return hashlib.sha256(value.encode()).hexdigest()
