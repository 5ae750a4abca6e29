"""etcd + kube-apiserver built from the Go modules are real: kubectl, the Python client and kopf."""

from __future__ import annotations

import gc
import subprocess
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, cast

import yaml
from kopf.testing import KopfRunner
from kubernetes import client, config
from tongxing_dev.kube import KubeEndpoint

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "smokes.smoke.tongxing.io"},
    "spec": {
        "group": "smoke.tongxing.io",
        "scope": "Namespaced",
        "names": {"plural": "smokes", "singular": "smoke", "kind": "Smoke"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {"name": {"type": "string", "minLength": 1}},
                            },
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                        },
                    }
                },
            }
        ],
    },
}


def kubectl(kube: KubeEndpoint, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["kubectl", f"--kubeconfig={kube.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def custom_objects(kube: KubeEndpoint) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(config.new_client_from_config(config_file=kube.kubeconfig))


def read_smoke(api: client.CustomObjectsApi, name: str) -> dict[str, Any]:
    found = api.get_namespaced_custom_object("smoke.tongxing.io", "v1", "default", "smokes", name)
    return cast(dict[str, Any], found)


def wait_for(read: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = read()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"nothing after {timeout} s")


def test_kubectl_talks_to_the_built_apiserver(kube: KubeEndpoint) -> None:
    version = yaml.safe_load(kubectl(kube, "version", "-o", "yaml"))
    assert version["serverVersion"]["gitVersion"] == kube.version
    assert "ok" in kubectl(kube, "get", "--raw", "/readyz")


def test_a_crd_object_applied_with_kubectl_is_read_and_reconciled_by_kopf(
    kube: KubeEndpoint,
) -> None:
    kubectl(kube, "apply", "-f", "-", stdin=yaml.safe_dump(CRD))
    kubectl(
        kube, "wait", "--for=condition=Established", "crd/smokes.smoke.tongxing.io", "--timeout=30s"
    )
    name = f"smoke-{uuid.uuid4().hex[:6]}"
    api = custom_objects(kube)

    operator = Path(__file__).with_name("smoke_operator.py")
    with KopfRunner(
        ["run", "--standalone", "--namespace=default", str(operator)], timeout=60
    ) as runner:
        kubectl(
            kube,
            "apply",
            "-f",
            "-",
            stdin=yaml.safe_dump(
                {
                    "apiVersion": "smoke.tongxing.io/v1",
                    "kind": "Smoke",
                    "metadata": {"name": name, "namespace": "default"},
                    "spec": {"name": "张三"},
                }
            ),
        )
        assert read_smoke(api, name)["spec"] == {"name": "张三"}
        status = wait_for(lambda: read_smoke(api, name).get("status", {}).get("greeting"))
        kubectl(kube, "delete", "smoke", name, "--wait=true")
    # kopf can leave a keep-alive connection of its finished event loop behind; collect it now,
    # quietly, rather than have it reported against whichever test the collector runs in.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    assert runner.exit_code == 0, runner.output
    assert status == "你好, 张三"


def test_the_apiserver_refuses_an_object_its_schema_rejects(kube: KubeEndpoint) -> None:
    kubectl(kube, "apply", "-f", "-", stdin=yaml.safe_dump(CRD))
    kubectl(
        kube, "wait", "--for=condition=Established", "crd/smokes.smoke.tongxing.io", "--timeout=30s"
    )
    done = subprocess.run(
        ["kubectl", f"--kubeconfig={kube.kubeconfig}", "apply", "-f", "-"],
        input=yaml.safe_dump(
            {
                "apiVersion": "smoke.tongxing.io/v1",
                "kind": "Smoke",
                "metadata": {"name": "empty"},
                "spec": {"name": ""},
            }
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "spec.name" in done.stderr


def test_an_unknown_token_is_refused(kube: KubeEndpoint) -> None:
    done = subprocess.run(
        ["kubectl", f"--kubeconfig={kube.kubeconfig}", "--token=not-a-token", "get", "ns"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "Unauthorized" in done.stderr or "must be logged in" in done.stderr
