"""The admin API over a real SQLite store, through Flask's test client (no sockets)."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from gateway.app import create_app
from gateway.policy import default_policy_dir
from gateway.services import build_services
from gateway.settings import Settings

TOKEN = secrets.token_urlsafe(32)
REGION = {
    "names": {"zh": "浙江", "en": "Zhejiang"},
    "kind": "province",
    "issuer": "https://idp.zj.example.cn/realms/zj",
    "client_id": "tongxing",
    "client_secret": "upstream-secret-value",
}
PORTAL = {
    "names": {"zh": "浙江政务服务网", "en": "Zhejiang services"},
    "owner": "zj",
    "redirect_uris": ["https://portal.zj.example.cn/callback"],
}


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "policies"
    shutil.copytree(default_policy_dir(), folder)
    return folder


@pytest.fixture
def client(tmp_path: Path, policy_dir: Path) -> Iterator[FlaskClient]:
    settings = Settings.model_validate(
        {
            "policy_dir": policy_dir,
            "issuer": "https://tongxing.example.cn",
            "data_dir": tmp_path,
            "create_keys": True,
            "national_secret": secrets.token_urlsafe(32),
            "pairwise_secret": secrets.token_urlsafe(32),
            "admin_token": TOKEN,
            "session_secret": secrets.token_urlsafe(32),
            "mfa_secret": secrets.token_urlsafe(32),
        }
    )
    services = build_services(settings)
    yield create_app(services=services).test_client()
    services.close()


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_api_needs_the_admin_token(client: FlaskClient) -> None:
    assert client.get("/admin/v1/regions").status_code == 401
    assert client.get("/admin/v1/regions", headers=auth("wrong")).status_code == 401
    assert client.get("/admin/v1/regions", headers=auth()).status_code == 200


def test_put_creates_then_replaces_and_never_shows_the_upstream_secret(
    client: FlaskClient,
) -> None:
    created = client.put("/admin/v1/regions/zj", json=REGION, headers=auth())
    assert created.status_code == 201
    assert "client_secret" not in created.get_json()
    replaced = client.put("/admin/v1/regions/zj", json=REGION, headers=auth())
    assert replaced.status_code == 200
    listed: list[dict[str, Any]] = client.get("/admin/v1/regions", headers=auth()).get_json()
    assert [r["code"] for r in listed] == ["zj"]


def test_bad_input_gets_field_level_messages(client: FlaskClient) -> None:
    bad = {**REGION, "kind": "planet", "issuer": "javascript:alert(1)"}
    response = client.put("/admin/v1/regions/zj", json=bad, headers=auth())
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid_request"
    assert {f["field"] for f in body["fields"]} == {"kind", "issuer"}
    assert client.get("/admin/v1/regions/zj", headers=auth()).status_code == 404


def test_the_key_in_the_url_must_match_the_body(client: FlaskClient) -> None:
    response = client.put("/admin/v1/regions/zj", json={**REGION, "code": "sh"}, headers=auth())
    assert response.status_code == 400
    assert response.get_json()["fields"][0]["field"] == "code"


def test_a_portal_secret_is_shown_once_and_kept_on_replace(client: FlaskClient) -> None:
    created = client.put("/admin/v1/portals/zj-portal", json=PORTAL, headers=auth())
    assert created.status_code == 201
    secret = created.get_json()["client_secret"]
    assert len(secret) >= 32
    shown = client.get("/admin/v1/portals/zj-portal", headers=auth()).get_json()
    assert "client_secret" not in shown
    assert "client_secret_hash" not in shown
    replaced = client.put("/admin/v1/portals/zj-portal", json=PORTAL, headers=auth())
    assert replaced.status_code == 200
    assert "client_secret" not in replaced.get_json()


def test_delete_answers_204_then_404(client: FlaskClient) -> None:
    client.put("/admin/v1/regions/zj", json=REGION, headers=auth())
    assert client.delete("/admin/v1/regions/zj", headers=auth()).status_code == 204
    assert client.delete("/admin/v1/regions/zj", headers=auth()).status_code == 404


def test_the_openapi_document_is_public_and_describes_both_collections(
    client: FlaskClient,
) -> None:
    document = client.get("/admin/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    assert {"/regions", "/regions/{code}", "/portals", "/portals/{client_id}"} <= set(
        document["paths"]
    )
    assert "client_secret_hash" not in document["components"]["schemas"]["Portal"]["properties"]


def test_discovery_names_every_endpoint_below_the_issuer(client: FlaskClient) -> None:
    response = client.get("/.well-known/openid-configuration")
    metadata = response.get_json()
    assert metadata["issuer"] == "https://tongxing.example.cn"
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert response.headers["Referrer-Policy"] == "no-referrer"
    keys = client.get("/jwks").get_json()["keys"]
    assert {k["alg"] for k in keys} == {"RS256", "ES256"}
    assert not any("d" in k for k in keys)


def test_unknown_pages_are_a_readable_404(client: FlaskClient) -> None:
    response = client.get("/no/such/page", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert "页面不存在" in response.get_data(as_text=True)
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_an_invalid_policy_file_is_refused_and_the_active_set_stays(
    client: FlaskClient, policy_dir: Path
) -> None:
    active = client.get("/admin/v1/policies", headers=auth()).get_json()
    assert active["policy_ids"]
    (policy_dir / "broken.cedar").write_text('@id("broken")\npermit(principal, action, resource')
    refused = client.post("/admin/v1/policies/reload", headers=auth())
    assert refused.status_code == 422
    body = refused.get_json()
    assert body["problems"][0]["file"] == "broken.cedar"
    assert body["active"]["digest"] == active["digest"]
    (policy_dir / "broken.cedar").unlink()
    reloaded = client.post("/admin/v1/policies/reload", headers=auth())
    assert reloaded.status_code == 200
    assert reloaded.get_json()["policy_ids"] == active["policy_ids"]
