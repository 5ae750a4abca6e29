"""The operator's configuration: typed, validated at start-up, from ``TONGXING_OPERATOR_*``.

Besides where the gateway is and how to pace the reconcilers, the settings carry what only the
platform decides (THREAT_MODEL.md rows 1 and 2): which Keycloaks the operator may contact, with
which credentials, for which namespaces (``keycloaks``), and the highest level of assurance each
region may vouch for (``level_ceiling``, ``region_level_ceilings``). A Region names a Keycloak;
it never supplies credentials, and it cannot raise its own ceiling.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic.alias_generators import to_camel
from pydantic_settings import BaseSettings, SettingsConfigDict

from realm_operator.models import SECRET_NAME_PATTERN, normalise_service_url
from tongxing_api.vocabulary import CODE_PATTERN, NAMESPACE_PATTERN, Level

ALL_NAMESPACES = "*"


class _Grant(BaseModel):
    """snake_case as the contract writes it; camelCase (as Helm values are) is read as well."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class CredentialsSecret(_Grant):
    """The Secret with a Keycloak admin's ``username`` and ``password`` (fixed key names).

    It lives in a namespace of the platform's choosing, where no tenant creates resources; the
    operator may ``get`` exactly this Secret there (operator/rbac.yaml).
    """

    namespace: Annotated[str, Field(pattern=NAMESPACE_PATTERN, max_length=63)]
    name: Annotated[str, Field(pattern=SECRET_NAME_PATTERN, max_length=253)]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


class KeycloakGrant(_Grant):
    """One Keycloak the platform grants: where it is, its admin credentials, who may use it.

    ``url`` is the admin API as the operator reaches it, ``public_url`` Keycloak as browsers and
    the gateway do (the realms' issuers live below it; default ``url``). ``namespaces`` are the
    watched namespaces whose Regions may name it (``"*"``: all of them).
    """

    url: str
    public_url: str | None = None
    admin_realm: Annotated[str, Field(min_length=1, max_length=64)] = "master"
    credentials_secret: CredentialsSecret
    namespaces: Annotated[list[str], Field(min_length=1)]

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return normalise_service_url(value, what="url")

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        return None if value is None else normalise_service_url(value, what="public_url")

    @field_validator("namespaces")
    @classmethod
    def _namespaces(cls, value: list[str]) -> list[str]:
        for name in value:
            if name != ALL_NAMESPACES and not (
                len(name) <= 63 and re.fullmatch(NAMESPACE_PATTERN, name)
            ):
                raise ValueError(f"{name!r} is neither a namespace name nor {ALL_NAMESPACES!r}")
        return list(dict.fromkeys(value))

    @property
    def issuer_base(self) -> str:
        """Keycloak as browsers and the gateway reach it: the realm issuers live below it."""
        return self.public_url or self.url

    def allows(self, namespace: str) -> bool:
        """Whether Regions in ``namespace`` may use this Keycloak."""
        return ALL_NAMESPACES in self.namespaces or namespace in self.namespaces


class OperatorSettings(BaseSettings):
    """Where the gateway's admin API is, how to pace the reconcilers, and the platform's grants.

    ``gateway_issuer`` is the gateway's public issuer (each region's callback lives below it);
    when unset it is read from the gateway's discovery document. ``realm_templates`` is a folder
    of realm templates to use instead of the ones that come with the operator. ``admin_token``
    is the operator's own admin API credential (role ``operator``), not the platform's.
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
    keycloaks: list[KeycloakGrant] = Field(default_factory=list)
    level_ceiling: Level = "loa2"
    region_level_ceilings: dict[str, Level] = Field(default_factory=dict)

    @field_validator("gateway_url", "gateway_issuer")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return None if value is None else value.rstrip("/")

    @field_validator("keycloaks")
    @classmethod
    def _one_grant_per_url(cls, value: list[KeycloakGrant]) -> list[KeycloakGrant]:
        urls = [grant.url for grant in value]
        twice = sorted({url for url in urls if urls.count(url) > 1})
        if twice:
            raise ValueError(f"each Keycloak url may be granted once: {', '.join(twice)}")
        return value

    @field_validator("region_level_ceilings")
    @classmethod
    def _region_codes(cls, value: dict[str, Level]) -> dict[str, Level]:
        bad = sorted(code for code in value if not re.fullmatch(CODE_PATTERN, code))
        if bad:
            raise ValueError(f"not region codes: {', '.join(bad)}")
        return value

    def grant_for(self, url: str) -> KeycloakGrant | None:
        """The grant of the Keycloak at ``url`` (normalised as the grants are), if any."""
        try:
            wanted = normalise_service_url(url, what="url")
        except ValueError:
            return None
        return next((grant for grant in self.keycloaks if grant.url == wanted), None)

    def ceiling_for(self, code: str) -> Level:
        """The highest level of assurance region ``code`` may vouch for."""
        return self.region_level_ceilings.get(code, self.level_ceiling)
