"""The chart's and the image's files agree with each other, with the gateway and the operator.

Here: the CRD copies, the values schema's strictness and its match with values.yaml, the build
context and the lock files, and what ``helm template`` renders (no cluster: ``lookup`` answers
nothing) for the tenant boundaries of issue 11: each container's environment, the operator's
Roles and NetworkPolicy, and the refusals. helm against the real API server (install, upgrade,
lookup, RBAC as the operator) is tests/e2e/test_chart.py.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from tongxing_dev import helm

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "tongxing"
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


@pytest.mark.parametrize(
    ("copy", "original"),
    [
        ("files/crds/region.yaml", "region.yaml"),
        ("files/crds/portal.yaml", "portal.yaml"),
        ("crds/kopf-peering.yaml", "kopf-peering.yaml"),
    ],
)
def test_the_charts_crds_are_the_operators(copy: str, original: str) -> None:
    """Helm reads only the chart's folder: its CRDs are copies of operator/crds/, kept equal."""
    assert (CHART / copy).read_bytes() == (REPO / "operator" / "crds" / original).read_bytes(), (
        f"charts/tongxing/{copy} differs from operator/crds/{original}: copy it over"
    )


def _objects(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every object schema in ``schema`` with its path."""
    found: list[tuple[str, dict[str, Any]]] = []
    if schema.get("type") == "object":
        found.append((path or "/", schema))
    for name, child in schema.get("properties", {}).items():
        found += _objects(child, f"{path}/{name}")
    if isinstance(schema.get("items"), dict):
        found += _objects(schema["items"], f"{path}[]")
    return found


def test_every_object_in_the_schema_refuses_unknown_keys() -> None:
    """additionalProperties: false everywhere but Kubernetes objects passed through as they are."""
    passed_through = []
    for path, schema in _objects(SCHEMA):
        assert "additionalProperties" in schema, f"{path} does not say additionalProperties"
        extra = schema["additionalProperties"]
        if extra is True:
            assert "passed" in schema.get("description", ""), f"{path} allows any key"
            passed_through.append(path)
        elif isinstance(extra, dict) and extra.get("type") == "object":
            # A map of objects (trust-mark types by URL): each value refuses unknown keys.
            assert extra.get("additionalProperties") is False, f"{path}: values allow any key"
        else:
            assert extra is False or extra == {"type": "string"}, path
    assert "/gateway/securityContext" in passed_through
    assert "/gateway/secrets" not in passed_through


def _schema_keys(schema: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    if schema.get("additionalProperties") is not False:
        return keys  # a map or a pass-through: its keys are the user's
    for name, child in schema.get("properties", {}).items():
        keys.add(f"{prefix}{name}")
        keys |= _schema_keys(child, f"{prefix}{name}.")
    return keys


def _value_keys(values: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, value in values.items():
        keys.add(f"{prefix}{name}")
        child = schema.get("properties", {}).get(name, {})
        if isinstance(value, dict) and child.get("additionalProperties") is False:
            keys |= _value_keys(value, child, f"{prefix}{name}.")
    return keys


def test_values_yaml_and_the_schema_name_the_same_keys() -> None:
    """Every documented value is in the schema, and every schema key has a default."""
    in_schema = _schema_keys(SCHEMA) - {"global"}
    in_values = _value_keys(VALUES, SCHEMA)
    assert in_values - in_schema == set(), "values the schema would refuse"
    optional = {k for k in in_schema if k.endswith(".ephemeral-storage")}  # a resource to add
    assert in_schema - in_values - optional == set(), "schema keys without a default"


def test_the_chart_renders_no_secret_defaults() -> None:
    """Secrets are named, never given: every *existingSecret is empty by default."""
    gateway = VALUES["gateway"]
    for section in ("secrets", "signingKeys", "database"):
        assert gateway[section]["existingSecret"] == ""
    templates = "\n".join(p.read_text() for p in (CHART / "templates").iterdir())
    assert "kind: Secret" not in templates


def test_template_files_are_named_component_kind() -> None:
    for path in (CHART / "templates").glob("*.yaml"):
        # <component>-<kind>, or <component>-<what>-<kind> for a second one of a kind
        component, *_, kind = path.stem.split("-")
        assert component in {"gateway", "operator", "region", "portal"}, path.name
        text = path.read_text()
        loaded = re.search(r'\.Files\.Get "(files/crds/[^"]+)"', text)
        if loaded:  # a CRD laid over from its copy of operator/crds/
            text = (CHART / loaded.group(1)).read_text()
        assert re.search(rf"^kind: {kind}$", text, re.M | re.I), f"{path.name} is no {kind}"


def _dockerignore() -> tuple[list[str], list[str]]:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", ".dockerignore is an allow-list: it starts by excluding everything"
    allowed = [line[1:] for line in lines if line.startswith("!")]
    excluded = [line for line in lines[1:] if not line.startswith("!")]
    return allowed, excluded


def test_the_build_context_lets_in_only_what_the_wheel_is_built_from() -> None:
    allowed, excluded = _dockerignore()
    for path in allowed:
        assert (REPO / path).exists(), f".dockerignore allows {path}, which does not exist"
    assert not any(
        path.startswith("tests") for path in allowed if path != "tests/harness/tongxing_dev"
    )
    assert {"**/keys.json", "**/*.pem", "**/.env"} <= set(excluded)
    dockerfile = (REPO / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.M):
        for path in source.split():
            assert path in allowed, f"the Dockerfile copies {path}, which .dockerignore keeps out"
    # pyproject.toml's package-dir: the wheel needs each of these folders.
    package_dirs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    for folder in package_dirs.values():
        assert any(folder == a or folder.startswith(f"{a}/") for a in allowed), folder


def test_the_dockerfile_pins_its_base_and_runs_unprivileged() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(
        r"^ARG BASE_IMAGE=python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}$", dockerfile, re.M
    )
    assert re.search(r"^USER 10001:10001$", dockerfile, re.M)
    assert "--require-hashes" in dockerfile
    assert re.search(r"^HEALTHCHECK ", dockerfile, re.M)
    assert re.search(r'^ENTRYPOINT \["tongxing"\]$', dockerfile, re.M)
    assert dockerfile.count("\nFROM ") == 2  # build, runtime


def _pins(lock: Path) -> dict[str, str]:
    text = lock.read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", text, re.M))
    entries = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", text)
    for entry in entries[1:]:
        assert "--hash=sha256:" in entry, f"{entry.splitlines()[0]} has no hash"
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins.items()}


def test_the_lock_pins_every_runtime_dependency_with_hashes() -> None:
    pins = _pins(REPO / "requirements.lock")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~ ]", requirement)[0]).lower()
        assert name in pins, f"{name} is not in requirements.lock: regenerate it"
    build = _pins(REPO / "requirements-build.lock")
    assert {"setuptools", "wheel"} <= set(build)


def test_the_helm_wrapper_module_pins_helm_3() -> None:
    assert re.fullmatch(r"v3\.\d+\.\d+", helm.HELM_VERSION)
    go_mod = (helm.MODULE_DIR / "go.mod").read_text()
    assert f"tool {helm.HELM_PACKAGE}" in go_mod
    assert (helm.MODULE_DIR / "go.sum").stat().st_size > 0


# --- what helm template renders (issue 11: tenant boundaries) ---------------------------------

MINIMAL = CHART / "ci" / "minimal-values.yaml"
PRODUCTION = CHART / "ci" / "production-values.yaml"
# helm template cannot look the API server's addresses up: every render here names them.
API_SERVER = (
    '--set-json=operator.networkPolicy.egress.apiServer=[{"ipBlock":{"cidr":"10.0.0.1/32"}}]'
)
DIGEST = "a" * 64
OPERATOR_LABELS = {
    "app.kubernetes.io/name": "tongxing",
    "app.kubernetes.io/instance": "tx",
    "app.kubernetes.io/component": "operator",
}
GATEWAY_LABELS = {**OPERATOR_LABELS, "app.kubernetes.io/component": "gateway"}
KEYCLOAKS = [
    # Two grants whose Secrets sit in the platform's namespace, one in the release namespace.
    {
        "url": "http://keycloak.kc.svc:8080",
        "publicUrl": "https://id.zj.example.gov.cn",
        "credentialsSecret": {"namespace": "platform", "name": "kc-admin"},
        "namespaces": ["regions"],
    },
    {
        "url": "https://keycloak.sh.example.gov.cn/auth",
        "adminRealm": "ops",
        "credentialsSecret": {"namespace": "platform", "name": "kc-admin-sh"},
    },
    {"url": "http://keycloak.local:8080", "credentialsSecret": {"name": "keycloak-admin"}},
]

Document = dict[str, Any]


def _template(helm: helm.Helm, *args: str) -> Any:
    return helm.run("template", "tx", str(CHART), "--namespace=tongxing", *args)


def _render(helm: helm.Helm, *args: str, values: Path = MINIMAL) -> list[Document]:
    done = _template(helm, "-f", str(values), API_SERVER, *args)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def _refused(helm: helm.Helm, *args: str, api_server: bool = True) -> str:
    """``helm template`` of the minimal values with ``args`` must fail: its message."""
    done = _template(helm, "-f", str(MINIMAL), *([API_SERVER] if api_server else []), *args)
    assert done.returncode != 0, f"rendered although it should not:\n{done.stdout[:2000]}"
    message: str = done.stderr
    return message


def _one(documents: list[Document], kind: str, name: str, namespace: str = "tongxing") -> Document:
    found = [
        d
        for d in documents
        if d["kind"] == kind
        and d["metadata"]["name"] == name
        and d["metadata"].get("namespace", namespace) == namespace
    ]
    assert len(found) == 1, f"{len(found)} {kind} {namespace}/{name}"
    return found[0]


def _environment(documents: list[Document], component: str) -> dict[str, Any]:
    """A container's environment as the kubelet builds it: its ConfigMaps' data, then its env.

    A Secret's key stays a reference, ``("secret", name, key)``; a field, ``("field", path)``.
    """
    deployment = _one(documents, "Deployment", f"tx-tongxing-{component}")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        env.update(_one(documents, "ConfigMap", source["configMapRef"]["name"])["data"])
    for variable in container.get("env", []):
        reference = variable.get("valueFrom", {})
        if "secretKeyRef" in reference:
            ref = reference["secretKeyRef"]
            env[variable["name"]] = ("secret", ref["name"], ref["key"])
        elif "fieldRef" in reference:
            env[variable["name"]] = ("field", reference["fieldRef"]["fieldPath"])
        else:
            env[variable["name"]] = variable["value"]
    return env


def _secrets_of(env: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {name: value[1:] for name, value in env.items() if value[0] == "secret"}


def test_the_operator_calls_the_admin_api_with_its_own_token_never_the_platforms(
    helm: helm.Helm,
) -> None:
    """THREAT_MODEL row 1: the operator holds the operator's credential, not the master key."""
    documents = _render(helm)
    gateway = _environment(documents, "gateway")
    assert _secrets_of(gateway) == {
        "TONGXING_NATIONAL_SECRET": ("tongxing-gateway", "national-secret"),
        "TONGXING_PAIRWISE_SECRET": ("tongxing-gateway", "pairwise-secret"),
        "TONGXING_ADMIN_TOKEN": ("tongxing-gateway", "admin-token"),
        "TONGXING_OPERATOR_TOKEN": ("tongxing-gateway", "operator-token"),
        "TONGXING_SESSION_SECRET": ("tongxing-gateway", "session-secret"),
        "TONGXING_MFA_SECRET": ("tongxing-gateway", "mfa-secret"),
    }
    operator = _environment(documents, "operator")
    assert _secrets_of(operator) == {
        "TONGXING_OPERATOR_ADMIN_TOKEN": ("tongxing-gateway", "operator-token")
    }
    # Nothing the operator is given, and nothing of its objects, names the platform's token.
    of_operator = [
        d
        for d in documents
        if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "operator"
    ]
    assert of_operator
    assert "admin-token" not in yaml.safe_dump_all(of_operator)

    renamed = _render(
        helm,
        "--set=gateway.secrets.keys.operatorToken=op",
        "--set=gateway.secrets.keys.adminToken=admin",
    )
    assert _secrets_of(_environment(renamed, "operator")) == {
        "TONGXING_OPERATOR_ADMIN_TOKEN": ("tongxing-gateway", "op")
    }
    gateway = _secrets_of(_environment(renamed, "gateway"))
    assert gateway["TONGXING_OPERATOR_TOKEN"] == ("tongxing-gateway", "op")
    assert gateway["TONGXING_ADMIN_TOKEN"] == ("tongxing-gateway", "admin")


def test_without_the_operator_the_gateway_knows_no_operator_token(helm: helm.Helm) -> None:
    documents = _render(helm, "--set=operator.enabled=false")
    assert "TONGXING_OPERATOR_TOKEN" not in _environment(documents, "gateway")
    assert not [d for d in documents if d["metadata"]["name"].startswith("tx-tongxing-operator")]


def test_the_defaults_set_the_ceiling_at_loa2_and_grant_nothing(helm: helm.Helm) -> None:
    documents = _render(helm)
    gateway = _environment(documents, "gateway")
    assert gateway["TONGXING_LEVEL_CEILING"] == "loa2"
    assert json.loads(gateway["TONGXING_REGION_LEVEL_CEILINGS"]) == {}
    assert json.loads(gateway["TONGXING_ADMIN_CLIENTS"]) == []
    operator = _environment(documents, "operator")
    assert operator["TONGXING_OPERATOR_LEVEL_CEILING"] == "loa2"
    assert json.loads(operator["TONGXING_OPERATOR_REGION_LEVEL_CEILINGS"]) == {}
    assert json.loads(operator["TONGXING_OPERATOR_KEYCLOAKS"]) == []
    assert not [d for d in documents if d["metadata"]["name"].endswith("-credentials")]


def _platform_values() -> list[str]:
    return [
        "--set=operator.watch.namespaces={regions,portals}",
        f"--set-json=operator.keycloaks={json.dumps(KEYCLOAKS)}",
        "--set=platform.levelCeiling=loa1",
        '--set-json=platform.regionLevelCeilings={"zj":"loa3","xz":"loa2"}',
        "--set-json=gateway.adminClients="
        + json.dumps(
            [
                {"name": "audit", "role": "reader", "tokenSha256": DIGEST.upper()},
                {"name": "ops-team", "role": "platform", "tokenSha256": "b" * 64},
            ]
        ),
    ]


def test_the_platform_settings_reach_the_gateway_and_the_operator(helm: helm.Helm) -> None:
    documents = _render(helm, *_platform_values())
    gateway = _environment(documents, "gateway")
    assert json.loads(gateway["TONGXING_ADMIN_CLIENTS"]) == [
        {"name": "audit", "role": "reader", "token_sha256": DIGEST},
        {"name": "ops-team", "role": "platform", "token_sha256": "b" * 64},
    ]
    ceilings = {"zj": "loa3", "xz": "loa2"}
    assert gateway["TONGXING_LEVEL_CEILING"] == "loa1"
    assert json.loads(gateway["TONGXING_REGION_LEVEL_CEILINGS"]) == ceilings
    operator = _environment(documents, "operator")
    assert operator["TONGXING_OPERATOR_LEVEL_CEILING"] == "loa1"
    assert json.loads(operator["TONGXING_OPERATOR_REGION_LEVEL_CEILINGS"]) == ceilings
    # The contract's spelling, every default filled in: the operator guesses nothing.
    assert json.loads(operator["TONGXING_OPERATOR_KEYCLOAKS"]) == [
        {
            "url": "http://keycloak.kc.svc:8080",
            "public_url": "https://id.zj.example.gov.cn",
            "admin_realm": "master",
            "credentials_secret": {"namespace": "platform", "name": "kc-admin"},
            "namespaces": ["regions"],
        },
        {
            "url": "https://keycloak.sh.example.gov.cn/auth",
            "public_url": None,
            "admin_realm": "ops",
            "credentials_secret": {"namespace": "platform", "name": "kc-admin-sh"},
            "namespaces": ["*"],
        },
        {
            "url": "http://keycloak.local:8080",
            "public_url": None,
            "admin_realm": "master",
            "credentials_secret": {"namespace": "tongxing", "name": "keycloak-admin"},
            "namespaces": ["*"],
        },
    ]
    # No secret in a ConfigMap: the digests are not tokens, the credentials stay in Secrets.
    for component in ("gateway", "operator"):
        data = _one(documents, "ConfigMap", f"tx-tongxing-{component}")["data"]
        assert not any("SECRET" in key or key.endswith("TOKEN") for key in data)


def test_the_rendered_settings_are_what_the_gateway_and_the_operator_parse(
    helm: helm.Helm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chart and the two settings models agree on names and spellings (issue 11 contract)."""
    from realm_operator.settings import OperatorSettings

    from gateway.settings import Settings

    documents = _render(helm, *_platform_values())
    for component in ("gateway", "operator"):
        for name, value in _environment(documents, component).items():
            if isinstance(value, tuple):  # a Secret's key: any value long enough
                value = f"{name.lower()}-{'x' * 32}"
            monkeypatch.setenv(name, value)
    gateway = Settings()  # type: ignore[call-arg]  # from the environment
    assert [(c.name, c.role, c.token_sha256) for c in gateway.admin_clients] == [
        ("audit", "reader", DIGEST),
        ("ops-team", "platform", "b" * 64),
    ]
    assert gateway.operator_token is not None
    assert gateway.level_ceiling == "loa1"
    assert gateway.region_level_ceilings == {"zj": "loa3", "xz": "loa2"}
    operator = OperatorSettings()  # type: ignore[call-arg]  # from the environment
    dumped = operator.model_dump(mode="json")
    assert dumped["level_ceiling"] == "loa1"
    assert dumped["region_level_ceilings"] == {"zj": "loa3", "xz": "loa2"}
    grants = dumped["keycloaks"]
    assert [g["credentials_secret"] for g in grants] == [
        {"namespace": "platform", "name": "kc-admin"},
        {"namespace": "platform", "name": "kc-admin-sh"},
        {"namespace": "tongxing", "name": "keycloak-admin"},
    ]
    assert [g["admin_realm"] for g in grants] == ["master", "ops", "master"]
    assert [g["namespaces"] for g in grants] == [["regions"], ["*"], ["*"]]


def test_granted_keycloak_secrets_are_readable_by_name_and_nothing_else(helm: helm.Helm) -> None:
    documents = _render(helm, *_platform_values())
    granted = {"platform": ["kc-admin", "kc-admin-sh"], "tongxing": ["keycloak-admin"]}
    credentials = [d for d in documents if d["metadata"]["name"].endswith("-credentials")]
    assert {(d["kind"], d["metadata"]["namespace"]) for d in credentials} == {
        (kind, namespace) for kind in ("Role", "RoleBinding") for namespace in granted
    }
    for namespace, names in granted.items():
        role = _one(documents, "Role", "tx-tongxing-operator-credentials", namespace)
        assert role["rules"] == [
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": names, "verbs": ["get"]}
        ]
        binding = _one(documents, "RoleBinding", "tx-tongxing-operator-credentials", namespace)
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "tx-tongxing-operator-credentials",
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "tx-tongxing-operator", "namespace": "tongxing"}
        ]
    # The watched namespaces: Secrets only for the Portals' credentials, never listed.
    for namespace in ("regions", "portals"):
        rules = _one(documents, "Role", "tx-tongxing-operator", namespace)["rules"]
        (secrets,) = [r for r in rules if "secrets" in r["resources"]]
        assert secrets == {
            "apiGroups": [""],
            "resources": ["secrets"],
            "verbs": ["get", "create", "patch", "delete"],
        }
    # Watching every namespace: the same rules cluster-wide, the credential Roles unchanged.
    everywhere = _render(
        helm,
        *[v for v in _platform_values() if not v.startswith("--set=operator.watch")],
        "--set=operator.watch.allNamespaces=true",
    )
    cluster_role = _one(everywhere, "ClusterRole", "tx-tongxing-operator")
    (secrets,) = [r for r in cluster_role["rules"] if "secrets" in r["resources"]]
    assert secrets["verbs"] == ["get", "create", "patch", "delete"]
    assert [
        (d["kind"], d["metadata"]["namespace"])
        for d in everywhere
        if d["metadata"]["name"].endswith("-credentials")
    ] == [(k, n) for k in ("Role", "RoleBinding") for n in sorted(granted)]


def test_the_operator_reaches_dns_the_api_server_its_gateway_and_granted_keycloaks_only(
    helm: helm.Helm,
) -> None:
    keycloak = [{"to": [{"ipBlock": {"cidr": "10.9.0.0/16"}}], "ports": [{"port": 8080}]}]
    extra = [{"to": [{"ipBlock": {"cidr": "169.254.20.10/32"}}], "ports": [{"port": 53}]}]
    documents = _render(
        helm,
        "--set-json=operator.networkPolicy.egress.apiServer="
        '[{"ipBlock":{"cidr":"192.0.2.1/32"}},{"ipBlock":{"cidr":"192.0.2.2/32"}}]',
        "--set-json=operator.networkPolicy.egress.apiServerPorts=[443,8443]",
        f"--set-json=operator.networkPolicy.egress.keycloak={json.dumps(keycloak)}",
        f"--set-json=operator.networkPolicy.egress.extra={json.dumps(extra)}",
    )
    spec = _one(documents, "NetworkPolicy", "tx-tongxing-operator")["spec"]
    assert spec["podSelector"] == {"matchLabels": OPERATOR_LABELS}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == []  # nothing reaches the operator
    dns, api_server, gateway, *rest = spec["egress"]
    assert dns == {
        "to": [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                },
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ],
        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
    }
    assert api_server == {
        "to": [{"ipBlock": {"cidr": "192.0.2.1/32"}}, {"ipBlock": {"cidr": "192.0.2.2/32"}}],
        "ports": [{"port": 443, "protocol": "TCP"}, {"port": 8443, "protocol": "TCP"}],
    }
    # This release's gateway pods (the policy's own namespace), on the container's port.
    assert gateway == {
        "to": [{"podSelector": {"matchLabels": GATEWAY_LABELS}}],
        "ports": [{"port": 8080, "protocol": "TCP"}],
    }
    deployment = _one(documents, "Deployment", "tx-tongxing-gateway")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["ports"][0]["containerPort"] == 8080
    assert rest == keycloak + extra

    defaults = _one(_render(helm), "NetworkPolicy", "tx-tongxing-operator")["spec"]["egress"]
    assert defaults[1] == {
        "to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}],
        "ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}],
    }
    assert len(defaults) == 3  # no Keycloak allowed until the platform says which


def test_the_operators_egress_can_be_left_open_but_never_its_ingress(helm: helm.Helm) -> None:
    done = _template(helm, "-f", str(MINIMAL), "--set=operator.networkPolicy.egress.enabled=false")
    assert done.returncode == 0, done.stderr  # no addresses needed
    documents = [d for d in yaml.safe_load_all(done.stdout) if d]
    spec = _one(documents, "NetworkPolicy", "tx-tongxing-operator")["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    assert spec["ingress"] == []
    assert "egress" not in spec
    done = _template(helm, "-f", str(MINIMAL), "--set=operator.networkPolicy.enabled=false")
    assert done.returncode == 0, done.stderr


def test_without_the_api_servers_addresses_helm_template_fails_naming_the_value(
    helm: helm.Helm,
) -> None:
    message = _refused(helm, api_server=False)
    assert "operator.networkPolicy.egress.apiServer: without a cluster to ask" in message
    assert "kubectl get endpoints kubernetes -n default" in message
    assert "operator.networkPolicy.egress.enabled=false" in message
    # A value missing elsewhere is named first, whichever template helm renders first.
    message = _refused(helm, "--set=gateway.replicas=2", api_server=False)
    assert "gateway: 2 replicas cannot share SQLite" in message
    # helm lint renders the same way (and reports a template's fail as an INFO "Fail:").
    done = helm.run("lint", "--strict", str(CHART), "-f", str(MINIMAL))
    assert "Fail: operator.networkPolicy.egress.apiServer" in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            [
                "--set-json=gateway.adminClients="
                f'[{{"name":"audit","role":"reader","tokenSha256":"{DIGEST}"}},'
                f'{{"name":"audit","role":"platform","tokenSha256":"{"b" * 64}"}}]'
            ],
            'gateway.adminClients: the name "audit" appears twice',
        ),
        (
            [
                "--set-json=gateway.adminClients="
                f'[{{"name":"audit","role":"reader","tokenSha256":"{DIGEST}"}},'
                f'{{"name":"ops","role":"platform","tokenSha256":"{DIGEST.upper()}"}}]'
            ],
            "gateway.adminClients: ops has the tokenSha256 of another client",
        ),
        (
            [
                "--set-json=operator.keycloaks="
                '[{"url":"http://kc:8080","credentialsSecret":{"name":"a"}},'
                '{"url":"http://KC:8080/","credentialsSecret":{"name":"b"}}]'
            ],
            "operator.keycloaks[1].url: http://KC:8080/ is granted twice",
        ),
        (
            [
                "--set-json=operator.keycloaks="
                '[{"url":"http://kc:8080","credentialsSecret":{"name":"a"},'
                '"namespaces":["tongxing","regions"]}]'
            ],
            "operator.keycloaks[0].namespaces: regions is not a namespace the operator watches",
        ),
    ],
    ids=["client-name-twice", "client-token-twice", "keycloak-twice", "unwatched-namespace"],
)
def test_platform_settings_that_cannot_work_fail_with_what_to_set(
    helm: helm.Helm, values: list[str], expected: str
) -> None:
    assert expected in _refused(helm, *values)


def test_keycloak_urls_differing_in_their_paths_case_are_two_grants(helm: helm.Helm) -> None:
    grants = [
        {"url": "http://kc:8080/Auth", "credentialsSecret": {"name": "a"}},
        {"url": "http://kc:8080/auth", "credentialsSecret": {"name": "b"}},
    ]
    documents = _render(helm, f"--set-json=operator.keycloaks={json.dumps(grants)}")
    keycloaks = json.loads(_environment(documents, "operator")["TONGXING_OPERATOR_KEYCLOAKS"])
    assert [k["url"] for k in keycloaks] == ["http://kc:8080/Auth", "http://kc:8080/auth"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ("--set=platform.levelCeiling=loa4", "/platform/levelCeiling"),
        ("--set=platform.regionLevelCeilings.zj=loa9", "/platform/regionLevelCeilings/zj"),
        ("--set=platform.regionLevelCeilings.ZJ=loa3", "/platform/regionLevelCeilings"),
        (
            "--set-json=gateway.adminClients="
            f'[{{"name":"platform","role":"reader","tokenSha256":"{DIGEST}"}}]',
            "/gateway/adminClients/0/name",
        ),
        (
            "--set-json=gateway.adminClients="
            f'[{{"name":"audit","role":"admin","tokenSha256":"{DIGEST}"}}]',
            "/gateway/adminClients/0/role",
        ),
        (
            '--set-json=gateway.adminClients=[{"name":"audit","role":"reader","tokenSha256":"x"}]',
            "/gateway/adminClients/0/tokenSha256",
        ),
        (
            '--set-json=gateway.adminClients=[{"name":"audit","role":"reader","token":"x"}]',
            "additional properties 'token' not allowed",
        ),
        # The key names are fixed (username, password): a grant cannot point at another key.
        (
            "--set-json=operator.keycloaks="
            '[{"url":"http://kc:8080","credentialsSecret":{"name":"a","usernameKey":"k"}}]',
            "additional properties 'usernameKey' not allowed",
        ),
        (
            '--set-json=operator.keycloaks=[{"url":"file:///etc/passwd",'
            '"credentialsSecret":{"name":"a"}}]',
            "/operator/keycloaks/0/url",
        ),
        (
            '--set-json=operator.keycloaks=[{"url":"http://kc:8080"}]',
            "missing property 'credentialsSecret'",
        ),
        (
            "--set-json=operator.networkPolicy.egress.apiServerPorts=[70000]",
            "/operator/networkPolicy/egress/apiServerPorts/0",
        ),
        (
            "--set=operator.networkPolicy.egress.apiserver=x",
            "additional properties 'apiserver' not allowed",
        ),
    ],
)
def test_the_schema_refuses_a_bad_platform_value_naming_it(
    helm: helm.Helm, values: str, expected: str
) -> None:
    message = _refused(helm, values)
    assert "values don't meet the specifications of the schema" in message
    assert expected in message


def test_the_production_profile_grants_its_keycloak_from_the_release_namespace(
    helm: helm.Helm,
) -> None:
    done = _template(helm, "-f", str(PRODUCTION))  # names its API server itself
    assert done.returncode == 0, done.stderr
    documents = [d for d in yaml.safe_load_all(done.stdout) if d]
    role = _one(documents, "Role", "tx-tongxing-operator-credentials", "tongxing")
    assert role["rules"][0]["resourceNames"] == ["keycloak-admin"]
    egress = _one(documents, "NetworkPolicy", "tx-tongxing-operator")["spec"]["egress"]
    assert len(egress) == 4  # DNS, API server, gateway, the Keycloak
    operator = _environment(documents, "operator")
    (grant,) = json.loads(operator["TONGXING_OPERATOR_KEYCLOAKS"])
    assert grant["credentials_secret"] == {"namespace": "tongxing", "name": "keycloak-admin"}
    assert json.loads(operator["TONGXING_OPERATOR_REGION_LEVEL_CEILINGS"]) == {"zj": "loa3"}


# --- metrics (issue 14) ---------------------------------------------------------------------

DASHBOARD = CHART / "files" / "dashboards" / "tongxing.json"


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_every_dashboard_query_names_metrics_the_gateway_exposes() -> None:
    from gateway.metrics import exposed_names

    exposed = exposed_names()
    exprs = _dashboard_exprs()
    assert exprs
    for expr in exprs:
        names = set(re.findall(r"\btongxing_[a-z0-9_]+", expr))
        assert names, f"no tongxing metric in {expr!r}"
        assert names <= exposed, f"{sorted(names - exposed)} in {expr!r} do not exist"


def test_every_family_appears_on_the_dashboard() -> None:
    from gateway.metrics import FAMILIES

    text = " ".join(_dashboard_exprs())
    for family in FAMILIES:
        (described,) = family.describe()
        assert described.name in text, f"{described.name} has no panel"


def test_metrics_are_off_by_default_and_scrapers_need_a_peer(helm: helm.Helm) -> None:
    documents = _render(helm)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in documents}
    assert not any(kind == "ServiceMonitor" for kind, _ in kinds)
    assert ("ConfigMap", "tx-tongxing-gateway-dashboard") not in kinds
    policy = _one(documents, "NetworkPolicy", "tx-tongxing-gateway")
    assert len(policy["spec"]["ingress"]) == 1  # the ingress controller and the operator only


def test_the_service_monitor_scrapes_every_gateway_pod_and_prometheus_may_reach_it(
    helm: helm.Helm,
) -> None:
    prometheus = {"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}
    documents = _render(
        helm,
        "--set=metrics.serviceMonitor.enabled=true",
        "--set=metrics.serviceMonitor.labels.release=kps",
        "--set=metrics.dashboard.enabled=true",
        f"--set-json=metrics.networkPolicy.from=[{json.dumps(prometheus)}]",
    )
    monitor = _one(documents, "ServiceMonitor", "tx-tongxing-gateway")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["selector"]["matchLabels"] == GATEWAY_LABELS
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http"
    assert endpoint["path"] == "/metrics"
    service = _one(documents, "Service", "tx-tongxing-gateway")
    assert GATEWAY_LABELS.items() <= service["metadata"]["labels"].items()
    assert any(port["name"] == "http" for port in service["spec"]["ports"])
    policy = _one(documents, "NetworkPolicy", "tx-tongxing-gateway")
    assert {"from": [prometheus], "ports": [{"port": "http", "protocol": "TCP"}]} in policy["spec"][
        "ingress"
    ]
    dashboard = _one(documents, "ConfigMap", "tx-tongxing-gateway-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["tongxing.json"]) == json.loads(DASHBOARD.read_text())


def test_the_ingress_does_not_route_metrics(helm: helm.Helm) -> None:
    documents = _render(
        helm,
        "--set=gateway.ingress.enabled=true",
        "--set=gateway.ingress.host=id.example.gov.cn",
        "--set=gateway.ingress.tls.secretName=tls",
        "--set=metrics.serviceMonitor.enabled=true",
    )
    ingress = _one(documents, "Ingress", "tx-tongxing-gateway")
    paths = [p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert paths
    assert not any("/metrics".startswith(path) for path in paths)
