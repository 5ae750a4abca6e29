"""Keycloak realm templates (``realms/*.json.j2``): one per region kind, rendered per Region.

A template is Jinja2 that renders JSON: the realm representation, the confidential client the
gateway uses, the declarative user profile and the required actions. Values enter only through
``tojson``, so a display name cannot break out of its string. A name starting with ``_`` is a
building block (``_base.json.j2``), not a template a Region can name.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from realm_operator.models import PROTECTED_OVERRIDES, OverrideError, RegionSpec, check_overrides

SUFFIX = ".json.j2"
GATEWAY_CLIENT_ID = "tongxing-gateway"
OWNER_ATTRIBUTE = "tongxing.io/owner"
# Overrides may tune a realm, never take it from the Region that owns it.
PROTECTED_KEYS = set(PROTECTED_OVERRIDES)


class TemplateError(Exception):
    """A template is unknown, fails to render, or renders something that is not a realm."""


@dataclass(frozen=True)
class RealmBlueprint:
    """What a Region's realm must look like, in Keycloak's own representations."""

    realm: dict[str, Any]
    client: dict[str, Any]
    user_profile: dict[str, Any]
    required_actions: dict[str, dict[str, Any]]

    def creation(self) -> dict[str, Any]:
        """One realm representation with client and user profile: created in one request."""
        profile = json.dumps(self.user_profile, ensure_ascii=False, separators=(",", ":"))
        return {
            **self.realm,
            "clients": [self.client],
            "components": {
                "org.keycloak.userprofile.UserProfileProvider": [
                    {
                        "providerId": "declarative-user-profile",
                        "subComponents": {},
                        "config": {"kc.user.profile.config": [profile]},
                    }
                ]
            },
        }

    def document(self) -> dict[str, Any]:
        """The rendering as one JSON document (what the golden files hold)."""
        return {
            "realm": self.realm,
            "client": self.client,
            "userProfile": self.user_profile,
            "requiredActions": self.required_actions,
        }


def default_directory() -> Path:
    """The templates packaged with the operator, or else the checkout's ``realms/``."""
    packaged = Path(str(importlib.resources.files("realm_operator"))) / "realms"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "realms"


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` laid over it: objects merge, everything else is replaced."""
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class RealmTemplates:
    """The templates in one folder."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or default_directory()
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(self.directory),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # noqa: S701 - renders JSON; values go through tojson
            keep_trailing_newline=True,
        )

    def names(self) -> list[str]:
        return sorted(
            path.name.removesuffix(SUFFIX)
            for path in self.directory.glob(f"*{SUFFIX}")
            if not path.name.startswith("_")
        )

    def context(self, spec: RegionSpec, gateway_issuer: str) -> dict[str, Any]:
        """Everything a template may use, from the Region and the gateway's issuer."""
        issuer = gateway_issuer.rstrip("/")
        return {
            "code": spec.code,
            "realm": spec.realm_name,
            "kind": spec.kind.value,
            "names": {"zh": spec.names.zh, "en": spec.names.en},
            "gateway": {
                "client_id": GATEWAY_CLIENT_ID,
                "callback": f"{issuer}/callback/{spec.code}",
                # RP-Initiated Logout 1.0 §3: where the region sends the browser back.
                "logout_return": f"{issuer}/logout/return/{spec.code}",
                # Back-Channel Logout 1.0 §2.2: where the region tells of its logouts.
                "backchannel_logout": f"{issuer}/backchannel-logout/{spec.code}",
            },
            "acr_loa_map": spec.acr_loa_map,
            "mfa": {"otp": spec.mfa.otp.value},
        }

    def render(self, name: str, context: dict[str, Any]) -> RealmBlueprint:
        if name not in self.names():
            known = ", ".join(self.names())
            raise TemplateError(f"unknown realm template {name!r} (known: {known})")
        try:
            text = self._env.get_template(name + SUFFIX).render(context)
            document = json.loads(text)
        except (jinja2.TemplateError, ValueError) as exc:
            raise TemplateError(f"realm template {name!r} does not render: {exc}") from exc
        try:
            blueprint = RealmBlueprint(
                realm=dict(document["realm"]),
                client=dict(document["client"]),
                user_profile=dict(document["userProfile"]),
                required_actions=dict(document.get("requiredActions", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TemplateError(f"realm template {name!r} lacks {exc}") from exc
        if blueprint.realm.get("realm") != context["realm"]:
            raise TemplateError(f"realm template {name!r} must name the realm {context['realm']}")
        return blueprint

    def render_for(
        self, spec: RegionSpec, gateway_issuer: str, owner: str | None = None
    ) -> RealmBlueprint:
        """The Region's blueprint: its template, its overrides, and the owner marker.

        Overrides pass the allow-list (:func:`~realm_operator.models.check_overrides`), or this
        raises :class:`~realm_operator.models.OverrideError`; a realm's name, clients,
        components, users and ``enabled`` are refused even before that, as a template error.
        """
        blueprint = self.render(spec.template_name, self.context(spec, gateway_issuer))
        protected = PROTECTED_KEYS & spec.overrides.keys()
        if protected:
            raise TemplateError(f"overrides may not set {', '.join(sorted(protected))}")
        realm = deep_merge(blueprint.realm, check_overrides(spec.overrides).realm())
        if realm.get("defaultLocale") not in (realm.get("supportedLocales") or []):
            # supportedLocales without defaultLocale: the template's default must stay offered.
            raise OverrideError(
                [
                    (
                        "supportedLocales",
                        f"must include the realm's defaultLocale {realm.get('defaultLocale')} "
                        "(or set defaultLocale beside it)",
                    )
                ]
            )
        if owner is not None:
            realm.setdefault("attributes", {})[OWNER_ATTRIBUTE] = owner
        return RealmBlueprint(
            realm, blueprint.client, blueprint.user_profile, blueprint.required_actions
        )
