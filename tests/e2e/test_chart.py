"""The Helm chart: helm lint and template, the real API server, the operator under the chart's RBAC.

helm is the harness's (built from its Go module). The rendered manifests are applied with
server-side apply to the harness's kube-apiserver, so the API server's own schemas validate
every field (there are no nodes: the Deployments never get pods). The operator then runs as the
chart's Deployment says (its arguments, its ConfigMap, the Secret it names) with a token of the
chart's ServiceAccount, and onboards a Region into the harness Keycloak and a real gateway;
what the RBAC does not grant is refused.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from gateway_fixtures import RunningGateway, start_gateway
from operator_fixtures import (
    Namespace,
    OperatorProcess,
    create_namespace,
    kubectl,
    operator_logs,
    realm_names,
    remove_namespace,
    run_operator,
    token_kubeconfig,
    wait_until,
)
from tongxing_dev.helm import Helm
from tongxing_dev.keycloak import KeycloakEndpoint
from tongxing_dev.kube import KubeEndpoint
from tongxing_dev.process import LOOPBACK, free_port

from gateway.settings import Settings

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "tongxing"
MINIMAL = CHART / "ci" / "minimal-values.yaml"
PRODUCTION = CHART / "ci" / "production-values.yaml"
# helm template and lint cannot read the API server's addresses from a cluster, as helm install
# does, for the operator's egress policy: wherever the minimal values are rendered without a
# cluster they are named (the production profile names its own).
API_SERVER = (
    '--set-json=operator.networkPolicy.egress.apiServer=[{"ipBlock":{"cidr":"10.0.0.1/32"}}]'
)
MINIMAL_VALUES = ("-f", str(MINIMAL), API_SERVER)
PRODUCTION_VALUES = ("-f", str(PRODUCTION))
ISSUER = "https://id.example.gov.cn"
GATEWAY_SECRET_KEYS = (
    "national-secret",
    "pairwise-secret",
    "admin-token",
    "session-secret",
    "mfa-secret",
    "operator-token",  # the operator's own admin API credential (issue 11)
)

Document = dict[str, Any]
#: A proofing provider as gateway.proofing.providers holds it (its secret: a key of a Secret).
PROVIDER = {
    "id": "mps",
    "names": {"zh": "公安部实名核验", "en": "MPS real-name check"},
    "issuer": "https://proofing.example.gov.cn/realms/proofing",
    "client_id": "tongxing",
    "client_secret_key": "mps",
    "trust_frameworks": ["cn_mps"],
    "claims": ["name"],
}


# --- helm -------------------------------------------------------------------------------------


def render(
    helm: Helm, *args: str, release: str = "tx", namespace: str = "tongxing"
) -> list[Document]:
    done = helm.run("template", release, str(CHART), f"--namespace={namespace}", *args)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def refused(helm: Helm, *args: str) -> str:
    """``helm template`` that must fail; its message."""
    done = helm.run("template", "tx", str(CHART), "--namespace=tongxing", *args)
    assert done.returncode != 0, f"rendered although it should not:\n{done.stdout[:2000]}"
    return done.stderr


def find(documents: list[Document], kind: str, name: str | None = None) -> list[Document]:
    return [
        d
        for d in documents
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]


def one(documents: list[Document], kind: str, name: str | None = None) -> Document:
    found = find(documents, kind, name)
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
    return found[0]


def container(deployment: Document) -> Document:
    containers: list[Document] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_refs(item: Document) -> dict[str, tuple[str, str]]:
    """Environment variable -> (Secret, key) for every secretKeyRef of a container."""
    return {
        e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in item.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


# --- lint and template ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values", [MINIMAL_VALUES, PRODUCTION_VALUES], ids=["minimal", "production"]
)
def test_helm_lint_passes_strictly(helm: Helm, values: tuple[str, ...]) -> None:
    done = helm.run("lint", "--strict", str(CHART), *values)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout
    assert "[WARNING]" not in done.stdout + done.stderr
    assert "[ERROR]" not in done.stdout + done.stderr
    assert "Fail:" not in done.stdout + done.stderr  # lint reports a template's fail as INFO


def test_minimal_values_render_a_hardened_single_gateway_and_a_namespaced_operator(
    helm: Helm,
) -> None:
    documents = render(helm, *MINIMAL_VALUES)
    assert not find(documents, "Secret"), "the chart must never render a Secret"
    for kind in ("HorizontalPodAutoscaler", "Ingress"):
        assert not find(documents, kind)

    gateway = one(documents, "Deployment", "tx-tongxing-gateway")
    spec = gateway["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"]["type"] == "Recreate"  # SQLite: one pod owns the store at a time
    pod = spec["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    item = container(gateway)
    assert item["args"][0] == "serve"
    assert item["securityContext"]["readOnlyRootFilesystem"] is True
    assert item["securityContext"]["allowPrivilegeEscalation"] is False
    assert item["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert item["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert item["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert set(item["resources"]) == {"requests", "limits"}
    mounts = {m["mountPath"]: m for m in item["volumeMounts"]}
    paths = {"/tmp", "/var/lib/tongxing", "/etc/tongxing/keys"}  # noqa: S108 - mount paths
    assert paths <= set(mounts)
    assert mounts["/etc/tongxing/keys"]["readOnly"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["tmp"]
    assert volumes["signing-keys"]["secret"]["secretName"] == "tongxing-signing-keys"
    refs = env_refs(item)
    assert refs == {
        "TONGXING_NATIONAL_SECRET": ("tongxing-gateway", "national-secret"),
        "TONGXING_PAIRWISE_SECRET": ("tongxing-gateway", "pairwise-secret"),
        "TONGXING_ADMIN_TOKEN": ("tongxing-gateway", "admin-token"),
        "TONGXING_OPERATOR_TOKEN": ("tongxing-gateway", "operator-token"),
        "TONGXING_SESSION_SECRET": ("tongxing-gateway", "session-secret"),
        "TONGXING_MFA_SECRET": ("tongxing-gateway", "mfa-secret"),
    }
    settings = one(documents, "ConfigMap", "tx-tongxing-gateway")["data"]
    assert settings["TONGXING_ISSUER"] == ISSUER
    assert settings["TONGXING_KEYS_FILE"] == "/etc/tongxing/keys/keys.json"
    assert settings["TONGXING_PROXY_HOPS"] == "0"
    assert not any("SECRET" in key or "TOKEN" in key for key in settings)

    operator = one(documents, "Deployment", "tx-tongxing-operator")
    assert container(operator)["args"][:3] == [
        "operator",
        "--namespace=tongxing",
        "--peering=tongxing",
    ]
    # Its own credential (role operator), never the platform's admin token.
    assert env_refs(container(operator)) == {
        "TONGXING_OPERATOR_ADMIN_TOKEN": ("tongxing-gateway", "operator-token")
    }
    assert one(documents, "KopfPeering")["metadata"]["namespace"] == "tongxing"
    role = one(documents, "Role")
    assert role["metadata"]["namespace"] == "tongxing"
    secrets_rule = next(r for r in role["rules"] if "secrets" in r["resources"])
    assert sorted(secrets_rule["verbs"]) == ["create", "delete", "get", "patch"]  # no list/watch
    assert not find(documents, "Role", "tx-tongxing-operator-credentials")  # nothing granted
    cluster_role = one(documents, "ClusterRole")
    granted = {res for rule in cluster_role["rules"] for res in rule["resources"]}
    assert granted == {"customresourcedefinitions", "namespaces"}  # discovery only
    for rule in cluster_role["rules"]:
        assert set(rule["verbs"]) <= {"get", "list", "watch"}
    operator_policy = one(documents, "NetworkPolicy", "tx-tongxing-operator")["spec"]
    assert operator_policy["policyTypes"] == ["Ingress", "Egress"]
    assert operator_policy["ingress"] == []
    policy = one(documents, "NetworkPolicy", "tx-tongxing-gateway")
    peers = policy["spec"]["ingress"][0]["from"]
    assert {"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "tongxing",
        "app.kubernetes.io/instance": "tx",
        "app.kubernetes.io/component": "operator",
    }}} in peers  # fmt: skip


def _routed(paths: list[str], url: str) -> bool:
    """Whether an Ingress Prefix path among ``paths`` matches ``url`` (whole path segments)."""
    segments = [part for part in url.split("/") if part]
    for path in paths:
        prefix = [part for part in path.split("/") if part]  # "/" has none: it matches all
        if segments[: len(prefix)] == prefix:
            return True
    return False


def _gateway_routes(tmp_path: Path) -> list[str]:
    """Every URL rule of the gateway's application, with sample values for its variables."""
    from gateway.app import create_app
    from gateway.services import build_services
    from gateway.settings import Settings

    names = ("national", "pairwise", "admin", "session", "mfa")
    settings = Settings.model_validate(
        {
            "issuer": ISSUER,
            "data_dir": tmp_path,
            "create_keys": True,
            **{
                f"{name}_{'token' if name == 'admin' else 'secret'}": secrets.token_urlsafe(32)
                for name in names
            },
        }
    )
    services = build_services(settings)
    try:
        rules = [rule.rule for rule in create_app(services=services).url_map.iter_rules()]
    finally:
        services.close()
    return [re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"\1", rule) for rule in rules]


def test_the_ingress_routes_the_public_endpoints_and_not_the_admin_api(
    helm: Helm, tmp_path: Path
) -> None:
    def ingress_paths(*values: str) -> list[str]:
        ingress = one(render(helm, "-f", str(PRODUCTION), *values), "Ingress")
        (rule,) = ingress["spec"]["rules"]
        assert {p["pathType"] for p in rule["http"]["paths"]} == {"Prefix"}
        return [p["path"] for p in rule["http"]["paths"]]

    paths = ingress_paths()
    routes = _gateway_routes(tmp_path)
    internal = [
        r for r in routes if r.startswith(("/admin/", "/healthz", "/readyz", "/status", "/metrics"))
    ]
    public = [r for r in routes if r not in internal]
    assert len(internal) > 3
    assert len(public) > 10
    assert [r for r in public if not _routed(paths, r)] == []  # every public endpoint reaches it
    assert [r for r in internal if _routed(paths, r)] == []  # the admin API and probes do not
    assert not _routed(paths, "/")
    # OpenID Federation 1.0 (§9, §8): the entity configuration and the federation endpoints.
    federation = [r for r in public if "federation" in r]
    assert "/.well-known/openid-federation" in federation
    assert len(federation) > 3
    assert all(_routed(paths, r) for r in [*federation, "/federation/fetch", "/federation/list"])
    exposed = ingress_paths("--set=gateway.ingress.exposeAdminApi=true")
    assert all(_routed(exposed, r) for r in routes if r.startswith("/admin/"))


def test_production_values_render_postgres_replicas_behind_an_ingress(helm: Helm) -> None:
    documents = render(helm, "-f", str(PRODUCTION))
    gateway = one(documents, "Deployment", "tx-tongxing-gateway")
    assert "replicas" not in gateway["spec"]  # the HPA owns it
    assert gateway["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    item = container(gateway)
    assert item["image"].startswith("registry.example.gov.cn/tongxing/tongxing@sha256:")
    assert env_refs(item)["TONGXING_DATABASE_URL"] == ("tongxing-database", "url")
    hpa = one(documents, "HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    assert one(documents, "PodDisruptionBudget")["spec"]["minAvailable"] == 2
    ingress = one(documents, "Ingress")
    assert ingress["spec"]["tls"] == [
        {"hosts": ["id.example.gov.cn"], "secretName": "tongxing-gateway-tls"}
    ]
    settings = one(documents, "ConfigMap", "tx-tongxing-gateway")["data"]
    assert settings["TONGXING_ISSUER"] == ISSUER  # from the Ingress host
    assert settings["TONGXING_PROXY_HOPS"] == "1"
    assert settings["TONGXING_ACCESS_TOKEN_LIFETIME"] == "PT5M"
    policy = one(documents, "NetworkPolicy", "tx-tongxing-gateway")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    watched = {"tongxing-regions", "tongxing-portals"}
    for kind in ("Role", "RoleBinding"):
        found = find(documents, kind, "tx-tongxing-operator")
        assert {d["metadata"]["namespace"] for d in found} == watched
        # The granted Keycloak's admin Secret, by name, in the release namespace (not watched).
        credentials = one(documents, kind, "tx-tongxing-operator-credentials")
        assert credentials["metadata"]["namespace"] == "tongxing"
    assert {d["metadata"]["namespace"] for d in find(documents, "KopfPeering")} == watched
    role = one(documents, "Role", "tx-tongxing-operator-credentials")
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["keycloak-admin"],
            "verbs": ["get"],
        }
    ]
    egress = one(documents, "NetworkPolicy", "tx-tongxing-operator")["spec"]["egress"]
    assert egress[1]["to"] == [
        {"ipBlock": {"cidr": f"10.20.255.{n}/32"}} for n in (10, 11, 12)
    ]  # the API server, as the profile names it
    assert egress[3]["ports"] == [{"port": 8080, "protocol": "TCP"}]  # the granted Keycloak
    operator = one(documents, "Deployment", "tx-tongxing-operator")
    assert operator["spec"]["replicas"] == 2
    assert {a for a in container(operator)["args"] if a.startswith("--namespace=")} == {
        f"--namespace={n}" for n in watched
    }


def test_every_template_file_holds_one_kind_named_after_it(helm: Helm) -> None:
    kinds: dict[str, set[str]] = {}
    for values in (
        [*MINIMAL_VALUES],
        [*PRODUCTION_VALUES],
        [*MINIMAL_VALUES, "--set=operator.watch.allNamespaces=true"],
        [
            *MINIMAL_VALUES,
            "--set=metrics.serviceMonitor.enabled=true",
            "--set=metrics.dashboard.enabled=true",
        ],
    ):
        done = helm.run("template", "tx", str(CHART), "--namespace=tongxing", *values)
        assert done.returncode == 0, done.stderr
        for chunk in done.stdout.split("\n---\n"):
            source = re.search(r"^# Source: tongxing/templates/(\S+)$", chunk, re.M)
            document = yaml.safe_load(chunk)
            if source and document:
                kinds.setdefault(source.group(1), set()).add(document["kind"])
    for file, found in kinds.items():
        assert len(found) == 1, f"{file} renders {found}"
        # <component>-<kind>, or <component>-<what>-<kind> for a second one of a kind
        component, *_, kind = file.removesuffix(".yaml").split("-")
        assert component in {"gateway", "operator", "region", "portal"}, file
        assert kind == next(iter(found)).lower(), file
    templates = {p.name for p in (CHART / "templates").glob("*.yaml")}
    assert templates == set(kinds), "a template that no values file renders"


def test_the_service_monitor_is_rendered_when_enabled_and_targets_the_gateway_pods(
    helm: Helm,
) -> None:
    assert not find(render(helm, *MINIMAL_VALUES), "ServiceMonitor")
    documents = render(
        helm,
        *MINIMAL_VALUES,
        "--set=metrics.serviceMonitor.enabled=true",
        "--set=metrics.serviceMonitor.interval=15s",
    )
    monitor = one(documents, "ServiceMonitor", "tx-tongxing-gateway")
    service = one(documents, "Service", "tx-tongxing-gateway")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert selector == service["spec"]["selector"]  # the Service's pods: the gateway's only
    assert monitor["spec"]["endpoints"] == [
        {"port": "http", "path": "/metrics", "scheme": "http", "interval": "15s",
         "scrapeTimeout": "10s"}
    ]  # fmt: skip
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["tongxing"]}


def test_limits_circuits_retention_and_sealing_keys_reach_the_gateway_as_its_settings(
    helm: Helm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14's settings from the values: JSON the gateway's Settings accept (not Go's map
    printing), and the sealing keys from the Secret, never the ConfigMap."""
    documents = render(
        helm,
        *MINIMAL_VALUES,
        "--set=gateway.settings.rateLimits.authorize=300/minute",
        "--set=gateway.settings.rateLimits.max_keys=5000",
        "--set=gateway.settings.regionCircuit.failures=4",
        "--set=gateway.settings.auditRetention=P200D",
        "--set=gateway.secrets.keys.sealingKeys=sealing-keys",
    )
    data = one(documents, "ConfigMap", "tx-tongxing-gateway")["data"]
    assert json.loads(data["TONGXING_RATE_LIMITS"])["max_keys"] == 5000
    assert json.loads(data["TONGXING_REGION_CIRCUIT"])["failures"] == 4
    assert data["TONGXING_AUDIT_RETENTION"] == "P200D"
    assert "TONGXING_SEALING_KEYS" not in data
    gateway = container(one(documents, "Deployment", "tx-tongxing-gateway"))
    assert env_refs(gateway)["TONGXING_SEALING_KEYS"][1] == "sealing-keys"
    # The gateway reads them from its environment, as the pod gets them.
    for name in ("RATE_LIMITS", "REGION_CIRCUIT", "AUDIT_RETENTION"):
        monkeypatch.setenv(f"TONGXING_{name}", data[f"TONGXING_{name}"])
    for name in ("NATIONAL_SECRET", "PAIRWISE_SECRET", "ADMIN_TOKEN", "SESSION_SECRET"):
        monkeypatch.setenv(f"TONGXING_{name}", secrets.token_urlsafe(32))
    monkeypatch.setenv("TONGXING_MFA_SECRET", secrets.token_urlsafe(32))
    monkeypatch.setenv("TONGXING_ISSUER", "https://tongxing.example.cn")
    monkeypatch.setenv("TONGXING_DATA_DIR", str(tmp_path))
    settings = Settings()  # type: ignore[call-arg]
    assert settings.audit_retention.days == 200
    assert settings.region_circuit.failures == 4
    # The chart's defaults are the gateway's own, written out.
    defaults = render(helm, *MINIMAL_VALUES)
    data = one(defaults, "ConfigMap", "tx-tongxing-gateway")["data"]
    built_in = Settings.model_fields
    assert json.loads(data["TONGXING_RATE_LIMITS"]) == built_in["rate_limits"].get_default(
        call_default_factory=True
    ).model_dump(mode="json")
    assert json.loads(data["TONGXING_REGION_CIRCUIT"]) == built_in["region_circuit"].get_default(
        call_default_factory=True
    ).model_dump(mode="json")
    assert "TONGXING_SEALING_KEYS" not in env_refs(
        container(one(defaults, "Deployment", "tx-tongxing-gateway"))
    )


def _pod_environment(
    documents: list[Document], secret_values: dict[tuple[str, str], str]
) -> dict[str, str]:
    """The gateway container's environment as the kubelet makes it: the ConfigMap, then each
    variable in order, a Secret's key from ``secret_values``, and ``$(NAME)`` of an earlier
    variable expanded in a value (Kubernetes' dependent environment variables)."""
    env = dict(one(documents, "ConfigMap", "tx-tongxing-gateway")["data"])
    for variable in container(one(documents, "Deployment", "tx-tongxing-gateway"))["env"]:
        reference = variable.get("valueFrom", {}).get("secretKeyRef")
        if reference is not None:
            env[variable["name"]] = secret_values.get(
                (reference["name"], reference["key"]), secrets.token_urlsafe(32)
            )
        else:
            env[variable["name"]] = re.sub(
                r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), variable["value"]
            )
    return env


def _settings_from(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The gateway's settings from a pod's environment (paths moved under ``tmp_path``)."""
    for name, value in env.items():
        if name.startswith("TONGXING_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("TONGXING_DATA_DIR", str(tmp_path))
    return Settings()  # type: ignore[call-arg]


def test_the_federation_and_proofing_reach_the_gateway_as_its_settings(
    helm: Helm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17's trust anchor (its key ring from a Secret, as a file) and issue 16's proofing
    providers (their client secrets from a Secret, never the ConfigMap or the values)."""
    from gateway.services import federation_configured

    documents = render(helm, *PRODUCTION_VALUES)
    data = one(documents, "ConfigMap", "tx-tongxing-gateway")["data"]
    gateway = one(documents, "Deployment", "tx-tongxing-gateway")
    item = container(gateway)
    mounts = {m["name"]: m for m in item["volumeMounts"]}
    volumes = {v["name"]: v for v in gateway["spec"]["template"]["spec"]["volumes"]}
    keys_file = Path(data["TONGXING_FEDERATION_KEYS_FILE"])
    assert mounts["federation-keys"] == {
        "name": "federation-keys", "mountPath": str(keys_file.parent), "readOnly": True
    }  # fmt: skip
    assert volumes["federation-keys"]["secret"] == {
        "secretName": "tongxing-federation-keys",
        "items": [{"key": "federation-keys.json", "path": keys_file.name}],
        "defaultMode": 0o440,
    }
    assert mounts["federation-keys"]["mountPath"] != mounts["signing-keys"]["mountPath"]
    assert env_refs(item)["PROOFING_CLIENT_SECRET_0"] == ("tongxing-proofing", "mps")
    assert "TONGXING_PROOFING_PROVIDERS" not in data
    client_secret = secrets.token_urlsafe(24)
    rendered = json.dumps([d for d in documents if d["kind"] in {"ConfigMap", "Deployment"}])
    assert client_secret not in rendered

    env = _pod_environment(documents, {("tongxing-proofing", "mps"): client_secret})
    settings = _settings_from(env, tmp_path, monkeypatch)
    assert settings.federation_keys_file == keys_file
    assert federation_configured(settings)
    assert settings.federation_organization_name == "国家政务服务平台"
    assert settings.federation_statement_lifetime.total_seconds() == 12 * 3600
    assert settings.federation_metadata_policy == {
        "openid_relying_party": {"token_endpoint_auth_method": {"one_of": ["private_key_jwt"]}}
    }
    assert list(settings.federation_trust_mark_types) == [
        "https://id.example.gov.cn/trust-marks/government-portal"
    ]
    assert settings.federation_automatic_registration is True
    (provider,) = settings.proofing_providers
    assert (provider.id, provider.client_id, provider.trust_frameworks) == (
        "mps", "tongxing", ["cn_mps"]
    )  # fmt: skip
    assert provider.client_secret.get_secret_value() == client_secret


def test_the_federation_is_off_and_no_proofing_by_default(
    helm: Helm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No federation Secret named: no federation setting, no key mount, and the gateway starts
    with the federation off (gateway.services.federation_configured); no providers, no secret."""
    from gateway.services import federation_configured

    documents = render(helm, *MINIMAL_VALUES)
    data = one(documents, "ConfigMap", "tx-tongxing-gateway")["data"]
    assert [name for name in data if "FEDERATION" in name or "PROOFING" in name] == []
    gateway = one(documents, "Deployment", "tx-tongxing-gateway")
    names = [e["name"] for e in container(gateway).get("env", [])]
    assert [name for name in names if "FEDERATION" in name or "PROOFING" in name] == []
    assert "federation-keys" not in {
        v["name"] for v in gateway["spec"]["template"]["spec"]["volumes"]
    }
    settings = _settings_from(_pod_environment(documents, {}), tmp_path, monkeypatch)
    assert not federation_configured(settings)
    assert settings.proofing_providers == []


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            ["--set=gateway.federation.automaticRegistration=true"],
            "gateway.federation.automaticRegistration: the federation is off without its key "
            "ring; set gateway.federation.existingSecret",
        ),
        (
            ['--set-json=gateway.federation.metadataPolicy={"openid_relying_party":{}}'],
            "gateway.federation.metadataPolicy: the federation is off",
        ),
        (
            ["--set-json=gateway.proofing.providers=" + json.dumps([PROVIDER])],
            "gateway.proofing.existingSecret: name the Secret that holds the proofing providers'",
        ),
        (
            [
                "--set=gateway.proofing.existingSecret=tongxing-proofing",
                "--set-json=gateway.proofing.providers=" + json.dumps([PROVIDER, PROVIDER]),
            ],
            'gateway.proofing.providers: the id "mps" appears twice',
        ),
        (
            [
                "--set=gateway.proofing.existingSecret=tongxing-proofing",
                "--set-json=gateway.proofing.providers="
                + json.dumps([{**PROVIDER, "client_secret": "in-the-values"}]),
            ],
            "additional properties 'client_secret' not allowed",
        ),
    ],
    ids=["registration", "policy", "no-secret", "twice", "secret-in-values"],
)
def test_federation_and_proofing_values_that_cannot_work_fail(
    helm: Helm, values: list[str], expected: str
) -> None:
    assert expected in refused(helm, *MINIMAL_VALUES, *values)


def test_the_verification_budget_and_the_mandate_retention_reach_the_gateway(
    helm: Helm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    documents = render(
        helm,
        *MINIMAL_VALUES,
        "--set=gateway.settings.verificationMisses=3",
        "--set=gateway.settings.verificationHold=PT12H",
        "--set=gateway.settings.mandateRetention=P90D",
    )
    settings = _settings_from(_pod_environment(documents, {}), tmp_path, monkeypatch)
    assert settings.verification_misses == 3
    assert settings.verification_hold.total_seconds() == 12 * 3600
    assert settings.mandate_retention.days == 90
    message = refused(helm, *MINIMAL_VALUES, "--set=gateway.settings.verificationMisses=0")
    assert "/gateway/settings/verificationMisses" in message
    # Not set: not rendered, the gateway's defaults apply.
    data = one(render(helm, *MINIMAL_VALUES), "ConfigMap", "tx-tongxing-gateway")["data"]
    assert not {"TONGXING_VERIFICATION_MISSES", "TONGXING_MANDATE_RETENTION"} & set(data)


def test_watching_every_namespace_grants_cluster_wide_and_shares_a_cluster_peering(
    helm: Helm,
) -> None:
    documents = render(helm, *MINIMAL_VALUES, "--set=operator.watch.allNamespaces=true")
    assert not find(documents, "Role")
    assert not find(documents, "KopfPeering")
    assert one(documents, "ClusterKopfPeering")["metadata"]["name"] == "tongxing"
    rules = one(documents, "ClusterRole")["rules"]
    granted = {res for rule in rules for res in rule["resources"]}
    assert {"secrets", "regions", "clusterkopfpeerings", "events"} <= granted
    assert "pods" not in granted
    assert (
        "--all-namespaces"
        in container(one(documents, "Deployment", "tx-tongxing-operator"))["args"]
    )


def test_a_typo_in_the_values_fails_and_names_the_key(helm: Helm) -> None:
    message = refused(helm, *MINIMAL_VALUES, "--set=gateway.replica=3")
    assert "values don't meet the specifications of the schema" in message
    assert "at '/gateway': additional properties 'replica' not allowed" in message
    message = refused(helm, "-f", str(PRODUCTION), "--set=gateway.ingress.tls.secretname=x")
    assert "at '/gateway/ingress/tls': additional properties 'secretname' not allowed" in message
    message = refused(helm, *MINIMAL_VALUES, "--set=gateway.issuer=http://id.example.gov.cn")
    assert "/gateway/issuer" in message


def test_a_missing_secret_reference_fails_with_what_to_create(helm: Helm) -> None:
    message = refused(helm, f"--set=gateway.issuer={ISSUER}")
    assert "gateway.secrets.existingSecret: name the Secret that holds the gateway's" in message
    message = refused(
        helm, f"--set=gateway.issuer={ISSUER}", "--set=gateway.secrets.existingSecret=gw"
    )
    assert "gateway.signingKeys.existingSecret: name the Secret" in message
    message = refused(
        helm,
        "--set=gateway.secrets.existingSecret=gw",
        "--set=gateway.signingKeys.existingSecret=keys",
    )
    assert "gateway.issuer: set the gateway's public https issuer URL" in message


def test_several_gateway_replicas_refuse_sqlite(helm: Helm) -> None:
    message = refused(helm, *MINIMAL_VALUES, "--set=gateway.replicas=3")
    assert "gateway: 3 replicas cannot share SQLite" in message
    assert "set gateway.database.existingSecret" in message
    message = refused(helm, *MINIMAL_VALUES, "--set=gateway.autoscaling.enabled=true")
    assert "gateway: 6 replicas cannot share SQLite" in message
    documents = render(
        helm,
        *MINIMAL_VALUES,
        "--set=gateway.replicas=3",
        "--set=gateway.database.existingSecret=db",
    )
    assert one(documents, "Deployment", "tx-tongxing-gateway")["spec"]["replicas"] == 3


# --- the real API server ------------------------------------------------------------------------


def apply_server_side(
    kube: KubeEndpoint, documents: list[Document], take_over: bool = False
) -> str:
    """``kubectl apply --server-side``: the API server validates every field.

    ``take_over`` for the CRDs, which the test cluster shares: other tests (and a kept Helm
    release) applied them before, with their own labels; ownership, not validity, is forced.
    """
    done = kubectl(
        kube,
        "apply",
        "--server-side",
        "--field-manager=tongxing-chart-test",
        *(["--force-conflicts"] if take_over else []),
        "-f",
        "-",
        stdin=yaml.safe_dump_all(documents, allow_unicode=True),
    )
    return done.stdout


def create_secret(kube: KubeEndpoint, namespace: str, name: str, data: dict[str, str]) -> None:
    document = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": data,
    }
    kubectl(kube, "apply", "-f", "-", stdin=yaml.safe_dump(document))


@pytest.fixture(scope="module")
def chart_crds(kube: KubeEndpoint, helm: Helm) -> list[Document]:
    """The chart's CRDs (crds/ and the templates), server-side applied and established.

    CRDs outlive every release (crds/, and "keep"): they stay for the other tests, as in a
    cluster.
    """
    crds = find(render(helm, *MINIMAL_VALUES, "--include-crds"), "CustomResourceDefinition")
    apply_server_side(kube, crds, take_over=True)
    for crd in crds:
        name = crd["metadata"]["name"]
        kubectl(kube, "wait", "--for=condition=Established", f"crd/{name}", "--timeout=30s")
    return crds


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    yield from start_gateway(tmp_path_factory.mktemp("gateway"))


@dataclass
class Release:
    """The chart rendered with the production values and applied for one release."""

    name: str
    namespace: str
    watched: Namespace
    documents: list[Document]

    @property
    def operator(self) -> Document:
        return one(self.documents, "Deployment", f"{self.name}-tongxing-operator")


@pytest.fixture(scope="module")
def release(
    kube: KubeEndpoint,
    keycloak: KeycloakEndpoint,
    helm: Helm,
    gateway: RunningGateway,
    chart_crds: list[Document],
) -> Iterator[Release]:
    """The production profile applied: its namespace, one watched namespace, its Secrets.

    The platform grants the harness Keycloak to the watched namespace, with its admin in a
    Secret of the release namespace (the platform's, not watched).
    """
    name = f"tx{uuid.uuid4().hex[:6]}"
    namespace = f"{name}-system"
    kubectl(kube, "create", "namespace", namespace)
    watched = create_namespace(kube, keycloak, f"{name}-regions")
    # The Secrets an admin creates before installing; the tokens are the running gateway's.
    values = {key: secrets.token_urlsafe(32) for key in GATEWAY_SECRET_KEYS}
    values["admin-token"] = gateway.admin_token
    values["operator-token"] = gateway.operator_token
    create_secret(kube, namespace, "tongxing-gateway", values)
    admin = {"username": keycloak.admin_user, "password": keycloak.admin_password}
    create_secret(kube, namespace, "keycloak-admin", admin)
    grant = {
        "url": keycloak.url,
        "credentialsSecret": {"name": "keycloak-admin"},  # the namespace: the release's
        "namespaces": [watched.name],
    }
    created = Release(name, namespace, watched, [])
    try:
        created.documents = render(
            helm,
            *PRODUCTION_VALUES,
            "--include-crds",
            f"--set=operator.watch.namespaces={{{watched.name}}}",
            f"--set-json=operator.keycloaks={json.dumps([grant])}",
            release=name,
            namespace=namespace,
        )
        # The CRDs first (chart_crds, with this release's labels now), then what needs them.
        apply_server_side(kube, find(created.documents, "CustomResourceDefinition"), True)
        rest = [d for d in created.documents if d["kind"] != "CustomResourceDefinition"]
        apply_server_side(kube, rest)
        yield created
    finally:
        watched.clean_up()
        # Everything the release made but the CRDs (kept, as on `helm uninstall`): there is no
        # controller manager to empty a deleted namespace.
        made = [d for d in created.documents if d["kind"] != "CustomResourceDefinition"]
        kubectl(
            kube,
            "delete",
            "--ignore-not-found",
            "--wait=false",
            "-f",
            "-",
            stdin=yaml.safe_dump_all(made),
            check=False,
        )
        watched.force_clean_up()
        remove_namespace(kube, namespace)


def test_the_rendered_manifests_pass_server_side_apply(
    kube: KubeEndpoint, release: Release
) -> None:
    """Every object exists as rendered; applying again changes nothing."""
    for document in release.documents:
        metadata = document["metadata"]
        where = ["-n", metadata["namespace"]] if "namespace" in metadata else []
        kind = document["kind"].lower()
        if document["apiVersion"].startswith("kopf.dev/"):
            kind = f"{kind}s.kopf.dev"
        kubectl(kube, "get", kind, metadata["name"], *where, "-o", "name")
    crds = find(release.documents, "CustomResourceDefinition")
    apply_server_side(kube, crds, take_over=True)
    rest = [d for d in release.documents if d["kind"] != "CustomResourceDefinition"]
    again = apply_server_side(kube, rest)
    assert "serverside-applied" in again
    crd = yaml.safe_load(kubectl(kube, "get", "crd", "regions.tongxing.io", "-o", "yaml").stdout)
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def operator_environment(kube: KubeEndpoint, release: Release) -> dict[str, str]:
    """The operator container's environment, resolved from the cluster as the kubelet would."""
    item = container(release.operator)
    env: dict[str, str] = {}
    for source in item["envFrom"]:
        name = source["configMapRef"]["name"]
        found = kubectl(kube, "get", "configmap", name, "-n", release.namespace, "-o", "json")
        env.update(yaml.safe_load(found.stdout)["data"])
    for variable in item["env"]:
        reference = variable.get("valueFrom", {})
        if "secretKeyRef" in reference:
            ref = reference["secretKeyRef"]
            found = kubectl(
                kube, "get", "secret", ref["name"], "-n", release.namespace, "-o", "json"
            )
            data = yaml.safe_load(found.stdout)["data"]
            env[variable["name"]] = base64.b64decode(data[ref["key"]]).decode()
        elif "fieldRef" in reference:
            env[variable["name"]] = f"{release.name}-operator-0"
        else:
            env[variable["name"]] = variable["value"]
    return env


@pytest.fixture(scope="module")
def chart_operator(
    kube: KubeEndpoint,
    release: Release,
    gateway: RunningGateway,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[OperatorProcess, Path, int]]:
    """The operator with the chart's arguments and environment, as the chart's ServiceAccount.

    Only what cannot be reached from here is replaced: the gateway's in-cluster Service URL and
    public issuer by the test gateway on loopback, the liveness listener's 0.0.0.0 by loopback.
    """
    folder = tmp_path_factory.mktemp("chart-operator")
    service_account = release.operator["spec"]["template"]["spec"]["serviceAccountName"]
    kubeconfig = token_kubeconfig(
        kube, release.namespace, service_account, folder / "kubeconfig", release.watched.name
    )
    env = operator_environment(kube, release)
    # The operator's own credential, not the platform's; the grant as the platform set it.
    assert env["TONGXING_OPERATOR_ADMIN_TOKEN"] == gateway.operator_token != gateway.admin_token
    (grant,) = json.loads(env["TONGXING_OPERATOR_KEYCLOAKS"])
    assert grant["credentials_secret"] == {"namespace": release.namespace, "name": "keycloak-admin"}
    assert env["TONGXING_OPERATOR_GATEWAY_URL"].startswith(
        f"http://{release.name}-tongxing-gateway.{release.namespace}.svc:"
    )
    env["TONGXING_OPERATOR_GATEWAY_URL"] = gateway.issuer
    env["TONGXING_OPERATOR_GATEWAY_ISSUER"] = gateway.issuer
    env["KUBECONFIG"] = str(kubeconfig)
    port = free_port()
    args = [
        f"--liveness=http://{LOOPBACK}:{port}/healthz" if a.startswith("--liveness=") else a
        for a in container(release.operator)["args"]
    ]
    assert args[0] == "operator"
    process = run_operator(args, env, folder / "operator.log")
    yield process, kubeconfig, port
    release.watched.clean_up()  # while it runs, so its finalizer cleans Keycloak and gateway
    process.stop()


def test_the_operator_with_the_charts_rbac_onboards_a_region(
    release: Release,
    gateway: RunningGateway,
    keycloak: KeycloakEndpoint,
    chart_operator: tuple[OperatorProcess, Path, int],
) -> None:
    process, _, port = chart_operator
    namespace = release.watched
    code = namespace.code("chart")
    namespace.apply(namespace.region("chart", code))
    started = time.monotonic()
    try:
        namespace.wait("condition=Ready", "region/chart", timeout=90)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n" + "\n".join(operator_logs(process))) from None
    assert time.monotonic() - started < 90
    assert code in realm_names(keycloak)
    registered = gateway.admin("GET", f"/regions/{code}")
    assert registered.status_code == 200, registered.text
    # Its events were posted (events: create) and its liveness endpoint answers the probe.
    wait_until(lambda: namespace.events("chart"), 30, "the Region's events", (process,))
    probe = release.operator["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
    answer = requests.get(f"http://{LOOPBACK}:{port}{probe['httpGet']['path']}", timeout=5)
    assert answer.status_code == 200
    # Deleting it goes through the operator's finalizer: realm and registration are gone.
    kubectl(namespace.kube, "delete", "region", "chart", "-n", namespace.name, "--timeout=60s")
    wait_until(lambda: code not in realm_names(keycloak), 30, "the realm's removal", (process,))
    assert gateway.admin("GET", f"/regions/{code}").status_code == 404
    assert "Forbidden" not in process.output(), process.tail()
    # The API server's audit log: the credentials came from the granted Secret, by name, and
    # no other Secret was read (there is no Portal, so none in the watched namespace).
    service_account = release.operator["spec"]["template"]["spec"]["serviceAccountName"]
    reads = secret_requests(
        namespace.kube, f"system:serviceaccount:{release.namespace}:{service_account}"
    )
    assert reads, "the granted credentials were never read: the audit log is silent"
    assert set(reads) == {("get", release.namespace, "keycloak-admin")}, reads


def secret_requests(kube: KubeEndpoint, user: str) -> list[tuple[str, str, str]]:
    """(verb, namespace, name) of every request ``user`` made for a Secret (the audit log)."""
    assert kube.audit_log, "the harness's kube-apiserver writes no audit log"
    found = []
    for line in Path(kube.audit_log).read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        if event.get("user", {}).get("username") == user and ref.get("resource") == "secrets":
            found.append((event["verb"], ref.get("namespace", ""), ref.get("name", "")))
    return found


def test_the_operators_credential_from_the_chart_is_not_the_platforms(
    kube: KubeEndpoint, release: Release, gateway: RunningGateway
) -> None:
    """Its token (role operator) reads its own registrations, and cannot reload policies."""
    token = operator_environment(kube, release)["TONGXING_OPERATOR_ADMIN_TOKEN"]
    assert gateway.admin_as(token, "GET", "/regions").status_code == 200
    refused = gateway.admin_as(token, "POST", "/policies/reload")
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"] == "insufficient_scope"


def test_the_charts_service_account_can_do_no_more(
    kube: KubeEndpoint, release: Release, chart_operator: tuple[OperatorProcess, Path, int]
) -> None:
    _, kubeconfig, _ = chart_operator
    watched = release.watched.name

    def as_operator(*args: str) -> tuple[int, str]:
        done = kubectl(kube, f"--kubeconfig={kubeconfig}", *args, check=False)
        return done.returncode, done.stderr

    # What it needs: the granted Keycloak admin Secret, by name, in the platform's namespace.
    assert as_operator("get", "secret", "keycloak-admin", "-n", release.namespace)[0] == 0
    assert as_operator("get", "regions", "-n", watched)[0] == 0
    forbidden = [
        ("get", "secrets", "-n", watched),  # no listing of Secrets, even where it works
        ("get", "secrets", "-n", release.namespace),  # nor beside the granted one
        # Not granted, though beside the granted one: the platform's own secrets.
        ("get", "secret", "tongxing-gateway", "-n", release.namespace),
        ("get", "secret", "tongxing-signing-keys", "-n", release.namespace),
        ("create", "secret", "generic", "planted", "-n", release.namespace),
        ("get", "secret", "keycloak-admin", "-n", "default"),
        ("get", "pods", "-n", watched),
        ("get", "regions", "--all-namespaces"),
        ("create", "namespace", f"{release.name}-nope"),
        ("create", "clusterrolebinding", f"{release.name}-nope", "--clusterrole=cluster-admin"),
    ]
    for action in forbidden:
        code, message = as_operator(*action)
        assert code != 0, f"allowed: kubectl {' '.join(action)}"
        assert "Forbidden" in message or "forbidden" in message, message


def test_helm_install_on_the_cluster_checks_the_named_secrets(
    kube: KubeEndpoint, helm: Helm, chart_crds: list[Document]
) -> None:
    """``helm install --dry-run=server`` asks the cluster: each missing piece is named.

    The harness's API server advertises a loopback address, which an Endpoints object may not
    hold: there is no ``kubernetes`` Endpoints in ``default`` until the test writes one, so the
    chart's look-up of the API server's addresses is seen to fail, then to fill the operator's
    egress rule.
    """
    namespace = f"tx-dry-{uuid.uuid4().hex[:6]}"
    platform = f"{namespace}-kc"
    kubectl(kube, "create", "namespace", namespace)
    kubectl(kube, "create", "namespace", platform)
    endpoints = ("endpoints", "kubernetes", "-n", "default")
    kubectl(kube, "delete", *endpoints, "--ignore-not-found")  # left by a run stopped halfway
    try:

        def install(*extra: str) -> tuple[int, str]:
            done = helm.run(
                "install",
                "dry",
                str(CHART),
                f"--namespace={namespace}",
                "--dry-run=server",
                "-f",
                str(MINIMAL),
                # The test cluster's CRDs are shared and not this release's to adopt.
                "--set=crds.install=false",
                *extra,
                kubeconfig=kube.kubeconfig,
            )
            return done.returncode, done.stdout + done.stderr

        code, output = install()
        assert code != 0
        assert (
            f"gateway.secrets.existingSecret: Secret {namespace}/tongxing-gateway does not exist"
            in output
        )
        partial = {key: secrets.token_urlsafe(32) for key in GATEWAY_SECRET_KEYS[:-1]}
        create_secret(kube, namespace, "tongxing-gateway", partial)
        code, output = install()
        assert code != 0
        # The operator's own token is a required key (with the operator on).
        assert f'Secret {namespace}/tongxing-gateway has no key "operator-token"' in output
        create_secret(kube, namespace, "tongxing-gateway", {**partial, "operator-token": "x" * 32})
        code, output = install()
        assert code != 0
        assert f"Secret {namespace}/tongxing-signing-keys does not exist" in output
        create_secret(kube, namespace, "tongxing-signing-keys", {"keys.json": "{}"})
        create_secret(kube, namespace, "db", {"url": "sqlite:///tongxing.db"})
        postgres = ("--set=gateway.replicas=2", "--set=gateway.database.existingSecret=db")
        code, output = install(*postgres)
        assert code != 0
        assert "is not a PostgreSQL URL" in output
        create_secret(kube, namespace, "db", {"url": "postgresql+psycopg://tx:pw@db:5432/tx"})
        code, output = install(*postgres)
        assert code != 0  # a cluster to ask, but no addresses in its answer
        assert (
            "operator.networkPolicy.egress.apiServer: the Endpoints default/kubernetes has no "
            "addresses" in output
        )
        grant = {
            "url": "http://kc:8080",
            "credentialsSecret": {"namespace": platform, "name": "kc"},
        }
        granted = (*postgres, API_SERVER, f"--set-json=operator.keycloaks={json.dumps([grant])}")
        code, output = install(*granted)
        assert code != 0
        assert f"operator.keycloaks[0].credentialsSecret: Secret {platform}/kc does not exist" in (
            output
        )
        create_secret(kube, platform, "kc", {"username": "admin"})
        code, output = install(*granted)
        assert code != 0
        assert f'Secret {platform}/kc has no key "password"' in output
        create_secret(kube, platform, "kc", {"username": "admin", "password": "x" * 32})
        code, output = install(*granted)
        assert code == 0, output
        assert "wait --for=condition=Ready region/zj" in output  # NOTES.txt: what to apply next
        assert "url: http://kc:8080" in output  # the Region to apply names the granted Keycloak
        # The federation's key ring and the proofing providers' secrets: named Secrets too.
        federated = (*granted, "--set=gateway.federation.existingSecret=fed")
        code, output = install(*federated)
        assert code != 0
        assert f"gateway.federation.existingSecret: Secret {namespace}/fed does not exist" in (
            output
        )
        create_secret(kube, namespace, "fed", {"federation-keys.json": "{}"})
        proofing = (
            *federated,
            "--set=gateway.proofing.existingSecret=proof",
            "--set-json=gateway.proofing.providers=" + json.dumps([PROVIDER]),
        )
        create_secret(kube, namespace, "proof", {"other": "x" * 32})
        code, output = install(*proofing)
        assert code != 0
        assert f'gateway.proofing.existingSecret: Secret {namespace}/proof has no key "mps"' in (
            output
        )
        create_secret(kube, namespace, "proof", {"mps": "x" * 32})
        code, output = install(*proofing)
        assert code == 0, output

        # With the addresses in the cluster, helm install reads them (and the endpoint's port).
        kubectl(
            kube,
            "apply",
            "-f",
            "-",
            stdin=yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Endpoints",
                    "metadata": {"name": "kubernetes", "namespace": "default"},
                    "subsets": [
                        {
                            "addresses": [{"ip": "192.0.2.10"}, {"ip": "192.0.2.11"}],
                            "ports": [{"name": "https", "port": 16443, "protocol": "TCP"}],
                        }
                    ],
                }
            ),
        )
        code, output = install(*postgres)
        assert code == 0, output
        manifest = output.split("\nMANIFEST:\n", 1)[1].split("\nNOTES:\n", 1)[0]
        policy = one(
            [d for d in yaml.safe_load_all(manifest) if d],
            "NetworkPolicy",
            "dry-tongxing-operator",
        )
        assert policy["spec"]["egress"][1] == {
            "to": [{"ipBlock": {"cidr": "192.0.2.10/32"}}, {"ipBlock": {"cidr": "192.0.2.11/32"}}],
            "ports": [
                {"port": 443, "protocol": "TCP"},
                {"port": 6443, "protocol": "TCP"},
                {"port": 16443, "protocol": "TCP"},
            ],
        }
    finally:
        kubectl(kube, "delete", *endpoints, "--ignore-not-found")
        remove_namespace(kube, platform)
        remove_namespace(kube, namespace)


def test_helm_install_adopts_upgrades_and_keeps_the_crds(
    kube: KubeEndpoint, helm: Helm, chart_crds: list[Document]
) -> None:
    """A real ``helm install``, ``upgrade`` and ``uninstall``: the CRD strategy as Helm runs it.

    The test cluster's CRDs were applied with kubectl (as operator/README.md says), so they are
    adopted the way the chart's README tells an admin to; the uninstall keeps them.
    """
    name = f"tx{uuid.uuid4().hex[:6]}"
    namespace = f"{name}-install"
    kubectl(kube, "create", "namespace", namespace)
    crds = ("regions.tongxing.io", "portals.tongxing.io")

    def run(*args: str) -> str:
        done = helm.run(*args, f"--namespace={namespace}", kubeconfig=kube.kubeconfig)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    try:
        values = {key: secrets.token_urlsafe(32) for key in GATEWAY_SECRET_KEYS}
        create_secret(kube, namespace, "tongxing-gateway", values)
        create_secret(kube, namespace, "tongxing-signing-keys", {"keys.json": "{}"})
        for crd in crds:
            kubectl(kube, "label", "--overwrite", "crd", crd, "app.kubernetes.io/managed-by=Helm")
            kubectl(
                kube,
                "annotate",
                "--overwrite",
                "crd",
                crd,
                f"meta.helm.sh/release-name={name}",
                f"meta.helm.sh/release-namespace={namespace}",
            )
        run("install", name, str(CHART), *MINIMAL_VALUES)
        crd = yaml.safe_load(kubectl(kube, "get", "crd", crds[0], "-o", "yaml").stdout)
        assert crd["metadata"]["labels"]["app.kubernetes.io/instance"] == name
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"

        run(
            "upgrade",
            name,
            str(CHART),
            *MINIMAL_VALUES,
            "--set=gateway.threads=4",
            "--set=gateway.workers=2",
        )
        deployment = yaml.safe_load(
            kubectl(
                kube, "get", "deployment", f"{name}-tongxing-gateway", "-n", namespace, "-o", "yaml"
            ).stdout
        )
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        assert "--threads=4" in args
        assert "--workers=2" in args

        output = run("uninstall", name)
        assert "kept due to the resource policy" in output
        for crd_name in crds:
            kubectl(kube, "get", "crd", crd_name)  # still there, and every Region with it
        gone = kubectl(kube, "get", "clusterrole", f"{name}-tongxing-operator", check=False)
        assert gone.returncode != 0
    finally:
        helm.run("uninstall", name, f"--namespace={namespace}", kubeconfig=kube.kubeconfig)
        for kind in ("clusterrolebinding", "clusterrole"):
            kubectl(kube, "delete", kind, f"{name}-tongxing-operator", "--ignore-not-found")
        for crd in crds:  # no longer any release's
            kubectl(kube, "label", "crd", crd, "app.kubernetes.io/managed-by-", check=False)
            kubectl(
                kube,
                "annotate",
                "crd",
                crd,
                "meta.helm.sh/release-name-",
                "meta.helm.sh/release-namespace-",
                check=False,
            )
        remove_namespace(kube, namespace)
