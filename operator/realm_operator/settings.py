"""The operator's configuration: typed, validated at start-up, from ``TONGXING_OPERATOR_*``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorSettings(BaseSettings):
    """Where the gateway's admin API is and how to pace the reconcilers.

    ``gateway_issuer`` is the gateway's public issuer (each region's callback lives below it);
    when unset it is read from the gateway's discovery document. ``realm_templates`` is a folder
    of realm templates to use instead of the ones that come with the operator.
    """

    # hide_input_in_errors: a bad setting must never echo a secret into a log.
    model_config = SettingsConfigDict(
        env_prefix="TONGXING_OPERATOR_", extra="ignore", hide_input_in_errors=True
    )

    gateway_url: str
    admin_token: SecretStr
    gateway_issuer: str | None = None
    timeout: float = Field(default=5.0, gt=0, le=60)
    retry_delay: float = Field(default=5.0, gt=0, le=300)
    credentials_retry_delay: float = Field(default=30.0, gt=0, le=3600)
    drift_interval: float = Field(default=60.0, ge=1)
    realm_templates: Path | None = None  # default: the templates that come with the operator

    @field_validator("gateway_url", "gateway_issuer")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return None if value is None else value.rstrip("/")
