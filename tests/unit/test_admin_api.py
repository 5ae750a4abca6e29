"""The admin API over a real SQLite store, through Flask's test client (no sockets).

THREAT_MODEL rows 1 and 2 at the admin API: roles, owners of registrations, level ceilings.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from gateway.app import create_app
from gateway.policy import default_policy_dir
from gateway.services import Services, build_services
from gateway.settings import Settings
from gateway.store import RegistryKind

TOKEN = secrets.token_urlsafe(32)
OPERATOR = secrets.token_urlsafe(32)
READER = secrets.token_urlsafe(32)
AUDITOR = secrets.token_urlsafe(32)  # a second platform principal, from admin_clients
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
OWNER = {"kind": "Portal", "namespace": "zj-gov", "name": "portal", "uid": "uid-owner-1"}
INTRUDER = {"kind": "Portal", "namespace": "tenant", "name": "portal", "uid": "uid-intruder"}
ZJ_REGION = {"kind": "Region", "namespace": "zj-gov", "name": "zj", "uid": "uid-zj-1"}


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "policies"
    shutil.copytree(default_policy_dir(), folder)
    return folder


@pytest.fixture
def services(tmp_path: Path, policy_dir: Path) -> Iterator[Services]:
    settings = Settings.model_validate(
        {
            "policy_dir": policy_dir,
            "issuer": "https://tongxing.example.cn",
            "data_dir": tmp_path,
            "create_keys": True,
            "national_secret": secrets.token_urlsafe(32),
            "pairwise_secret": secrets.token_urlsafe(32),
            "admin_token": TOKEN,
            "operator_token": OPERATOR,
            "admin_clients": [
                {"name": "audit", "role": "reader", "token_sha256": _sha256(READER)},
                {"name": "ops-desk", "role": "platform", "token_sha256": _sha256(AUDITOR)},
            ],
            "region_level_ceilings": {"bj": "loa3", "sh": "loa1"},
            "session_secret": secrets.token_urlsafe(32),
            "mfa_secret": secrets.token_urlsafe(32),
        }
    )
    built = build_services(settings)
    yield built
    built.close()


@pytest.fixture
def client(services: Services) -> FlaskClient:
    return create_app(services=services).test_client()


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def stored(services: Services, kind: RegistryKind, key: str) -> Any:
    """The row as the store holds it (document, revision, times): compared whole."""
    return services.store.get_document(kind, key)


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


def test_a_pairwise_portal_on_several_hosts_is_refused_on_its_redirect_uris(
    client: FlaskClient,
) -> None:
    """OIDC Core §8.1: the sector is the redirect URIs' host; a portal listing another portal's
    host beside its own would receive that portal's pairwise subjects."""
    uris = ["https://portal.zj.example.cn/callback", "https://thief.example.cn/callback"]
    body = {**PORTAL, "subject_type": "pairwise", "redirect_uris": uris}
    response = client.put("/admin/v1/portals/thief", json=body, headers=auth())
    assert response.status_code == 400
    refused = response.get_json()
    assert refused["error"] == "invalid_request"
    assert [f["field"] for f in refused["fields"]] == ["redirect_uris"]
    assert client.get("/admin/v1/portals/thief", headers=auth()).status_code == 404
    one_host = {**body, "redirect_uris": [uris[0], f"{uris[0]}/again"]}
    assert client.put("/admin/v1/portals/thief", json=one_host, headers=auth()).status_code == 201
    public = {**PORTAL, "redirect_uris": uris}
    assert client.put("/admin/v1/portals/public", json=public, headers=auth()).status_code == 201


def test_an_auth_method_that_is_not_a_string_gets_a_field_message_not_a_500(
    client: FlaskClient,
) -> None:
    bad = {**PORTAL, "token_endpoint_auth_method": ["client_secret_basic"]}
    response = client.put("/admin/v1/portals/zj-services", json=bad, headers=auth())
    assert response.status_code == 400
    assert [f["field"] for f in response.get_json()["fields"]] == ["token_endpoint_auth_method"]


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


# --- principals and roles ---------------------------------------------------------------------


def test_an_unknown_token_is_401_with_a_bearer_challenge(client: FlaskClient) -> None:
    unknown = client.get("/admin/v1/regions", headers=auth(secrets.token_urlsafe(32)))
    assert unknown.status_code == 401
    assert unknown.get_json()["error"] == "invalid_token"
    assert (
        unknown.headers["WWW-Authenticate"]
        == 'Bearer realm="tongxing-admin", error="invalid_token"'
    )
    bare = client.get("/admin/v1/regions")
    assert bare.headers["WWW-Authenticate"] == 'Bearer realm="tongxing-admin"'
    # The hash of a configured token is not a token.
    assert client.get("/admin/v1/regions", headers=auth(_sha256(READER))).status_code == 401
    assert client.get("/admin/v1/regions", headers=auth(f"{TOKEN} ")).status_code == 401


def test_an_admin_client_is_known_by_the_sha256_of_its_token(client: FlaskClient) -> None:
    assert client.get("/admin/v1/regions", headers=auth(READER)).status_code == 200
    created = client.put("/admin/v1/regions/zj", json=REGION, headers=auth(AUDITOR))
    assert created.status_code == 201
    assert created.get_json()["managed_by"]["principal"] == "ops-desk"


def test_a_reader_reads_everything_and_changes_nothing(
    client: FlaskClient, services: Services
) -> None:
    client.put("/admin/v1/regions/zj", json=REGION, headers=auth())
    before = stored(services, RegistryKind.REGION, "zj")
    assert client.get("/admin/v1/regions/zj", headers=auth(READER)).status_code == 200
    assert client.get("/admin/v1/policies", headers=auth(READER)).status_code == 200
    for method, path, body in [
        ("PUT", "/admin/v1/regions/zj", {**REGION, "client_secret": "replaced-by-a-reader"}),
        ("DELETE", "/admin/v1/regions/zj", None),
        ("PUT", "/admin/v1/portals/zj-portal", PORTAL),
        ("POST", "/admin/v1/policies/reload", None),
    ]:
        refused = client.open(path, method=method, json=body, headers=auth(READER))
        assert refused.status_code == 403, (method, path)
        assert refused.get_json()["error"] == "insufficient_scope"
        assert refused.headers["WWW-Authenticate"] == (
            'Bearer realm="tongxing-admin", error="insufficient_scope"'
        )
    assert stored(services, RegistryKind.REGION, "zj") == before
    assert stored(services, RegistryKind.PORTAL, "zj-portal") is None


def test_the_operator_may_neither_read_nor_reload_the_policies(
    client: FlaskClient, services: Services
) -> None:
    active = services.policy.info
    reload = client.post("/admin/v1/policies/reload", headers=auth(OPERATOR))
    assert reload.status_code == 403
    assert reload.get_json()["error"] == "insufficient_scope"
    assert services.policy.info is active  # not even reloaded to the same set
    assert client.get("/admin/v1/policies", headers=auth(OPERATOR)).status_code == 403


def test_every_operation_admits_exactly_the_roles_the_openapi_document_lists(
    client: FlaskClient,
) -> None:
    document = client.get("/admin/v1/openapi.json").get_json()
    assert {"platform", "operator", "reader"} <= set(document["info"]["description"].split("`"))
    tokens = {"platform": TOKEN, "operator": OPERATOR, "reader": READER}
    checked = 0
    for path, item in document["paths"].items():
        url = "/admin/v1" + path.replace("{code}", "nowhere").replace("{client_id}", "nobody")
        for method, operation in item.items():
            if method == "parameters":
                continue
            assert set(operation["x-roles"]) <= set(tokens), path
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
            for role, token in tokens.items():
                answer = client.open(url, method=method.upper(), json={}, headers=auth(token))
                refused = answer.status_code == 403
                assert refused is (role not in operation["x-roles"]), (role, method, path)
                checked += 1
    assert checked == 12 * 3
    writes = [document["paths"]["/portals/{client_id}"][m] for m in ("put", "delete")]
    assert all("409" in operation["responses"] for operation in writes)


# --- owners of registrations ------------------------------------------------------------------


def operator_put(
    client: FlaskClient, kind: str, key: str, body: dict[str, Any], owner: dict[str, str]
) -> Any:
    return client.put(
        f"/admin/v1/{kind}/{key}", json={**body, "managed_by": owner}, headers=auth(OPERATOR)
    )


def test_an_operator_must_name_the_resource_it_writes_for(
    client: FlaskClient, services: Services
) -> None:
    bare = client.put("/admin/v1/portals/zj-portal", json=PORTAL, headers=auth(OPERATOR))
    assert bare.status_code == 400
    assert [f["field"] for f in bare.get_json()["fields"]] == ["managed_by"]
    partial = operator_put(client, "portals", "zj-portal", PORTAL, {"kind": "Portal"})
    assert partial.status_code == 400
    message = partial.get_json()["fields"][0]["message"]
    assert "namespace" in message
    assert "uid" in message
    assert "kind" not in message
    bad = operator_put(client, "portals", "zj-portal", PORTAL, {**OWNER, "kind": "Secret"})
    assert bad.status_code == 400
    assert [f["field"] for f in bad.get_json()["fields"]] == ["managed_by.kind"]
    assert stored(services, RegistryKind.PORTAL, "zj-portal") is None


def test_the_principal_is_the_callers_whatever_the_body_says(
    client: FlaskClient, services: Services
) -> None:
    claimed = {**OWNER, "principal": "platform"}
    created = operator_put(client, "portals", "zj-portal", PORTAL, claimed)
    assert created.status_code == 201
    assert created.get_json()["managed_by"] == {**OWNER, "principal": "operator"}
    document = stored(services, RegistryKind.PORTAL, "zj-portal").document
    assert document["managed_by"]["principal"] == "operator"
    # So the platform's own token does not own it either:
    taken = client.put("/admin/v1/portals/zj-portal", json=PORTAL, headers=auth())
    assert taken.status_code == 409
    by_platform = client.put(
        "/admin/v1/regions/zj",
        json={**REGION, "managed_by": {"principal": "operator"}},
        headers=auth(),
    )
    assert by_platform.get_json()["managed_by"]["principal"] == "platform"


def test_a_portal_claiming_another_resources_client_id_gets_409_and_changes_nothing(
    client: FlaskClient, services: Services
) -> None:
    created = operator_put(client, "portals", "zj-portal", PORTAL, OWNER)
    assert created.status_code == 201
    secret = created.get_json()["client_secret"]
    before = stored(services, RegistryKind.PORTAL, "zj-portal")
    attack = {
        **PORTAL,
        "redirect_uris": ["https://intruder.example/cb"],
        "client_secret": "i" * 40,
    }
    taken = operator_put(client, "portals", "zj-portal", attack, INTRUDER)
    assert taken.status_code == 409
    body = taken.get_json()
    assert body["error"] == "registration_taken"
    assert body["fields"] == [
        {"field": "client_id", "message": "portal zj-portal is managed by another owner"}
    ]
    text = taken.get_data(as_text=True)
    assert not [word for word in ("zj-gov", "uid-owner-1", "operator") if word in text]
    after = stored(services, RegistryKind.PORTAL, "zj-portal")
    assert after == before  # document, revision and times
    portal = services.registry.portal("zj-portal")
    assert portal is not None
    assert portal.check_secret(secret)
    assert not portal.check_secret("i" * 40)


def test_a_region_claiming_another_resources_code_gets_409_and_changes_nothing(
    client: FlaskClient, services: Services
) -> None:
    assert operator_put(client, "regions", "zj", REGION, ZJ_REGION).status_code == 201
    before = stored(services, RegistryKind.REGION, "zj")
    impostor = {**ZJ_REGION, "namespace": "tenant", "uid": "uid-impostor"}
    attack = {**REGION, "issuer": "https://evil.example/realms/zj", "client_secret": "mine"}
    taken = operator_put(client, "regions", "zj", attack, impostor)
    assert taken.status_code == 409
    assert taken.get_json()["fields"] == [
        {"field": "code", "message": "region zj is managed by another owner"}
    ]
    after = stored(services, RegistryKind.REGION, "zj")
    assert after == before
    assert after.document["issuer"] == REGION["issuer"]
    region = services.registry.region("zj")
    assert region is not None
    assert region.client_secret.get_secret_value() == REGION["client_secret"]


def test_a_resource_recreated_under_the_same_name_takes_its_registration_over(
    client: FlaskClient, services: Services
) -> None:
    created = operator_put(client, "portals", "zj-portal", PORTAL, OWNER)
    secret = created.get_json()["client_secret"]
    recreated = {**OWNER, "uid": "uid-owner-2"}
    replaced = operator_put(client, "portals", "zj-portal", PORTAL, recreated)
    assert replaced.status_code == 200
    assert "client_secret" not in replaced.get_json()  # the secret is kept, not shown again
    row = stored(services, RegistryKind.PORTAL, "zj-portal")
    assert row.document["managed_by"] == {**recreated, "principal": "operator"}
    assert row.revision == 2
    portal = services.registry.portal("zj-portal")
    assert portal is not None
    assert portal.check_secret(secret)


def test_the_platform_replaces_its_own_and_ownerless_registrations_only(
    client: FlaskClient, services: Services
) -> None:
    # Registered before owners existed: no managed_by.
    legacy = {**REGION, "code": "sh"}
    services.store.put_document(RegistryKind.REGION, "sh", legacy, datetime.now(UTC))
    by_operator = operator_put(client, "regions", "sh", REGION, {**ZJ_REGION, "name": "sh"})
    assert by_operator.status_code == 409
    assert stored(services, RegistryKind.REGION, "sh").revision == 1
    adopted = client.put("/admin/v1/regions/sh", json=REGION, headers=auth())
    assert adopted.status_code == 200
    assert adopted.get_json()["managed_by"]["principal"] == "platform"

    assert operator_put(client, "regions", "zj", REGION, ZJ_REGION).status_code == 201
    before = stored(services, RegistryKind.REGION, "zj")
    assert client.put("/admin/v1/regions/zj", json=REGION, headers=auth()).status_code == 409
    assert client.put("/admin/v1/regions/zj", json=REGION, headers=auth(AUDITOR)).status_code == 409
    assert stored(services, RegistryKind.REGION, "zj") == before


def test_a_platform_edit_by_hand_keeps_the_recorded_owner(client: FlaskClient) -> None:
    # The operator ran with the platform token once: the platform may still edit that by hand.
    first = client.put(
        "/admin/v1/regions/zj", json={**REGION, "managed_by": ZJ_REGION}, headers=auth()
    )
    assert first.status_code == 201
    edited = client.put("/admin/v1/regions/zj", json={**REGION, "enabled": False}, headers=auth())
    assert edited.status_code == 200
    assert edited.get_json()["managed_by"] == {**ZJ_REGION, "principal": "platform"}


def test_an_operator_sees_only_the_registrations_it_manages(client: FlaskClient) -> None:
    client.put("/admin/v1/portals/platform-portal", json=PORTAL, headers=auth())
    operator_put(client, "portals", "zj-portal", PORTAL, OWNER)
    listed = client.get("/admin/v1/portals", headers=auth(OPERATOR)).get_json()
    assert [p["client_id"] for p in listed] == ["zj-portal"]
    everything = client.get("/admin/v1/portals", headers=auth(READER)).get_json()
    assert {p["client_id"] for p in everything} == {"platform-portal", "zj-portal"}

    platforms = client.get("/admin/v1/portals/platform-portal", headers=auth(OPERATOR))
    assert platforms.status_code == 403
    assert platforms.get_json()["error"] == "insufficient_scope"
    assert "redirect_uris" not in platforms.get_json()
    other = client.get("/admin/v1/portals/zj-portal", query_string=INTRUDER, headers=auth(OPERATOR))
    assert other.status_code == 403
    own = client.get("/admin/v1/portals/zj-portal", query_string=OWNER, headers=auth(OPERATOR))
    assert own.status_code == 200
    assert own.get_json()["managed_by"] == {**OWNER, "principal": "operator"}
    missing = client.get("/admin/v1/portals/nobody", query_string=OWNER, headers=auth(OPERATOR))
    assert missing.status_code == 404


def test_an_operator_deletes_only_what_its_resource_manages(
    client: FlaskClient, services: Services
) -> None:
    client.put("/admin/v1/portals/platform-portal", json=PORTAL, headers=auth())
    operator_put(client, "portals", "zj-portal", PORTAL, OWNER)
    platforms = stored(services, RegistryKind.PORTAL, "platform-portal")

    refused = client.delete("/admin/v1/portals/platform-portal", headers=auth(OPERATOR))
    assert refused.status_code == 409
    assert refused.get_json()["error"] == "registration_taken"
    assert stored(services, RegistryKind.PORTAL, "platform-portal") == platforms

    # The loser of a client id goes: the winner's registration stays.
    loser = client.delete(
        "/admin/v1/portals/zj-portal", query_string=INTRUDER, headers=auth(OPERATOR)
    )
    assert loser.status_code == 409
    unnamed = client.delete("/admin/v1/portals/zj-portal", headers=auth(OPERATOR))
    assert unnamed.status_code == 400
    assert [f["field"] for f in unnamed.get_json()["fields"]] == ["managed_by"]
    assert stored(services, RegistryKind.PORTAL, "zj-portal") is not None

    recreated = {**OWNER, "uid": "a-new-uid"}  # the uid is not compared
    owner = client.delete(
        "/admin/v1/portals/zj-portal", query_string=recreated, headers=auth(OPERATOR)
    )
    assert owner.status_code == 204
    assert stored(services, RegistryKind.PORTAL, "zj-portal") is None
    gone = client.delete("/admin/v1/portals/zj-portal", query_string=OWNER, headers=auth(OPERATOR))
    assert gone.status_code == 404


def test_the_platform_deletes_any_registration(client: FlaskClient, services: Services) -> None:
    operator_put(client, "regions", "zj", REGION, ZJ_REGION)
    assert client.delete("/admin/v1/regions/zj", headers=auth()).status_code == 204
    assert stored(services, RegistryKind.REGION, "zj") is None


# --- level ceilings -----------------------------------------------------------------------------


def test_a_mapping_above_the_regions_ceiling_is_refused_field_by_field(
    client: FlaskClient, services: Services
) -> None:
    body = {**REGION, "acr_mapping": {"pwd": "loa1", "otp": "loa2", "cn-face": "loa3"}}
    refused = operator_put(client, "regions", "zj", body, ZJ_REGION)
    assert refused.status_code == 400
    assert refused.get_json()["fields"] == [
        {
            "field": "acr_mapping.cn-face",
            "message": "loa3 is above the ceiling loa2 the platform set for this region",
        }
    ]
    assert client.put("/admin/v1/regions/zj", json=body, headers=auth()).status_code == 400
    assert stored(services, RegistryKind.REGION, "zj") is None
    # Per-region ceilings: bj may vouch for loa3, sh only for loa1.
    assert client.put("/admin/v1/regions/bj", json=body, headers=auth()).status_code == 201
    low = client.put("/admin/v1/regions/sh", json=body, headers=auth())
    assert {f["field"] for f in low.get_json()["fields"]} == {
        "acr_mapping.otp",
        "acr_mapping.cn-face",
    }
