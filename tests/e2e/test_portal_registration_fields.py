"""The Portal resource's registration fields of this week on the real API server: whom the
portal serves (``subjectKinds``, issue 16) and whether its logout tokens carry the session's
sid (``backchannelLogoutSessionRequired``, Back-Channel Logout 1.0 §2.2). A field the CRD lacks
is pruned by the API server before the operator sees it: these must come back as sent. The
example manifests are taken as they are."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_fixtures import GROUP, kubectl
from tongxing_dev.kube import KubeEndpoint

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def portal_crd(kube: KubeEndpoint) -> KubeEndpoint:
    kubectl(kube, "apply", "-f", str(REPO / "operator" / "crds" / "portal.yaml"))
    kubectl(kube, "wait", "--for=condition=Established", f"crd/portals.{GROUP}", "--timeout=30s")
    return kube


def dry_run(kube: KubeEndpoint, **spec: Any) -> tuple[int, dict[str, Any], str]:
    document = {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "Portal",
        "metadata": {"name": f"ent-{uuid.uuid4().hex[:6]}", "namespace": "default"},
        "spec": {
            "region": "zj",
            "names": {"zh": "浙江企业服务", "en": "Zhejiang business services"},
            "redirectUris": ["https://qiye.zj.gov.cn/callback"],
            "secretName": "qiye-oidc",
            **spec,
        },
    }
    text = yaml.safe_dump(document, allow_unicode=True)
    done = kubectl(
        kube, "create", "--dry-run=server", "-o", "json", "-f", "-", stdin=text, check=False
    )
    stored = json.loads(done.stdout)["spec"] if done.returncode == 0 else {}
    return done.returncode, stored, done.stderr


@pytest.mark.parametrize("kinds", ["people", "enterprises", "both"])
@pytest.mark.parametrize("required", [True, False])
def test_the_api_server_keeps_subject_kinds_and_session_required(
    portal_crd: KubeEndpoint, kinds: str, required: bool
) -> None:
    code, stored, stderr = dry_run(
        portal_crd,
        subjectKinds=kinds,
        backchannelLogoutUri="https://qiye.zj.gov.cn/backchannel-logout",
        backchannelLogoutSessionRequired=required,
    )
    assert code == 0, stderr
    assert stored["subjectKinds"] == kinds
    assert stored["backchannelLogoutSessionRequired"] is required


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"subjectKinds": "companies"}, "subjectKinds"),
        ({"backchannelLogoutSessionRequired": "maybe"}, "backchannelLogoutSessionRequired"),
    ],
)
def test_the_api_server_refuses_a_bad_value(
    portal_crd: KubeEndpoint, spec: dict[str, Any], message: str
) -> None:
    code, _, stderr = dry_run(portal_crd, **spec)
    assert code != 0
    assert message in stderr, stderr


@pytest.mark.parametrize("name", ["portal-zhejiang-services.yaml", "portal-zheliban-app.yaml"])
def test_the_example_portals_are_taken_as_they_are(portal_crd: KubeEndpoint, name: str) -> None:
    document = yaml.safe_load((REPO / "operator" / "examples" / name).read_text())
    document["metadata"]["namespace"] = "default"
    text = yaml.safe_dump(document, allow_unicode=True)
    done = kubectl(
        portal_crd, "create", "--dry-run=server", "-o", "json", "-f", "-", stdin=text, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["spec"] == document["spec"]
