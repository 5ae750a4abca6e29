"""Tenants play the attacker: THREAT_MODEL.md rows 1, 2 and 8 for the operator and the admin API.

A tenant here is what the threat model says: a ServiceAccount that may create, patch and delete
Region and Portal resources in its own namespace, and nothing else (no Secret rights). It applies
its manifests with kubectl against the harness's kube-apiserver; the operator runs as the
ServiceAccount of ``operator/rbac.yaml`` (so the API server's audit log names it) with the
platform's settings: one granted Keycloak (the harness's, credentials in a platform namespace),
the default level ceiling (loa2) and its own admin API credential at a real gateway.

Each test plays one attack from issue 11 and shows it achieve nothing: no request leaves for a
host the platform did not list, no Secret the platform did not grant is read, no registration
changes hands, no resource raises its own trust, and no upstream body reaches a status, an event
or a log line.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from gateway_fixtures import (
    KeycloakRegion,
    Portal,
    PortalSite,
    RunningGateway,
    keycloak_region,
    register_portal,
    sign_in_at_keycloak,
    start_gateway,
)
from operator_fixtures import (
    GROUP,
    Namespace,
    OperatorProcess,
    add_citizen,
    create_namespace,
    install_crds,
    keycloak_grant,
    kubectl,
    operator_logs,
    realm_names,
    service_account_kubeconfig,
    sign_in,
    start_operator,
    token_kubeconfig,
    wait_until,
)
from playwright.sync_api import Browser
from tongxing_dev.keycloak import KeycloakEndpoint
from tongxing_dev.kube import KubeEndpoint

MARKER = "tx-leak-" + secrets.token_hex(8)  # what an upstream body carries, and must not leak
GATEWAY_SECRET_VALUE = "gw-" + secrets.token_urlsafe(32)  # the platform Secret a tenant covets


class Listener:
    """An HTTP server on loopback that records every request and answers as it is told.

    It plays a host a tenant controls (it must receive nothing) or a Keycloak the platform
    listed that answers 4xx with a marker in the body (the marker must go nowhere). A real
    Keycloak cannot be made to say an arbitrary string in an error body; this server can.
    """

    def __init__(self, *, token: bool = False) -> None:
        self.requests: list[tuple[str, str, str]] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> str:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode(errors="replace") if length else ""
                listener.requests.append((self.command, self.path, body))
                return body

            def _answer(self, status: int, document: dict[str, Any]) -> None:
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                self._record()
                if token and self.path.endswith("/protocol/openid-connect/token"):
                    self._answer(
                        200,
                        {
                            "access_token": "opaque-" + secrets.token_hex(8),
                            "expires_in": 300,
                            "refresh_expires_in": 0,
                            "token_type": "Bearer",
                        },
                    )
                    return
                self._answer(400, {"error": MARKER, "error_description": f"{MARKER} (post)"})

            def do_GET(self) -> None:
                self._record()
                self._answer(403, {"error": MARKER, "error_description": f"{MARKER} (get)"})

            do_PUT = do_POST  # noqa: N815 - http.server's naming
            do_DELETE = do_GET  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclasses.dataclass
class Tenant:
    """A namespace and the kubectl of a ServiceAccount limited to Regions and Portals in it."""

    namespace: Namespace
    kube: KubeEndpoint  # with the tenant's kubeconfig

    def apply(self, *documents: dict[str, Any]) -> None:
        for document in documents:
            document.setdefault("metadata", {})["namespace"] = self.namespace.name
        text = yaml.safe_dump_all(documents, allow_unicode=True)
        kubectl(self.kube, "apply", "-f", "-", stdin=text)

    def delete(self, kind: str, name: str, timeout: int = 30) -> float:
        """Delete as the tenant and wait until it is gone; the seconds it took."""
        started = time.monotonic()
        kubectl(self.kube, "delete", kind, name, "-n", self.namespace.name, f"--timeout={timeout}s")
        return time.monotonic() - started

    def can(self, verb: str, resource: str) -> bool:
        done = kubectl(
            self.kube, "auth", "can-i", verb, resource, "-n", self.namespace.name, check=False
        )
        return done.stdout.strip() == "yes"


def make_tenant(kube: KubeEndpoint, namespace: Namespace, folder: Path) -> Tenant:
    rules = [
        {
            "apiGroups": [GROUP],
            "resources": ["regions", "portals"],
            "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"],
        },
        {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list"]},
    ]
    namespace.apply(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "tenant"}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "tenant"},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "tenant"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "tenant"},
            "subjects": [{"kind": "ServiceAccount", "name": "tenant", "namespace": namespace.name}],
        },
    )
    config = token_kubeconfig(
        kube, namespace.name, "tenant", folder / f"{namespace.name}.kubeconfig", namespace.name
    )
    return Tenant(namespace, dataclasses.replace(kube, kubeconfig=str(config)))


def bare_namespace(kube: KubeEndpoint, keycloak: KeycloakEndpoint, prefix: str) -> Namespace:
    """A tenant's namespace: no Keycloak credentials in it, the gateway's secrets are."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    kubectl(kube, "create", "namespace", name)
    namespace = Namespace(kube, name, keycloak)
    # The gateway's own secrets live beside the tenants' resources by default (the chart's
    # release namespace): the first thing an attacker would name.
    namespace.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "tongxing-gateway"},
            "stringData": {"admin-token": GATEWAY_SECRET_VALUE},
        }
    )
    return namespace


@dataclasses.dataclass
class Platform:
    gateway: RunningGateway
    operator: OperatorProcess
    platform: Namespace
    tenant: Tenant
    victim: Tenant
    leaky: Listener
    operator_user: str


@pytest.fixture(scope="module")
def world(
    kube: KubeEndpoint,
    keycloak: KeycloakEndpoint,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Platform]:
    folder = tmp_path_factory.mktemp("tenancy")
    install_crds(kube)
    gateways = start_gateway(folder / "gateway")
    gateway = next(gateways)
    platform = create_namespace(kube, keycloak, "tx-platform")  # holds keycloak-admin
    tenant_ns = bare_namespace(kube, keycloak, "tx-tenant")
    victim_ns = bare_namespace(kube, keycloak, "tx-victim")
    leaky = Listener(token=True)
    namespaces = [platform, tenant_ns, victim_ns]
    operator: OperatorProcess | None = None
    try:
        tenant = make_tenant(kube, tenant_ns, folder)
        victim = make_tenant(kube, victim_ns, folder)
        grants = [
            keycloak_grant(keycloak.url, platform.name),
            # A Keycloak the platform listed that turns hostile: it answers 4xx with a marker.
            keycloak_grant(leaky.url, platform.name, namespaces=(tenant_ns.name,)),
        ]
        kubeconfig = service_account_kubeconfig(
            tenant_ns,
            folder / "operator.kubeconfig",
            platform_namespace=platform.name,
            also_watched=(victim_ns.name,),
        )
        operator = start_operator(
            kube,
            tenant_ns.name,
            folder / "operator.log",
            gateway_url=gateway.issuer,
            admin_token=gateway.operator_token,
            keycloaks=grants,
            kubeconfig=kubeconfig,
            also_watch=(victim_ns.name,),
        )
        yield Platform(
            gateway,
            operator,
            platform,
            tenant,
            victim,
            leaky,
            f"system:serviceaccount:{tenant_ns.name}:tongxing-operator",
        )
    finally:
        for namespace in (tenant_ns, victim_ns):
            namespace.clean_up()  # while the operator runs: its finalizers clean up
        if operator is not None:
            operator.stop()
        for namespace in namespaces:
            namespace.force_clean_up()
        leaky.close()
        for _ in gateways:  # stops the gateway
            pass


def region(namespace: Namespace, name: str, code: str, **keycloak: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "Region",
        "metadata": {"name": name, "namespace": namespace.name},
        "spec": {
            "code": code,
            "names": {"zh": "浙江省", "en": "Zhejiang"},
            "kind": "province",
            "keycloak": {"url": namespace.keycloak.url, **keycloak},
        },
    }


def portal(name: str, client_id: str, region_code: str, uri: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "Portal",
        "metadata": {"name": name},
        "spec": {
            "region": region_code,
            "clientId": client_id,
            "names": {"zh": "门户", "en": "Portal"},
            "redirectUris": [uri],
            "secretName": f"{name}-credentials",
        },
    }


def wait_reason(
    world: Platform, namespace: Namespace, kind: str, name: str, reason: str, timeout: int = 60
) -> dict[str, Any]:
    """The Ready condition once it is False with ``reason`` (the operator's log if never)."""

    def reached() -> dict[str, Any] | None:
        found = namespace.condition(kind, name, "Ready")
        return found if found and found["reason"] == reason else None

    found: dict[str, Any] = wait_until(
        reached, timeout=timeout, what=f"{kind}/{name} {reason}", operators=(world.operator,)
    )
    assert found["status"] == "False"
    return found


def warned(namespace: Namespace, name: str, reason: str) -> bool:
    return any(e["type"] == "Warning" and e["reason"] == reason for e in namespace.events(name))


def secret_reads(world: Platform, kube: KubeEndpoint, namespace: str) -> list[dict[str, Any]]:
    """What the API server's audit log says the operator did to Secrets in ``namespace``."""
    assert kube.audit_log, "the harness's kube-apiserver writes no audit log"
    found = []
    for line in Path(kube.audit_log).read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        if (
            event.get("user", {}).get("username") == world.operator_user
            and ref.get("resource") == "secrets"
            and ref.get("namespace") == namespace
        ):
            found.append({"verb": event["verb"], "name": ref.get("name")})
    return found


def test_a_tenant_has_no_secret_rights_of_its_own(world: Platform) -> None:
    assert world.tenant.can("create", "regions.tongxing.io")
    assert not world.tenant.can("get", "secrets")
    assert not world.tenant.can("list", "secrets")


def test_a_region_naming_a_host_of_its_own_and_the_gateways_secret_gets_no_request_and_no_read(
    world: Platform, kube: KubeEndpoint
) -> None:
    tenant = world.tenant.namespace
    thief = Listener()
    try:
        world.tenant.apply(
            region(
                tenant,
                "thief",
                f"thief-{uuid.uuid4().hex[:6]}",
                url=thief.url,
                adminSecretRef={
                    "name": "tongxing-gateway",
                    "usernameKey": "admin-token",
                    "passwordKey": "admin-token",
                },
            ),
            # The listed Keycloak, but credentials of the tenant's choosing.
            region(
                tenant,
                "borrower",
                f"borrow-{uuid.uuid4().hex[:6]}",
                adminSecretRef={"name": "tongxing-gateway", "usernameKey": "admin-token"},
            ),
        )
        refused = wait_reason(world, tenant, "region", "thief", "KeycloakNotAllowed")
        assert "keycloak.url" in refused["message"]
        borrowed = wait_reason(world, tenant, "region", "borrower", "CredentialsNotGranted")
        assert "adminSecretRef" in borrowed["message"]
        assert (tenant.get("region", "thief") or {})["status"]["phase"] == "Failed"
        wait_until(lambda: warned(tenant, "thief", "KeycloakNotAllowed"), timeout=20)
        wait_until(lambda: warned(tenant, "borrower", "CredentialsNotGranted"), timeout=20)

        # Deleting them is not held up by a finalizer that keeps sending the secret.
        assert world.tenant.delete("region", "thief") < 20
        assert world.tenant.delete("region", "borrower") < 20
        time.sleep(2)  # a late retry would have had time to arrive
        assert thief.requests == []
        reads = secret_reads(world, kube, tenant.name)
        assert [r for r in reads if r["name"] == "tongxing-gateway"] == []
        logs = world.operator.output()
        assert GATEWAY_SECRET_VALUE not in logs
    finally:
        thief.close()


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def client_authenticates(gateway: RunningGateway, client_id: str, secret: str) -> bool:
    """Whether the gateway accepts these client credentials (RFC 7662 introspection)."""
    response = requests.post(
        f"{gateway.issuer}/introspect",
        data={"token": "not-a-token"},
        headers={"Authorization": _basic(client_id, secret)},
        timeout=10,
    )
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


def secret_value(namespace: Namespace, name: str, key: str) -> str:
    found = namespace.get("secret", name)
    assert found is not None, f"no Secret {name}"
    return base64.b64decode(found["data"][key]).decode()


def test_a_portal_claiming_another_portals_client_id_changes_nothing(
    world: Platform, kube: KubeEndpoint
) -> None:
    client_id = f"shared-{uuid.uuid4().hex[:6]}"
    victim_ns, tenant_ns = world.victim.namespace, world.tenant.namespace
    world.victim.apply(portal("owner", client_id, "zj", "https://owner.example.cn/cb"))
    victim_ns.wait("condition=Ready", "portal/owner")
    before = world.gateway.admin("GET", f"/portals/{client_id}").json()
    stored_before = world.gateway.services.registry.portal(client_id)
    owner_secret = secret_value(victim_ns, "owner-credentials", "client_secret")
    assert client_authenticates(world.gateway, client_id, owner_secret)

    world.tenant.apply(portal("intruder", client_id, "zj", "https://intruder.example/cb"))
    taken = wait_reason(world, tenant_ns, "portal", "intruder", "ClientIdTaken")
    assert client_id in taken["message"]
    wait_until(lambda: warned(tenant_ns, "intruder", "ClientIdTaken"), timeout=20)
    time.sleep(4)  # a drift period: no overwrite fight either
    assert world.gateway.admin("GET", f"/portals/{client_id}").json() == before
    assert world.gateway.services.registry.portal(client_id) == stored_before
    assert client_authenticates(world.gateway, client_id, owner_secret)
    written = tenant_ns.get("secret", "intruder-credentials")
    if written is not None:  # the intruder's own Secret, if made, opens nothing
        intruder_secret = base64.b64decode(written["data"]["client_secret"]).decode()
        assert not client_authenticates(world.gateway, client_id, intruder_secret)
    assert victim_ns.condition("portal", "owner", "Ready")["status"] == "True"  # type: ignore[index]

    assert world.tenant.delete("portal", "intruder") < 20
    assert world.gateway.services.registry.portal(client_id) == stored_before
    assert client_authenticates(world.gateway, client_id, owner_secret)
    time.sleep(4)
    assert victim_ns.condition("portal", "owner", "Ready")["status"] == "True"  # type: ignore[index]
    assert world.gateway.admin("GET", f"/portals/{client_id}").json() == before


def test_a_region_claiming_another_regions_code_changes_nothing_and_citizens_still_sign_in(
    world: Platform, keycloak: KeycloakEndpoint, browser: Browser
) -> None:
    code = f"zj-{uuid.uuid4().hex[:6]}"
    victim_ns, tenant_ns = world.victim.namespace, world.tenant.namespace
    victim_ns.codes.append(code)
    world.victim.apply(region(victim_ns, "home", code))
    victim_ns.wait("condition=Ready", "region/home", timeout=90)
    password = add_citizen(keycloak, code)
    before = world.gateway.services.registry.region(code)
    assert before is not None

    # Same code, a realm of the intruder's own in the listed Keycloak.
    intruder_realm = f"fake-{uuid.uuid4().hex[:6]}"
    tenant_ns.codes.append(intruder_realm)
    world.tenant.apply(
        region(tenant_ns, "impostor", code, realm=intruder_realm),
    )
    taken = wait_reason(world, tenant_ns, "region", "impostor", "RegionCodeTaken")
    assert code in taken["message"]
    wait_until(lambda: warned(tenant_ns, "impostor", "RegionCodeTaken"), timeout=20)
    time.sleep(4)
    after = world.gateway.services.registry.region(code)
    assert after == before  # issuer, client id, client secret, mapping: field by field
    assert after is not None
    assert after.client_secret.get_secret_value() == before.client_secret.get_secret_value()

    assert world.tenant.delete("region", "impostor") < 30
    assert world.gateway.services.registry.region(code) == before
    assert code in realm_names(keycloak)
    victim_ns.wait("condition=Ready", "region/home")

    # The region still works: a citizen signs in through it.
    site = PortalSite()
    try:
        registered = register_portal(world.gateway, site, "tb")
        result = sign_in(browser, registered, site, code, password)
        assert result["claims"]["sub"]
        assert result["claims"]["acr"] == "loa1"  # the realm said pwd
    finally:
        site.close()


@pytest.mark.parametrize(
    ("spec", "reason", "names"),
    [
        (
            {
                "acrMapping": [
                    {"acr": "pwd", "loa": 1, "level": "loa1"},
                    {"acr": "otp", "loa": 2, "level": "loa3"},
                ]
            },
            "LevelAboveCeiling",
            "acrMapping",
        ),
        ({"overrides": {"browserFlow": "direct grant"}}, "OverrideNotAllowed", "browserFlow"),
        ({"overrides": {"authenticationFlows": []}}, "OverrideNotAllowed", "authenticationFlows"),
        (
            {"overrides": {"identityProviders": [{"alias": "x", "providerId": "oidc"}]}},
            "OverrideNotAllowed",
            "identityProviders",
        ),
        ({"overrides": {"registrationAllowed": True}}, "OverrideNotAllowed", "registrationAllowed"),
        (
            {"overrides": {"bruteForceProtected": False}},
            "OverrideNotAllowed",
            "bruteForceProtected",
        ),
        ({"overrides": {"attributes": {"acr.loa.map": "{}"}}}, "OverrideNotAllowed", "attributes"),
        ({"overrides": {"passwordPolicy": "length(4)"}}, "OverrideNotAllowed", "passwordPolicy"),
    ],
    ids=[
        "acr-above-ceiling",
        "browserFlow",
        "authenticationFlows",
        "identityProviders",
        "registrationAllowed",
        "bruteForce-off",
        "attributes",
        "weak-passwordPolicy",
    ],
)
def test_a_region_cannot_set_its_own_trust(
    world: Platform, keycloak: KeycloakEndpoint, spec: dict[str, Any], reason: str, names: str
) -> None:
    tenant = world.tenant.namespace
    code = f"trust-{uuid.uuid4().hex[:6]}"
    tenant.codes.append(code)
    document = region(tenant, code, code)
    document["spec"].update(spec)
    world.tenant.apply(document)
    refused = wait_reason(world, tenant, "region", code, reason)
    assert names in refused["message"]
    assert (tenant.get("region", code) or {})["status"]["phase"] == "Failed"
    wait_until(lambda: warned(tenant, code, reason), timeout=20)
    assert code not in realm_names(keycloak)  # nothing was provisioned
    assert world.gateway.admin("GET", f"/regions/{code}").status_code == 404
    assert world.tenant.delete("region", code) < 20


def test_the_gateway_refuses_a_level_above_the_ceiling_from_the_operator_too(
    world: Platform, keycloak: KeycloakEndpoint
) -> None:
    code = f"ceil-{uuid.uuid4().hex[:6]}"
    body = {
        "names": {"zh": "浙江", "en": "Zhejiang"},
        "kind": "province",
        "issuer": keycloak.issuer(code),
        "client_id": "tongxing-gateway",
        "client_secret": secrets.token_urlsafe(32),
        "acr_mapping": {"pwd": "loa1", "otp": "loa3"},
        "managed_by": {
            "kind": "Region",
            "namespace": world.tenant.namespace.name,
            "name": code,
            "uid": str(uuid.uuid4()),
        },
    }
    refused = world.gateway.admin_as(world.gateway.operator_token, "PUT", f"/regions/{code}", body)
    assert refused.status_code == 400, refused.text
    assert [f["field"] for f in refused.json()["fields"]] == ["acr_mapping.otp"]
    assert world.gateway.admin("GET", f"/regions/{code}").status_code == 404


def test_the_operators_credential_reaches_only_its_own_registrations(
    world: Platform, keycloak: KeycloakEndpoint
) -> None:
    as_operator = world.gateway.operator_token
    reload = world.gateway.admin_as(as_operator, "POST", "/policies/reload")
    assert reload.status_code == 403, reload.text
    assert reload.json()["error"] == "insufficient_scope"
    assert world.gateway.admin_as(as_operator, "GET", "/policies").status_code == 403

    # A portal the platform registered itself: the operator may neither read nor take it.
    site = PortalSite()
    try:
        platforms = register_portal(world.gateway, site, "platform")
    finally:
        site.close()
    before = world.gateway.admin("GET", f"/portals/{platforms.client_id}").json()
    read = world.gateway.admin_as(as_operator, "GET", f"/portals/{platforms.client_id}")
    assert read.status_code == 403, read.text
    listed = world.gateway.admin_as(as_operator, "GET", "/portals").json()
    assert platforms.client_id not in {p["client_id"] for p in listed}
    removed = world.gateway.admin_as(as_operator, "DELETE", f"/portals/{platforms.client_id}")
    assert removed.status_code == 409, removed.text
    assert world.gateway.admin("GET", f"/portals/{platforms.client_id}").json() == before
    assert client_authenticates(world.gateway, platforms.client_id, platforms.client_secret)


def test_an_upstream_error_body_reaches_no_status_event_or_log_line(
    world: Platform, kube: KubeEndpoint
) -> None:
    tenant = world.tenant.namespace
    world.tenant.apply(region(tenant, "leaky", f"leak-{uuid.uuid4().hex[:6]}", url=world.leaky.url))
    found = wait_until(
        lambda: (
            (c := tenant.condition("region", "leaky", "RealmReady"))
            and c["status"] == "False"
            and c
        ),
        timeout=60,
        what="the hostile Keycloak's refusal",
        operators=(world.operator,),
    )
    assert found["reason"] in ("KeycloakRejected", "KeycloakUnauthorized"), found
    assert world.leaky.requests, "the listed Keycloak was never asked: the test proves nothing"
    time.sleep(3)  # retries, drift, events: give every path a chance to leak
    status = kubectl(kube, "get", "region", "leaky", "-n", tenant.name, "-o", "yaml").stdout
    events = kubectl(kube, "get", "events", "-n", tenant.name, "-o", "yaml").stdout
    assert MARKER not in status
    assert MARKER not in events
    assert MARKER not in world.operator.output()
    assert world.tenant.delete("region", "leaky") < 30
    assert MARKER not in world.operator.output()
    assert MARKER not in kubectl(kube, "get", "events", "-n", tenant.name, "-o", "yaml").stdout


def test_the_operator_read_only_the_secrets_it_was_granted_or_made(
    world: Platform, kube: KubeEndpoint
) -> None:
    """Last in the module: the audit trail of everything the tests above made it do."""
    platform_reads = secret_reads(world, kube, world.platform.name)
    assert platform_reads, "the granted credentials were never read: the audit log is silent"
    assert {r["name"] for r in platform_reads} == {"keycloak-admin"}
    assert {r["verb"] for r in platform_reads} == {"get"}
    for namespace in (world.tenant.namespace.name, world.victim.namespace.name):
        names = {r["name"] for r in secret_reads(world, kube, namespace)}
        assert names <= {"owner-credentials", "intruder-credentials"}, names
    logs = "\n".join(operator_logs(world.operator))
    assert GATEWAY_SECRET_VALUE not in logs


def _sign_in_acr(browser: Browser, portal: Portal, site: PortalSite, region: KeycloakRegion) -> Any:
    """A fresh browser's sign-in at ``portal`` through ``region``: the ID token's ``acr``."""
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    try:
        started = portal.start()
        page.goto(started["url"])
        page.check(f"input[value={region.code}]")
        page.click("button[type=submit]")
        sign_in_at_keycloak(page, region)
        page.wait_for_url(f"{portal.redirect_uri}**")
        tokens = portal.finish(site.last_visit(portal.redirect_uri), started)
    finally:
        context.close()
    return tokens["claims"]["acr"]


def test_a_ceiling_lowered_after_registration_binds_every_sign_in(
    keycloak: KeycloakEndpoint, browser: Browser, tmp_path: Path
) -> None:
    """THREAT_MODEL row 2: the platform lowered a region's ceiling after it registered a mapping
    above it. The gateway issues no more than the ceiling; a region at the default ceiling, with
    the same mapping, shows the mapping is really in force."""
    low, usual = f"low-{uuid.uuid4().hex[:4]}", f"std-{uuid.uuid4().hex[:4]}"
    gateways = start_gateway(tmp_path / "gateway", region_level_ceilings={low: "loa1"})
    gateway = next(gateways)
    site = PortalSite()
    try:
        regions = {code: keycloak_region(keycloak, gateway, code) for code in (low, usual)}
        # Keycloak says acr "1" after a password; as registered while the platform allowed loa2
        # (straight into the registry: the admin API refuses it now, as the next lines show).
        mapping = {"1": "loa2"}
        for code in (low, usual):
            found = gateway.services.registry.region(code)
            assert found is not None
            gateway.services.registry.put_region(
                found.model_copy(update={"acr_mapping": mapping}), datetime.now(UTC)
            )
        body = gateway.admin("GET", f"/regions/{low}").json()
        refused = gateway.admin(
            "PUT",
            f"/regions/{low}",
            {**body, "acr_mapping": mapping, "client_secret": secrets.token_urlsafe(32)},
        )
        assert refused.status_code == 400, refused.text
        assert [f["field"] for f in refused.json()["fields"]] == ["acr_mapping.1"]

        portal_ = register_portal(gateway, site, "ceiling")
        assert _sign_in_acr(browser, portal_, site, regions[usual]) == "loa2"
        assert _sign_in_acr(browser, portal_, site, regions[low]) == "loa1"
    finally:
        site.close()
        for _ in gateways:  # stops the gateway
            pass
