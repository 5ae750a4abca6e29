"""The demo's regions as Keycloak realms, built the way the operator builds a Region's.

Each realm is rendered from the product's templates in ``realms/`` (the region kind's template:
province, municipality, department) by :class:`realm_operator.templates.RealmTemplates` and
written through the operator's Keycloak wrapper, :class:`realm_operator.keycloak.RealmAdmin`: the
same realm settings, password policy, user profile and gateway client (``tongxing-gateway``)
a Region gets in a cluster. Only the realm's display name comes from the demo (a template
override, as a Region's ``spec.overrides`` would give it), plus one thing the templates do not
have: the citizen's name as written in Chinese.

Keycloak's full-name mapper (the templates' ``name`` claim) writes given name, space, family
name: "三 张". A Chinese name is written family name first and without a space: "张三". The demo's
realms therefore also carry a ``full_name`` attribute and claim, and the demo registers each
region with the claim mapping that names it (a region naming a claim its own way is data).

The enterprise region's realm comes from ``realms/enterprise.json.j2`` like any region's; its
people also carry the enterprise's attributes (credit code, name, type, their role), which only
an administrator sets, as the e-business-licence system would.

The proofing provider's realm (:meth:`RealmProvisioner.provision_proofing`) is a department's
realm from the same templates, with its client's redirect URI the gateway's
``/proofing/callback`` and one more attribute and mapper: each person's ``verified_claims``
(OpenID Connect for Identity Assurance 1.0 §5), kept as JSON in an attribute only an
administrator sets, and put in the ID token as a JSON claim. What the provider vouches for is
then per person, unlike a hardcoded claim; what the gateway keeps of it is the platform's to
say (``TONGXING_PROOFING_PROVIDERS``).

Provisioning is idempotent: realm, user profile, client and citizens are created or brought back
to what the demo expects; the client secret is Keycloak's, read back after each run.
"""

from __future__ import annotations

import copy
import html
import json
import secrets
from dataclasses import dataclass, field
from typing import Any, Final

from keycloak.exceptions import KeycloakError
from pydantic import SecretStr
from realm_operator import diff
from realm_operator.keycloak import AdminCredentials, KeycloakUnavailableError, RealmAdmin
from realm_operator.models import KeycloakConnection, Level, Names, RegionSpec
from realm_operator.models import RegionKind as RealmKind
from realm_operator.templates import GATEWAY_CLIENT_ID, RealmBlueprint, RealmTemplates

from tongxing_demo.federation import ENTERPRISE, Citizen, DemoRegion, verified_claims

KEYCLOAK_TIMEOUT: Final = 20.0
FULL_NAME: Final = "full_name"
#: The claims of the demo's realms, as the gateway's region registration names them.
CLAIMS: Final = {"identity_number": "id_number", "name": FULL_NAME, "phone_number": "phone_number"}

FULL_NAME_ATTRIBUTE: Final[dict[str, Any]] = {
    "name": FULL_NAME,
    "displayName": "姓名 (full name as written)",
    "group": "identity",
    "validations": {"length": {"min": 1, "max": 255}},
    "permissions": {"view": ["admin", "user"], "edit": ["admin"]},
    "multivalued": False,
}
FULL_NAME_MAPPER: Final[dict[str, Any]] = {
    "name": FULL_NAME,
    "protocol": "openid-connect",
    "protocolMapper": "oidc-usermodel-attribute-mapper",
    "consentRequired": False,
    "config": {
        "user.attribute": FULL_NAME,
        "claim.name": FULL_NAME,
        "jsonType.label": "String",
        "id.token.claim": "true",
        "access.token.claim": "false",
        "userinfo.token.claim": "true",
    },
}
VERIFIED_CLAIMS: Final = "verified_claims"
VERIFIED_CLAIMS_ATTRIBUTE: Final[dict[str, Any]] = {
    "name": VERIFIED_CLAIMS,
    "displayName": "实名核验结果 (verified claims, JSON)",
    "group": "identity",
    "validations": {"length": {"min": 2, "max": 2048}},
    "permissions": {"view": ["admin"], "edit": ["admin"]},
    "multivalued": False,
}
VERIFIED_CLAIMS_MAPPER: Final[dict[str, Any]] = {
    "name": VERIFIED_CLAIMS,
    "protocol": "openid-connect",
    "protocolMapper": "oidc-usermodel-attribute-mapper",
    "consentRequired": False,
    "config": {
        "user.attribute": VERIFIED_CLAIMS,
        "claim.name": VERIFIED_CLAIMS,
        "jsonType.label": "JSON",
        "id.token.claim": "true",
        "access.token.claim": "false",
        "userinfo.token.claim": "false",
    },
}
#: When the demo's proofing provider says it checked everyone (IDA §5.1.1 ``time``).
PROOFED_AT: Final = "2026-05-01T08:00:00Z"
# Keycloak's answer to a password equal to one of the last N (the templates' passwordHistory).
PASSWORD_HISTORY_ERROR: Final = "invalidPasswordHistoryMessage"  # noqa: S105 - an error code


@dataclass(frozen=True)
class KeycloakAccess:
    """A Keycloak and its master-realm administrator."""

    url: str
    admin_user: str
    admin_password: str = field(repr=False)

    def credentials(self) -> AdminCredentials:
        return AdminCredentials(self.url, self.admin_user, SecretStr(self.admin_password))


@dataclass(frozen=True)
class RegionRealm:
    """A provisioned realm, as the gateway's registration of its region needs it."""

    realm: str
    issuer: str
    client_secret: str = field(repr=False)
    #: The realm's acr values as the gateway's levels (the template's acr.loa.map).
    acr_mapping: dict[str, Level]


# --- passwords ---------------------------------------------------------------------------------


def citizen_password() -> str:
    """A password every template's policy takes (the strictest, ``department``: 14 characters,
    upper and lower case, a digit and a special character), still short enough to type."""
    return f"Tx-{secrets.token_hex(4)}-{secrets.randbelow(10_000):04d}"


def fits_password_policy(password: str) -> bool:
    """Whether ``password`` passes every template's policy (kept passwords are checked again:
    demos before the templates used shorter ones)."""
    return (
        14 <= len(password) <= 128
        and any(ch.isupper() for ch in password)
        and any(ch.islower() for ch in password)
        and any(ch.isdigit() for ch in password)
        and any(not ch.isalnum() for ch in password)
    )


# --- the realm ---------------------------------------------------------------------------------


def region_spec(region: DemoRegion, realm: str, keycloak_url: str) -> RegionSpec:
    """The demo region as the operator's Region would describe it."""
    title_zh = f"{region.realm_title_zh}（演示）"
    title_en = f"{region.realm_title_en} (demo)"
    return RegionSpec(
        code=region.code,
        names=Names(zh=region.zh, en=region.en),
        kind=RealmKind(region.kind.value),
        keycloak=KeycloakConnection(url=keycloak_url, realm=realm),
        overrides={
            "displayName": title_zh,
            "displayNameHtml": f'<span lang="zh-CN">{html.escape(title_zh)}</span> '
            f'<span lang="en">{html.escape(title_en)}</span>',
        },
    )


def demo_blueprint(blueprint: RealmBlueprint) -> RealmBlueprint:
    """The template's realm with the citizen's written name as an attribute and a claim."""
    profile = copy.deepcopy(blueprint.user_profile)
    profile["attributes"] = [*profile.get("attributes", []), FULL_NAME_ATTRIBUTE]
    client = copy.deepcopy(blueprint.client)
    client["protocolMappers"] = [*client.get("protocolMappers", []), FULL_NAME_MAPPER]
    return RealmBlueprint(blueprint.realm, client, profile, blueprint.required_actions)


class CitizenAccounts(RealmAdmin):
    """The operator's realm administration, plus the demo's citizens (the operator makes no
    accounts: people register with their region)."""

    def ensure(self, citizen: Citizen, password: str, extra: dict[str, str] | None = None) -> None:
        """The citizen's account, with ``extra`` attributes (the enterprise's, the verified
        claims) beside the identity ones."""
        user = {
            "username": citizen.username,
            "firstName": citizen.given_name,
            "lastName": citizen.family_name,
            "email": f"{citizen.username}@example.cn",
            "emailVerified": True,
            "enabled": True,
            "attributes": {
                "id_number": [citizen.identity_number],
                FULL_NAME: [citizen.full_name],
                "phone_number": [citizen.phone_number],
                **{name: [value] for name, value in (extra or {}).items()},
            },
        }
        with self._errors(f"set up the account {citizen.username}"):
            user_id = self._admin.get_user_id(citizen.username)
            if user_id is None:
                user_id = self._admin.create_user(user)
            else:
                self._admin.update_user(user_id, user)
            try:
                self._admin.set_user_password(user_id, password, temporary=False)
            except KeycloakError as error:
                # A restart sets the password the account has already: the realm's password
                # history refuses it, and the account is as the demo wants it.
                if PASSWORD_HISTORY_ERROR not in _body(error):
                    raise


def _body(error: KeycloakError) -> str:
    body = getattr(error, "response_body", None)
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")
    return str(body or "")


def enterprise_attributes(citizen: Citizen) -> dict[str, str]:
    """What the e-business-licence system holds of a person who signs in for the enterprise."""
    if citizen.enterprise_role is None:
        return {}
    return {
        "credit_code": ENTERPRISE.credit_code,
        "enterprise_name": ENTERPRISE.name,
        "enterprise_type": ENTERPRISE.type,
        "enterprise_role": citizen.enterprise_role,
    }


def proofing_blueprint(blueprint: RealmBlueprint, gateway_url: str) -> RealmBlueprint:
    """A department's realm as the proofing provider: its client returns to the gateway's
    ``/proofing/callback`` and asserts each person's ``verified_claims``; no logout of the
    gateway's region sessions goes through it (it is no region)."""
    profile = copy.deepcopy(blueprint.user_profile)
    profile["attributes"] = [*profile.get("attributes", []), VERIFIED_CLAIMS_ATTRIBUTE]
    client = copy.deepcopy(blueprint.client)
    client["redirectUris"] = [f"{gateway_url}/proofing/callback"]
    client["protocolMappers"] = [*client.get("protocolMappers", []), VERIFIED_CLAIMS_MAPPER]
    client["attributes"] = {
        **client.get("attributes", {}),
        "post.logout.redirect.uris": "",
        "backchannel.logout.url": "",
    }
    return RealmBlueprint(blueprint.realm, client, profile, blueprint.required_actions)


@dataclass(frozen=True)
class ProofingRealm:
    """The provisioned proofing provider, as ``TONGXING_PROOFING_PROVIDERS`` names it."""

    realm: str
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)


class RealmProvisioner:
    """Creates the demo's realms from the templates, or brings them back to them."""

    def __init__(self, access: KeycloakAccess, templates: RealmTemplates | None = None) -> None:
        self.access = access
        self.templates = templates or RealmTemplates()

    def issuer(self, realm: str) -> str:
        return f"{self.access.url}/realms/{realm}"

    def _admin(self, realm: str) -> CitizenAccounts:
        return CitizenAccounts(self.access.credentials(), realm, timeout=KEYCLOAK_TIMEOUT)

    def provision(
        self,
        realm: str,
        region: DemoRegion,
        gateway_url: str,
        citizens: list[tuple[Citizen, str]],
    ) -> RegionRealm:
        spec = region_spec(region, realm, self.access.url)
        blueprint = demo_blueprint(self.templates.render_for(spec, gateway_url))
        admin = self._admin(realm)
        client_secret = _ensure_realm(admin, blueprint)
        for citizen, password in citizens:
            admin.ensure(citizen, password, enterprise_attributes(citizen))
        levels = {a.acr: a.level for a in spec.acr_mapping}
        return RegionRealm(realm, self.issuer(realm), client_secret, levels)

    def provision_proofing(
        self,
        realm: str,
        provider: DemoRegion,
        gateway_url: str,
        citizens: list[tuple[Citizen, str]],
    ) -> ProofingRealm:
        """The proofing provider's realm, with an account for each of ``citizens`` (the same
        password as at their region) carrying what it verified of them."""
        spec = region_spec(provider, realm, self.access.url)
        rendered = demo_blueprint(self.templates.render_for(spec, gateway_url))
        blueprint = proofing_blueprint(rendered, gateway_url)
        admin = self._admin(realm)
        client_secret = _ensure_realm(admin, blueprint)
        for citizen, password in citizens:
            claims = verified_claims(citizen, PROOFED_AT)
            text = json.dumps(claims, ensure_ascii=False, separators=(",", ":"))
            admin.ensure(citizen, password, {VERIFIED_CLAIMS: text})
        return ProofingRealm(realm, self.issuer(realm), GATEWAY_CLIENT_ID, client_secret)

    def delete(self, realm: str) -> None:
        self._admin(realm).delete_realm()


def _ensure_realm(admin: RealmAdmin, blueprint: RealmBlueprint) -> str:
    """Read, diff, write (as the operator's reconciler does); return the client's secret."""
    realm = admin.get_realm()
    if realm is None:
        admin.create_realm(blueprint.creation())
        realm = admin.get_realm()
        if realm is None:
            raise KeycloakUnavailableError(admin.url, f"realm {admin.realm} vanished")
    update = diff.realm_update(blueprint.realm, realm)
    if update:
        admin.update_realm(update)
    profile = diff.user_profile_update(blueprint.user_profile, admin.user_profile())
    if profile is not None:
        admin.update_user_profile(profile)
    for alias, wanted in blueprint.required_actions.items():
        current = admin.required_action(alias)
        if current is not None and not diff.covers(current, wanted):
            admin.update_required_action(alias, {**current, **wanted})
    client = admin.client_by_client_id(GATEWAY_CLIENT_ID)
    if client is None:
        admin.create_client(blueprint.client)
        client = admin.client_by_client_id(GATEWAY_CLIENT_ID)
        if client is None:
            raise KeycloakUnavailableError(admin.url, "the gateway client vanished")
    client_update = diff.client_update(blueprint.client, client)
    if client_update is not None:
        admin.update_client(client["id"], client_update)
    to_add, to_replace = diff.mapper_changes(
        blueprint.client.get("protocolMappers", []), client.get("protocolMappers") or []
    )
    for mapper in to_add:
        admin.add_mapper(client["id"], mapper)
    for mapper in to_replace:
        admin.update_mapper(client["id"], mapper)
    return admin.client_secret(client["id"])
