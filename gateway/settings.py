"""The gateway's configuration: typed, validated at start-up, one prefix (``TONGXING_``).

Secrets are :class:`~pydantic.SecretStr` and have no defaults: a production gateway refuses to
start without them. The demo (``tongxing demo``) generates them once into its data folder and
passes them in explicitly, so the embedded defaults never hide a missing secret in production.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_SECRET_LENGTH = 32


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
    admin_token: SecretStr = Field(description="Bearer token of the admin API.")
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
    upstream_timeout: Annotated[float, Field(gt=0, le=30)] = 5.0
    # Behind an ingress: how many proxies to trust for X-Forwarded-* (Werkzeug ProxyFix).
    proxy_hops: Annotated[int, Field(ge=0, le=5)] = 0
    # Plain-HTTP issuers are for loopback development and tests only.
    insecure_allow_http: bool = False

    @field_validator(
        "national_secret", "pairwise_secret", "admin_token", "session_secret", "mfa_secret"
    )
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters")
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
