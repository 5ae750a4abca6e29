"""The operator end to end: kubectl, the built kube-apiserver, a real Keycloak, a real gateway.

The operator runs as the process a cluster would run (``python -m realm_operator``), watching a
namespace of its own. Portals sign people in with openid-client and Chromium, using the client
credentials the operator wrote into a Secret.
"""

from __future__ import annotations

import base64
import functools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from gateway_fixtures import (
    Portal,
    PortalSite,
    RunningGateway,
    start_gateway,
)
from keycloak.exceptions import KeycloakError
from operator_fixtures import (
    EXAMPLES,
    PHONE,
    Namespace,
    OperatorProcess,
    TcpProxy,
    add_citizen,
    create_namespace,
    install_crds,
    keycloak_admin,
    kubectl,
    operator_logs,
    realm_names,
    service_account_kubeconfig,
    sign_in,
    start_operator,
    wait_until,
)
from playwright.sync_api import Browser
from realm_operator.diff import digest
from tongxing_dev.keycloak import KeycloakEndpoint
from tongxing_dev.kube import KubeEndpoint
from tongxing_dev.process import free_port

GATEWAY_CLIENT = "tongxing-gateway"
UNKNOWN_KID_INTERVAL = 10.5


@pytest.fixture(scope="module")
def crds(kube: KubeEndpoint) -> None:
    install_crds(kube)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    yield from start_gateway(tmp_path_factory.mktemp("gateway"), level_ceiling="loa3")


@pytest.fixture(scope="module")
def namespace(kube: KubeEndpoint, keycloak: KeycloakEndpoint, crds: None) -> Iterator[Namespace]:
    created = create_namespace(kube, keycloak, "tx-operator")
    yield created
    created.force_clean_up()


@pytest.fixture(scope="module")
def outage_proxy(keycloak: KeycloakEndpoint) -> Iterator[TcpProxy]:
    """A way to Keycloak a test can cut (down until started); the platform grants it too."""
    parts = urlsplit(keycloak.url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 80)
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def operator(
    kube: KubeEndpoint,
    namespace: Namespace,
    gateway: RunningGateway,
    outage_proxy: TcpProxy,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    folder = tmp_path_factory.mktemp("operator")
    # The operator runs as the ServiceAccount of operator/rbac.yaml: the manifest is enough.
    process = start_operator(
        kube,
        namespace.name,
        folder / "operator.log",
        gateway_url=gateway.issuer,
        admin_token=gateway.operator_token,
        keycloaks=[namespace.grant(), namespace.grant(outage_proxy.url)],
        kubeconfig=service_account_kubeconfig(namespace, folder / "kubeconfig"),
        # The platform lets these regions vouch for loa3 (the update below maps to it);
        # ceilings below it are test_tenant_boundaries.py's.
        level_ceiling="loa3",
    )
    yield process
    namespace.clean_up()  # while the operator runs, so its finalizer cleans Keycloak and gateway
    process.stop()


@pytest.fixture(scope="module")
def site() -> Iterator[PortalSite]:
    portals = PortalSite()
    yield portals
    portals.close()


def ready(
    namespace: Namespace, *objects: str, operators: tuple[OperatorProcess, ...], timeout: int = 60
) -> float:
    """``kubectl wait --for=condition=Ready``; the seconds it took (the operator's log if not)."""
    started = time.monotonic()
    try:
        namespace.wait("condition=Ready", *objects, timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n" + "\n".join(operator_logs(*operators))) from None
    return time.monotonic() - started


def secret_data(namespace: Namespace, name: str) -> dict[str, str]:
    found = namespace.get("secret", name)
    assert found is not None, f"no Secret {name}"
    return {k: base64.b64decode(v).decode() for k, v in found["data"].items()}


def gateway_client_secret(keycloak: KeycloakEndpoint, realm: str) -> str:
    admin = keycloak_admin(keycloak, realm)
    internal = admin.get_client_id(GATEWAY_CLIENT)
    assert internal is not None
    secret: str = admin.get_client_secrets(internal)["value"]
    return secret


def test_the_example_manifests_pass_the_api_servers_validation(
    kube: KubeEndpoint, namespace: Namespace
) -> None:
    documents = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            document["metadata"]["namespace"] = namespace.name
            documents.append(document)
    assert {d["kind"] for d in documents} == {"Region", "Portal", "KopfPeering"}
    assert {d["spec"]["kind"] for d in documents if d["kind"] == "Region"} >= {
        "province",
        "municipality",
        "department",
    }
    done = kubectl(
        kube,
        "apply",
        "--dry-run=server",
        "-f",
        "-",
        stdin=yaml.safe_dump_all(documents, allow_unicode=True),
    )
    assert done.stdout.count("(server dry run)") == len(documents)


def _portal(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "tongxing.io/v1alpha1",
        "kind": "Portal",
        "metadata": {"name": name},
        "spec": {
            "region": "zj",
            "names": {"zh": "门户", "en": "Portal"},
            "redirectUris": ["https://portal.zj.gov.cn/callback"],
            "secretName": f"{name}-oidc",
            **spec,
        },
    }


@pytest.mark.parametrize(
    ("kind", "spec", "message"),
    [
        ("Region", {"code": "Zhe Jiang"}, "spec.code: Invalid value"),
        ("Region", {"kind": "county"}, 'spec.kind: Unsupported value: "county"'),
        (
            "Region",
            {"realmTemplate": "my-own"},
            'spec.realmTemplate: Unsupported value: "my-own"',
        ),
        (
            "Region",
            {"acrMapping": [{"acr": "pwd", "loa": 1, "level": "loa9"}]},
            'Unsupported value: "loa9"',
        ),
        (
            "Region",
            {
                "acrMapping": [
                    {"acr": "pwd", "loa": 1, "level": "loa1"},
                    {"acr": "password", "loa": 1, "level": "loa1"},
                ]
            },
            "each Keycloak level (loa) may be named by one acr value only",
        ),
        ("Region", {"keycloak": None}, "spec.keycloak: Required value"),
        (
            "Portal",
            {"redirectUris": ["javascript:alert(1)"]},
            "javascript:, data: and other schemes are refused",
        ),
        (
            "Portal",
            {"redirectUris": ["https://*.zj.gov.cn/callback"]},
            "must not contain wildcards",
        ),
        (
            "Portal",
            {"redirectUris": ["http://portal.zj.gov.cn/callback"]},
            "must be an https URL (http only on loopback)",
        ),
        ("Portal", {"redirectUris": []}, "spec.redirectUris: Invalid value"),
        ("Portal", {"secretName": "Not_A_Name"}, "spec.secretName: Invalid value"),
    ],
)
def test_invalid_specs_are_refused_by_the_api_server_with_a_clear_message(
    namespace: Namespace, kind: str, spec: dict[str, Any], message: str
) -> None:
    document = namespace.region("invalid", "zj") if kind == "Region" else _portal("invalid")
    document["spec"] = {k: v for k, v in {**document["spec"], **spec}.items() if v is not None}
    done = namespace.try_apply(document)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr
    assert namespace.get(kind.lower(), "invalid") is None


def test_a_region_and_a_portal_applied_with_kubectl_let_a_citizen_sign_in_and_follow_updates(
    namespace: Namespace,
    operator: OperatorProcess,
    keycloak: KeycloakEndpoint,
    gateway: RunningGateway,
    site: PortalSite,
    browser: Browser,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = namespace.code("zj")
    region = namespace.region("zhejiang", code)
    portal = _portal(
        "zwfw",
        region=code,
        clientId=f"zwfw-{code}",
        redirectUris=[f"{site.base}/zwfw/callback"],
        requestedClaims=["name", "home_region", "phone_number"],
    )
    started = time.monotonic()
    namespace.apply(region, portal)
    ready(namespace, "region/zhejiang", "portal/zwfw", operators=(operator,))
    elapsed = time.monotonic() - started
    with capsys.disabled():
        print(f"\n[operator] kubectl apply -> Ready (Region + Portal): {elapsed:.1f} s")

    # Keycloak: the realm from the province template, with the gateway's client.
    admin = keycloak_admin(keycloak, code)
    realm = admin.get_realm(code)
    assert realm["displayName"] == "浙江省"
    assert realm["supportedLocales"] == ["zh-CN", "en"] or set(realm["supportedLocales"]) == {
        "zh-CN",
        "en",
    }
    assert realm["defaultLocale"] == "zh-CN"
    assert realm["bruteForceProtected"] is True
    assert "length(12)" in realm["passwordPolicy"]
    assert realm["otpPolicyType"] == "totp"
    assert realm["attributes"]["acr.loa.map"] == '{"otp": 2, "pwd": 1}'
    assert realm["attributes"]["tongxing.io/owner"] == f"{namespace.name}/zhejiang"
    clients = [c for c in admin.get_clients() if c["clientId"] == GATEWAY_CLIENT]
    assert len(clients) == 1
    assert clients[0]["redirectUris"] == [f"{gateway.issuer}/callback/{code}"]
    assert {m["name"] for m in clients[0]["protocolMappers"]} >= {
        "id_number",
        "name",
        "phone_number",
    }
    with pytest.raises(KeycloakError, match="id_number"):  # the user profile checks the number
        admin.create_user(
            {
                "username": "bad",
                "firstName": "一",
                "lastName": "王",
                "attributes": {"id_number": ["123"]},
            }
        )

    # The status and what kubectl shows.
    status = namespace.get("region", "zhejiang")["status"]  # type: ignore[index]
    assert status["phase"] == "Ready"
    assert status["issuer"] == keycloak.issuer(code)
    assert {c["type"] for c in status["conditions"]} == {
        "RealmReady",
        "GatewayRegistered",
        "Ready",
        "Reachable",  # the gateway's circuit for the region, mirrored (issue 14)
    }
    reachable = next(c for c in status["conditions"] if c["type"] == "Reachable")
    assert (reachable["status"], reachable["reason"]) == ("True", "CircuitClosed")
    assert all(
        c["observedGeneration"] == 1 and c["lastTransitionTime"] for c in status["conditions"]
    )
    table = kubectl(namespace.kube, "get", "rgn", "-n", namespace.name).stdout
    assert "READY" in table
    assert "ISSUER" in table
    assert keycloak.issuer(code) in table
    assert "zwfw" in kubectl(namespace.kube, "get", "tongxing", "-n", namespace.name).stdout

    # The gateway: the region and the portal are registered.
    registered = gateway.admin("GET", f"/regions/{code}").json()
    assert registered["issuer"] == keycloak.issuer(code)
    assert registered["acr_mapping"] == {"otp": "loa2", "pwd": "loa1"}
    listed = gateway.admin("GET", f"/portals/zwfw-{code}").json()
    assert listed["redirect_uris"] == [f"{site.base}/zwfw/callback"]
    assert listed["scopes"] == ["openid", "phone", "profile"]

    # The Secret holds working credentials: a citizen signs in with them.
    credentials = secret_data(namespace, "zwfw-oidc")
    assert credentials["client_id"] == f"zwfw-{code}"
    assert credentials["issuer"] == gateway.issuer
    client = Portal(
        gateway,
        credentials["client_id"],
        credentials["client_secret"],
        f"{site.base}/zwfw/callback",
    )
    password = add_citizen(keycloak, code)
    first = sign_in(browser, client, site, code, password)
    first_signed_in = time.monotonic()
    assert "浙江省" in first["chooser"]
    assert first["claims"]["name"] == "三 张"
    assert first["claims"]["phone_number"] == PHONE
    assert first["claims"]["home_region"] == code
    assert first["claims"]["acr"] == "loa1"

    # Steady state: the drift timer has run since, and found nothing to change.
    for name, timer in (("zhejiang", "repair_region"), ("zwfw", "repair_portal")):
        line = f"[{namespace.name}/{name}] Timer '{timer}' succeeded"
        wait_until(functools.partial(operator.logged, line), timeout=20, what=line)
    events = namespace.events("zhejiang") + namespace.events("zwfw")
    assert [e["message"] for e in events if e["reason"] == "DriftRepaired"] == []

    # The code cannot change.
    moved = namespace.region("zhejiang", namespace.code("zj"))
    refused = namespace.try_apply(moved)
    assert "code is immutable" in refused.stderr

    # Update: display names and the acr mapping follow into the realm and the registration.
    region["spec"]["names"] = {"zh": "浙江", "en": "Zhejiang Province"}
    region["spec"]["acrMapping"] = [
        {"acr": "cn-pwd", "loa": 1, "level": "loa2"},
        {"acr": "cn-otp", "loa": 2, "level": "loa3"},
    ]
    portal["spec"]["names"] = {"zh": "浙江政务服务网", "en": "Zhejiang Government Services"}
    namespace.apply(region, portal)
    namespace.wait("jsonpath={.status.observedGeneration}=2", "region/zhejiang", "portal/zwfw")
    ready(namespace, "region/zhejiang", "portal/zwfw", operators=(operator,))
    realm = admin.get_realm(code)
    assert realm["displayName"] == "浙江"
    assert "Zhejiang Province" in realm["displayNameHtml"]
    assert realm["attributes"]["acr.loa.map"] == '{"cn-otp": 2, "cn-pwd": 1}'
    registered = gateway.admin("GET", f"/regions/{code}").json()
    assert registered["names"] == {"zh": "浙江", "en": "Zhejiang Province"}
    assert registered["acr_mapping"] == {"cn-otp": "loa3", "cn-pwd": "loa2"}
    assert len([c for c in admin.get_clients() if c["clientId"] == GATEWAY_CLIENT]) == 1
    listed = gateway.admin("GET", f"/portals/zwfw-{code}").json()
    assert listed["names"]["zh"] == "浙江政务服务网"

    # Drift: a client edited by hand is put back by the timer.
    internal = clients[0]["id"]
    edited = admin.get_client(internal)
    admin.update_client(internal, {**edited, "redirectUris": ["https://evil.example/cb"]})
    mapper = next(m for m in edited["protocolMappers"] if m["name"] == "id_number")
    admin.remove_client_mapper(internal, mapper["id"])
    wait_until(
        lambda: (
            admin.get_client(internal)["redirectUris"] == [f"{gateway.issuer}/callback/{code}"]
            and "id_number" in {m["name"] for m in admin.get_client(internal)["protocolMappers"]}
        ),
        timeout=30,
        what="the timer to restore the client",
        operators=(operator,),
    )

    # Drift: a realm deleted by hand comes back, with a new client secret the gateway receives.
    keycloak_admin(keycloak).delete_realm(code)
    wait_until(lambda: code in realm_names(keycloak), timeout=30, what="the realm to come back")
    ready(namespace, "region/zhejiang", operators=(operator,))
    wait_until(
        lambda: (
            (namespace.get("region", "zhejiang") or {}).get("status", {}).get("registeredSecret")
            == digest(gateway_client_secret(keycloak, code))
        ),
        timeout=30,
        what="the gateway to receive the new client secret",
    )
    # Drift: a credentials Secret deleted by hand comes back with a new secret for the portal.
    kubectl(namespace.kube, "delete", "secret", "zwfw-oidc", "-n", namespace.name)
    wait_until(
        lambda: namespace.get("secret", "zwfw-oidc"), timeout=30, what="the Secret to come back"
    )
    renewed = secret_data(namespace, "zwfw-oidc")
    assert renewed["client_secret"] != credentials["client_secret"]
    wait_until(
        lambda: (
            (namespace.get("portal", "zwfw") or {}).get("status", {}).get("registeredSecret")
            == digest(renewed["client_secret"])
        ),
        timeout=30,
        what="the gateway to receive the portal's new secret",
    )
    client = Portal(gateway, renewed["client_id"], renewed["client_secret"], client.redirect_uri)

    password = add_citizen(keycloak, code)
    # The recreated realm signs with new keys. The gateway refetches a region's JWK Set for an
    # unknown kid at most once per 10 s (CachePolicy.unknown_kid_interval, against kid floods),
    # counted from its last fetch, which the first sign-in made.
    time.sleep(max(0.0, UNKNOWN_KID_INTERVAL - (time.monotonic() - first_signed_in)))
    second = sign_in(browser, client, site, code, password)
    assert "浙江" in second["chooser"]
    assert second["claims"]["acr"] == "loa2"  # the realm says cn-pwd, which now means loa2
    assert second["claims"]["sub"] == first["claims"]["sub"]  # one national subject
    repaired = [
        e["message"] for e in namespace.events("zhejiang") if e["reason"] == "DriftRepaired"
    ]
    assert f"created realm {code}" in repaired
    assert "added protocol mapper id_number" in repaired
    renewed_events = namespace.events("zwfw")
    assert "created Secret zwfw-oidc" in [
        e["message"] for e in renewed_events if e["reason"] == "DriftRepaired"
    ]

    # Delete: the registration, the realm and the Secret go; so do the objects.
    kubectl(
        namespace.kube,
        "delete",
        "portal/zwfw",
        "region/zhejiang",
        "-n",
        namespace.name,
        "--timeout=60s",
    )
    assert namespace.get("region", "zhejiang") is None
    assert namespace.get("portal", "zwfw") is None
    assert namespace.get("secret", "zwfw-oidc") is None
    assert code not in realm_names(keycloak)
    assert gateway.admin("GET", f"/regions/{code}").status_code == 404
    assert gateway.admin("GET", f"/portals/zwfw-{code}").status_code == 404


def test_a_spec_only_the_operator_can_judge_is_reported_as_a_condition_and_an_event(
    namespace: Namespace, operator: OperatorProcess
) -> None:
    code = namespace.code("bad")
    namespace.apply(namespace.region("overreach", code, overrides={"clients": []}))
    namespace.wait(
        'jsonpath={.status.conditions[?(@.type=="Ready")].reason}=OverrideNotAllowed',
        "region/overreach",
    )
    ready_condition = namespace.condition("region", "overreach", "Ready")
    assert ready_condition is not None
    assert ready_condition["status"] == "False"
    assert "overrides may not set clients" in ready_condition["message"]
    assert (namespace.get("region", "overreach") or {})["status"]["phase"] == "Failed"
    wait_until(
        lambda: any(
            event["type"] == "Warning"
            and event["reason"] == "OverrideNotAllowed"
            and "overrides may not set clients" in event["message"]
            for event in namespace.events("overreach")
        ),
        timeout=20,
        what="an event",
    )
    kubectl(namespace.kube, "delete", "region/overreach", "-n", namespace.name, "--timeout=30s")


def test_a_realm_is_never_taken_from_its_region_and_a_retained_realm_outlives_it(
    namespace: Namespace,
    operator: OperatorProcess,
    keycloak: KeycloakEndpoint,
    gateway: RunningGateway,
) -> None:
    code = namespace.code("keep")
    namespace.apply(namespace.region("keeper", code, deletionPolicy="Retain"))
    ready(namespace, "region/keeper", operators=(operator,))

    # A second Region with the same code adopts nothing: the code's registration has an owner.
    namespace.apply(namespace.region("usurper", code, names={"zh": "假", "en": "Impostor"}))
    namespace.wait(
        'jsonpath={.status.conditions[?(@.type=="Ready")].reason}=RegionCodeTaken',
        "region/usurper",
    )
    condition = namespace.condition("region", "usurper", "Ready")
    assert condition is not None
    assert f"region {code}" in condition["message"]
    kubectl(namespace.kube, "delete", "region/usurper", "-n", namespace.name, "--timeout=30s")
    assert code in realm_names(keycloak)
    assert gateway.admin("GET", f"/regions/{code}").json()["names"]["en"] == "Zhejiang"

    # deletionPolicy: Retain: the registration goes, the realm stays.
    kubectl(namespace.kube, "delete", "region/keeper", "-n", namespace.name, "--timeout=30s")
    assert gateway.admin("GET", f"/regions/{code}").status_code == 404
    assert code in realm_names(keycloak)
    keycloak_admin(keycloak).delete_realm(code)


def test_keycloak_down_is_reported_and_the_region_converges_when_it_returns(
    namespace: Namespace,
    operator: OperatorProcess,
    keycloak: KeycloakEndpoint,
    gateway: RunningGateway,
    outage_proxy: TcpProxy,
) -> None:
    proxy = outage_proxy  # down until started
    code = namespace.code("outage")
    try:
        namespace.apply(namespace.region("outage", code, keycloak_url=proxy.url))
        namespace.wait(
            'jsonpath={.status.conditions[?(@.type=="RealmReady")].reason}=KeycloakUnavailable',
            "region/outage",
        )
        condition = namespace.condition("region", "outage", "Ready")
        assert condition is not None
        assert condition["status"] == "False"
        assert condition["reason"] == "KeycloakUnavailable"
        assert proxy.url in condition["message"]
        assert (
            "KeycloakUnavailable"
            in kubectl(namespace.kube, "get", "region", "outage", "-n", namespace.name).stdout
        )
        assert code not in realm_names(keycloak)

        proxy.start()  # Keycloak is back: no change to the Region
        took = ready(namespace, "region/outage", operators=(operator,), timeout=30)
        assert took < 20
        admin = keycloak_admin(keycloak, code)
        assert len([c for c in admin.get_clients() if c["clientId"] == GATEWAY_CLIENT]) == 1
        registered = gateway.admin("GET", f"/regions/{code}").json()
        assert registered["issuer"] == keycloak.issuer(code)  # the public URL, not the proxy

        # Down again once Ready: the drift timer notices, and recovers.
        proxy.stop()
        namespace.wait(
            'jsonpath={.status.conditions[?(@.type=="Ready")].reason}=KeycloakUnavailable',
            "region/outage",
            timeout=30,
        )
        proxy.start()
        ready(namespace, "region/outage", operators=(operator,), timeout=30)
        kubectl(namespace.kube, "delete", "region/outage", "-n", namespace.name, "--timeout=30s")
        assert code not in realm_names(keycloak)
    finally:
        proxy.stop()


def test_an_operator_killed_mid_provisioning_and_restarted_leaves_exactly_one_ready_realm(
    kube: KubeEndpoint,
    keycloak: KeycloakEndpoint,
    gateway: RunningGateway,
    crds: None,
    tmp_path: Path,
) -> None:
    namespace = create_namespace(kube, keycloak, "tx-kill")
    unreachable = f"http://127.0.0.1:{free_port()}"
    # The first operator reaches Keycloak but not the gateway's admin API: it is stopped
    # between creating the realm and registering it.
    first = start_operator(
        kube,
        namespace.name,
        tmp_path / "first.log",
        gateway_url=unreachable,
        gateway_issuer=gateway.issuer,
        admin_token=gateway.operator_token,
        keycloaks=[namespace.grant()],
    )
    operators = [first]
    try:
        code = namespace.code("kill")
        namespace.apply(namespace.region("killed", code))
        namespace.wait(
            'jsonpath={.status.conditions[?(@.type=="GatewayRegistered")].reason}'
            "=GatewayUnavailable",
            "region/killed",
        )
        assert code in realm_names(keycloak)
        first.kill()

        second = start_operator(
            kube,
            namespace.name,
            tmp_path / "second.log",
            gateway_url=gateway.issuer,
            admin_token=gateway.operator_token,
            keycloaks=[namespace.grant()],
        )
        operators.append(second)
        ready(namespace, "region/killed", operators=tuple(operators))
        admin = keycloak_admin(keycloak, code)
        clients = [c for c in admin.get_clients() if c["clientId"] == GATEWAY_CLIENT]
        assert len(clients) == 1
        assert [r for r in realm_names(keycloak) if r == code] == [code]
        secret = admin.get_client_secrets(clients[0]["id"])["value"]
        status = (namespace.get("region", "killed") or {})["status"]
        assert status["registeredSecret"] == digest(secret)
        assert gateway.admin("GET", f"/regions/{code}").json()["client_id"] == GATEWAY_CLIENT
        assert "Created realm" not in second.output()  # adopted, not made again
        namespace.clean_up()
        assert code not in realm_names(keycloak)
    finally:
        for process in operators:
            process.stop()
        namespace.force_clean_up()


def peers(namespace: Namespace) -> dict[str, Any]:
    found = namespace.get("kopfpeering", "tongxing") or {}
    return dict(found.get("status") or {})


def paused(log: str) -> bool:
    """kopf starts paused and logs when it resumes or pauses again."""
    return log.rfind("Pausing operations") >= log.rfind("Resuming operations")


def test_two_replicas_with_peering_never_reconcile_the_same_region(
    kube: KubeEndpoint,
    keycloak: KeycloakEndpoint,
    gateway: RunningGateway,
    crds: None,
    tmp_path: Path,
) -> None:
    namespace = create_namespace(kube, keycloak, "tx-peer")
    namespace.apply(
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "tongxing"}}
    )
    common: dict[str, Any] = {
        "gateway_url": gateway.issuer,
        "admin_token": gateway.operator_token,
        "keycloaks": [namespace.grant()],
        "peering": "tongxing",
    }
    leader = start_operator(kube, namespace.name, tmp_path / "leader.log", priority=200, **common)
    follower = start_operator(
        kube, namespace.name, tmp_path / "follower.log", priority=100, **common
    )
    try:
        wait_until(lambda: len(peers(namespace)) == 2, timeout=30, what="both replicas to check in")
        wait_until(
            lambda: paused(follower.output()),
            timeout=30,
            what="the follower to pause",
            operators=(leader, follower),
        )
        code = namespace.code("peer")
        namespace.apply(namespace.region("peered", code))
        ready(namespace, "region/peered", operators=(leader, follower))
        namespace.clean_up()
        assert code not in realm_names(keycloak)
        assert f"Created realm {code}" in leader.output()
        assert f"Deleted realm {code}" in leader.output()
        assert code not in follower.output()
        assert sorted(p["priority"] for p in peers(namespace).values()) == [100, 200]
    finally:
        leader.stop()
        follower.stop()
        namespace.force_clean_up()


def test_time_from_kubectl_apply_to_ready_for_1_and_for_10_regions(
    namespace: Namespace,
    operator: OperatorProcess,
    keycloak: KeycloakEndpoint,
    capsys: pytest.CaptureFixture[str],
) -> None:
    timings: dict[int, float] = {}
    for count in (1, 10):
        names = [f"timed-{count}-{i}" for i in range(count)]
        codes = [namespace.code(f"t{count}x{i}") for i in range(count)]
        started = time.monotonic()
        namespace.apply(*(namespace.region(n, c) for n, c in zip(names, codes, strict=True)))
        ready(namespace, *(f"region/{n}" for n in names), operators=(operator,), timeout=120)
        timings[count] = time.monotonic() - started
        started = time.monotonic()
        kubectl(
            namespace.kube,
            "delete",
            *(f"region/{n}" for n in names),
            "-n",
            namespace.name,
            "--timeout=120s",
        )
        deleted = time.monotonic() - started
        assert not realm_names(keycloak) & set(codes)
        with capsys.disabled():
            print(
                f"\n[operator] kubectl apply -> Ready for {count} region(s): "
                f"{timings[count]:.1f} s; kubectl delete -> gone: {deleted:.1f} s"
            )
    assert timings[10] < 120
