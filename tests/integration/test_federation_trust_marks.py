"""Trust marks the anchor issues on the platform's say-so (OpenID Federation 1.0 §7, §8.4-§8.6).

A real gateway on loopback. The platform issues and revokes marks through the admin API; the
anchor's entity configuration names it in ``trust_mark_issuers`` (§3.1.1); a mark is validated
outside the gateway by ``tests/peers/federation.mjs`` (the anchor's configuration fetched and
verified by ``@openid-federation/core``, the mark's signature, ``typ`` and ``iss`` by ``jose``);
the status endpoint (§8.4) answers ``active``, ``revoked`` at once after a revocation,
``expired`` and ``invalid`` for a forged mark, each in a signed
``trust-mark-status-response+jwt``.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from gateway_fixtures import RunningGateway, start_gateway
from joserfc import jws, jwt
from joserfc.jwk import ECKey, JWKRegistry
from tongxing_dev.peers import PEERS

NATIONAL = "https://tongxing.gov.cn/trust-marks/registered-national-portal"
DENGBAO = "https://tongxing.gov.cn/trust-marks/dengbao-level-3"
TYPES = {
    NATIONAL: {"ref": "https://tongxing.gov.cn/trust-marks/registered-national-portal.html"},
    DENGBAO: {"lifetime": 365 * 86400, "logo_uri": "https://tongxing.gov.cn/dengbao.svg"},
}
CLIENT_ID = "zj-marked-portal"
ENTITY_ID = "https://zj.example.cn"
MARKS = f"/federation/trust-marks/portal/{CLIENT_ID}"


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    yield from start_gateway(tmp_path, federation_trust_mark_types=TYPES)


@pytest.fixture
def subordinate(gateway: RunningGateway) -> str:
    """A registered portal recorded as a federation subordinate (entity ``ENTITY_ID``)."""
    portal = {
        "names": {"zh": "浙江政务服务网", "en": "Zhejiang services"},
        "owner": "zj",
        "redirect_uris": ["https://zj.example.cn/cb"],
    }
    assert gateway.admin("PUT", f"/portals/{CLIENT_ID}", portal).status_code in (200, 201)
    put_subordinate(gateway, ENTITY_ID)
    return ENTITY_ID


def put_subordinate(gateway: RunningGateway, entity_id: str) -> None:
    key = ECKey.generate_key("P-256")
    jwks = {"keys": [{**key.as_dict(private=False), "kid": key.thumbprint()}]}
    answer = gateway.admin(
        "PUT",
        f"/federation/subordinates/portal/{CLIENT_ID}",
        {"entity_id": entity_id, "jwks": jwks},
    )
    assert answer.status_code == 200, answer.text


def anchor_claims(gateway: RunningGateway) -> dict[str, Any]:
    token = requests.get(f"{gateway.issuer}/.well-known/openid-federation", timeout=10).text
    claims: dict[str, Any] = json.loads(jws.extract_compact(token.encode()).payload)
    return claims


def issue(gateway: RunningGateway, trust_mark_type: str = NATIONAL, **extra: Any) -> Any:
    return gateway.admin("PUT", MARKS, {"trust_mark_type": trust_mark_type, **extra})


def status(gateway: RunningGateway, trust_mark: str) -> requests.Response:
    return requests.post(
        f"{gateway.issuer}/federation/trust-mark-status",
        data={"trust_mark": trust_mark},
        timeout=10,
    )


def status_of(gateway: RunningGateway, trust_mark: str) -> str:
    """The ``status`` of a signed status response (§8.4.2), its signature checked with the
    anchor's federation keys and its ``typ``, ``iss`` and ``trust_mark`` checked."""
    answer = status(gateway, trust_mark)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "application/trust-mark-status-response+jwt"
    header = jws.extract_compact(answer.text.encode()).headers()
    assert header["typ"] == "trust-mark-status-response+jwt"
    keys = anchor_claims(gateway)["jwks"]["keys"]
    key = next(key for key in keys if key["kid"] == header["kid"])
    claims = jwt.decode(answer.text, JWKRegistry.import_key(key)).claims
    assert claims["iss"] == gateway.issuer
    assert claims["trust_mark"] == trust_mark
    assert isinstance(claims["iat"], int)
    result: str = claims["status"]
    return result


def validate_externally(gateway: RunningGateway, trust_mark: str) -> dict[str, Any]:
    done = subprocess.run(
        ["node", str(PEERS / "federation.mjs"), "trust-mark", gateway.issuer, trust_mark],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=PEERS,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# --- §3.1.1, §5.1.1: what the anchor publishes ----------------------------------------------------


def test_the_entity_configuration_names_the_anchor_issuer_of_each_type(
    gateway: RunningGateway,
) -> None:
    claims = anchor_claims(gateway)
    assert claims["trust_mark_issuers"] == {NATIONAL: [gateway.issuer], DENGBAO: [gateway.issuer]}
    federation_entity = claims["metadata"]["federation_entity"]
    assert federation_entity["federation_trust_mark_status_endpoint"] == (
        f"{gateway.issuer}/federation/trust-mark-status"
    )
    assert federation_entity["federation_trust_mark_list_endpoint"] == (
        f"{gateway.issuer}/federation/trust-mark-list"
    )
    assert federation_entity["federation_trust_mark_endpoint"] == (
        f"{gateway.issuer}/federation/trust-mark"
    )


def test_without_types_nothing_about_trust_marks_is_published(tmp_path: Path) -> None:
    for plain in start_gateway(tmp_path):
        claims = anchor_claims(plain)
        assert "trust_mark_issuers" not in claims
        assert (
            "federation_trust_mark_status_endpoint" not in (claims["metadata"]["federation_entity"])
        )


# --- the platform's say-so (admin API) ------------------------------------------------------------


def test_only_the_platform_issues_and_revokes_and_bad_requests_are_refused(
    gateway: RunningGateway, subordinate: str
) -> None:
    body = {"trust_mark_type": NATIONAL}
    assert gateway.admin_as(gateway.operator_token, "PUT", MARKS, body).status_code == 403
    assert gateway.admin_as("x" * 40, "PUT", MARKS, body).status_code == 401
    refused = issue(gateway, "https://tongxing.gov.cn/trust-marks/unknown")
    assert refused.status_code == 400
    assert [field["field"] for field in refused.json()["fields"]] == ["trust_mark_type"]
    refused = issue(gateway, expires_at="2020-01-01T00:00:00+00:00")
    assert [field["field"] for field in refused.json()["fields"]] == ["expires_at"]
    refused = issue(gateway, expires_at="2999-01-01T00:00:00")  # no time zone
    assert [field["field"] for field in refused.json()["fields"]] == ["expires_at"]
    unrecorded = gateway.admin(
        "PUT", "/federation/trust-marks/portal/nobody", {"trust_mark_type": NATIONAL}
    )
    assert unrecorded.status_code == 400

    issued = issue(gateway)
    assert issued.status_code == 201, issued.text
    again = issue(gateway)
    assert again.status_code == 200  # idempotent: the active mark is kept
    assert again.json()["jti"] == issued.json()["jti"]
    listed = gateway.admin_as(gateway.operator_token, "GET", MARKS)  # every role reads
    assert [item["status"] for item in listed.json()["items"]] == ["active"]

    delete = f"{MARKS}?trust_mark_type={NATIONAL}"
    assert gateway.admin_as(gateway.operator_token, "DELETE", delete).status_code == 403
    assert gateway.admin("DELETE", delete).status_code == 204
    assert gateway.admin("DELETE", delete).status_code == 404  # nothing left to revoke
    assert [item["status"] for item in gateway.admin("GET", MARKS).json()["items"]] == ["revoked"]
    audited = [
        record.entry.details
        for record in gateway.services.store.list_audit()
        if record.entry.details.get("target_kind") == "federation_trust_mark"
    ]
    assert [details.get("action") for details in audited] == ["issue", "revoke"], audited


# --- §7: the mark, validated by an implementation nobody here wrote -------------------------------


def test_an_issued_mark_is_validated_with_the_anchors_federation_keys(
    gateway: RunningGateway, subordinate: str
) -> None:
    issued = issue(gateway, DENGBAO)
    assert issued.status_code == 201
    mark = issued.json()["trust_mark"]
    header = jws.extract_compact(mark.encode()).headers()
    assert header["typ"] == "trust-mark+jwt"
    federation_kids = {key["kid"] for key in anchor_claims(gateway)["jwks"]["keys"]}
    assert header["kid"] in federation_kids
    token_kids = {
        key["kid"] for key in requests.get(f"{gateway.issuer}/jwks", timeout=10).json()["keys"]
    }
    assert header["kid"] not in token_kids  # federation keys, never the token keys

    result = validate_externally(gateway, mark)
    assert result["valid"], result
    claims = result["claims"]
    assert claims["iss"] == gateway.issuer
    assert claims["sub"] == subordinate
    assert claims["trust_mark_type"] == DENGBAO
    assert claims["logo_uri"] == "https://tongxing.gov.cn/dengbao.svg"
    assert claims["exp"] - claims["iat"] == 365 * 86400  # the type's lifetime

    forged = forge(gateway, subordinate)
    assert not validate_externally(gateway, forged)["valid"]


def forge(gateway: RunningGateway, sub: str) -> str:
    """A mark claiming the anchor's kid, signed by a key the anchor never had."""
    kid = anchor_claims(gateway)["jwks"]["keys"][0]["kid"]
    now = int(time.time())
    claims = {"iss": gateway.issuer, "sub": sub, "trust_mark_type": NATIONAL, "iat": now}
    return jwt.encode(
        {"alg": "ES256", "kid": kid, "typ": "trust-mark+jwt"}, claims, ECKey.generate_key("P-256")
    )


# --- §8.4: the status endpoint --------------------------------------------------------------------


def test_the_status_is_active_then_revoked_at_once(
    gateway: RunningGateway, subordinate: str
) -> None:
    mark = issue(gateway).json()["trust_mark"]
    assert status_of(gateway, mark) == "active"
    assert gateway.admin("DELETE", f"{MARKS}?trust_mark_type={NATIONAL}").status_code == 204
    assert status_of(gateway, mark) == "revoked"  # no cache between the revocation and §8.4
    fresh = issue(gateway)
    assert fresh.status_code == 201  # issuing again makes a new mark; the old one stays revoked
    assert status_of(gateway, fresh.json()["trust_mark"]) == "active"
    assert status_of(gateway, mark) == "revoked"


def test_an_expired_mark_answers_expired(gateway: RunningGateway, subordinate: str) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    mark = issue(gateway, expires_at=soon).json()["trust_mark"]
    assert status_of(gateway, mark) == "active"
    time.sleep(3)
    assert status_of(gateway, mark) == "expired"


def test_a_forged_or_altered_mark_answers_invalid(
    gateway: RunningGateway, subordinate: str
) -> None:
    assert status_of(gateway, forge(gateway, subordinate)) == "invalid"
    mark = issue(gateway).json()["trust_mark"]
    header, payload, signature = mark.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    altered = json.dumps({**claims, "trust_mark_type": DENGBAO}).encode()
    tampered = ".".join(
        [header, base64.urlsafe_b64encode(altered).rstrip(b"=").decode(), signature]
    )
    assert status_of(gateway, tampered) == "invalid"
    wrong_typ = gateway.services.federation.keys.sign(claims, typ="entity-statement+jwt")  # type: ignore[union-attr]
    assert status_of(gateway, wrong_typ) == "invalid"
    not_a_jwt = status(gateway, "not-a-jwt")
    assert not_a_jwt.status_code == 400
    assert not_a_jwt.json()["error"] == "invalid_request"
    missing = requests.post(f"{gateway.issuer}/federation/trust-mark-status", timeout=10)
    assert missing.status_code == 400


def test_a_mark_of_an_entity_id_the_subordinate_left_answers_revoked(
    gateway: RunningGateway, subordinate: str
) -> None:
    mark = issue(gateway).json()["trust_mark"]
    put_subordinate(gateway, "https://zj2.example.cn")
    assert status_of(gateway, mark) == "revoked"


# --- §8.5, §8.6, §8.2.1: the marked entities ------------------------------------------------------


def test_the_trust_mark_and_listing_endpoints_follow_revocation(
    gateway: RunningGateway, subordinate: str
) -> None:
    issue(gateway)
    base = gateway.issuer
    answer = requests.get(
        f"{base}/federation/trust-mark",
        params={"trust_mark_type": NATIONAL, "sub": subordinate},
        timeout=10,
    )
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/trust-mark+jwt"
    assert validate_externally(gateway, answer.text)["valid"]
    assert status_of(gateway, answer.text) == "active"

    def marked(**params: str) -> Any:
        return requests.get(f"{base}/federation/trust-mark-list", params=params, timeout=10)

    def subordinates(**params: str) -> Any:
        return requests.get(f"{base}/federation/list", params=params, timeout=10).json()

    assert marked(trust_mark_type=NATIONAL).json() == [subordinate]
    assert marked(trust_mark_type=NATIONAL, sub=subordinate).json() == [subordinate]
    assert marked(trust_mark_type=NATIONAL, sub="https://other.example.cn").json() == []
    assert marked(trust_mark_type=DENGBAO).json() == []
    assert marked().status_code == 400  # trust_mark_type is required (§8.5.1)
    assert subordinates(trust_marked="true") == [subordinate]
    assert subordinates(trust_mark_type=NATIONAL) == [subordinate]
    assert subordinates(trust_mark_type=DENGBAO) == []
    assert subordinates(trust_marked="false") == [subordinate]

    assert gateway.admin("DELETE", f"{MARKS}?trust_mark_type={NATIONAL}").status_code == 204
    gone = requests.get(
        f"{base}/federation/trust-mark",
        params={"trust_mark_type": NATIONAL, "sub": subordinate},
        timeout=10,
    )
    assert gone.status_code == 404
    assert gone.json()["error"] == "not_found"
    assert marked(trust_mark_type=NATIONAL).json() == []
    assert subordinates(trust_marked="true") == []
