"""The chart's and the image's files agree with each other and with the operator (no helm run).

helm itself is exercised in tests/e2e/test_chart.py; here: the CRD copies, the values schema's
strictness and its match with values.yaml, the build context and the lock files.
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
        component, _, kind = path.stem.partition("-")
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
