"""The trust anchor, exact to OpenID Federation 1.0 Final (issue 17, K19), on loopback.

What test_federation_anchor.py does not cover: the endpoint names the entity configuration
publishes (§5.1.1), the fetch endpoint asked about the anchor itself (§8.1.2), the list
endpoint's parameters (§8.2.1), the resolve response's ``trust_marks`` (§8.3, §8.3.2: only
verified, active marks; ``exp`` not beyond theirs) and repeated ``trust_anchor``, the §8.5 and
§8.4 ``not_found`` answers, and the federation historical keys endpoint (§8.7) across a real
rotation of the federation key file with ``tongxing keys rotate``: checked by
``@openid-federation/core`` and ``jose`` (``tests/peers/federation.mjs historical-keys``).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from gateway_fixtures import RunningGateway, start_gateway
from joserfc import jws, jwt
from joserfc.jwk import ECKey, JWKRegistry
from test_federation_anchor import (  # type: ignore[import-not-found]
    CLIENT_ID,
    POLICY,
    Leaf,
    anchor_configuration,
    resolve_externally,
)
from test_sector_identifier import Tls, _certificates  # type: ignore[import-not-found]
from tongxing_dev.peers import PEERS

from gateway import cli
from gateway.federation.statements import StatementError, verify_statement
from gateway.keys import load_key_ring

NATIONAL = "https://tongxing.gov.cn/trust-marks/registered-national-portal"
DENGBAO = "https://tongxing.gov.cn/trust-marks/dengbao-level-3"
UNKNOWN = "https://tongxing.gov.cn/trust-marks/never-configured"
TYPES = {NATIONAL: {}, DENGBAO: {"lifetime": 900}}  # within the leaf's and the anchor's exp
MARKS = f"/federation/trust-marks/portal/{CLIENT_ID}"


class MarkedLeaf(Leaf):  # type: ignore[misc]
    """A portal whose entity configuration carries ``trust_marks`` (§3.1.2)."""

    def __init__(self, tls: Tls) -> None:
        self.trust_marks: list[dict[str, str]] = []
        super().__init__(tls)

    def entity_configuration(self) -> str:
        token = str(super().entity_configuration())
        if not self.trust_marks:
            return token
        claims = json.loads(jws.extract_compact(token.encode()).payload)
        claims["trust_marks"] = self.trust_marks
        header = jws.extract_compact(token.encode()).headers()
        return str(jwt.encode(header, claims, self.signing_key))


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return _certificates(tmp_path_factory.mktemp("tls"), ["127.0.0.1"], [])


@pytest.fixture
def gateway(tmp_path: Path, tls: Tls) -> Iterator[RunningGateway]:
    yield from start_gateway(
        tmp_path,
        outbound_ca_file=tls.ca_file,
        federation_metadata_policy=POLICY,
        federation_trust_mark_types=TYPES,
    )


@pytest.fixture
def leaf(tls: Tls, gateway: RunningGateway) -> Iterator[MarkedLeaf]:
    portal = {
        "names": {"zh": "浙江政务服务网", "en": "Zhejiang services"},
        "owner": "zj",
        "redirect_uris": ["https://zj.example.cn/cb"],
    }
    assert gateway.admin("PUT", f"/portals/{CLIENT_ID}", portal).status_code in (200, 201)
    made = MarkedLeaf(tls)
    made.anchor = gateway.issuer
    answer = gateway.admin(
        "PUT",
        f"/federation/subordinates/portal/{CLIENT_ID}",
        {"entity_id": made.entity_id, "jwks": made.public_jwks()},
    )
    assert answer.status_code == 200, answer.text
    yield made
    made.server.shutdown()
    made.server.server_close()


def get(gateway: RunningGateway, path: str, **params: Any) -> requests.Response:
    return requests.get(f"{gateway.issuer}{path}", params=params, timeout=10)


def error_of(answer: requests.Response) -> tuple[int, str]:
    assert answer.headers["Content-Type"] == "application/json"  # §8.9
    assert answer.json()["error_description"]
    return answer.status_code, answer.json()["error"]


def resolved(gateway: RunningGateway, sub: str, anchors: list[str]) -> dict[str, Any]:
    answer = get(gateway, "/federation/resolve", sub=sub, trust_anchor=anchors)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "application/resolve-response+jwt"
    _, anchor = anchor_configuration(gateway)
    claims = verify_statement(
        answer.text, anchor["jwks"], typ="resolve-response+jwt", now=datetime.now(UTC)
    )
    assert "kid" in jws.extract_compact(answer.text.encode()).headers()
    return claims


# --- §9, §5.1.1: the entity configuration ---------------------------------------------------------


def test_the_entity_configuration_names_every_endpoint_as_the_final_does(
    gateway: RunningGateway,
) -> None:
    header, claims = anchor_configuration(gateway)
    assert (header["typ"], header["alg"]) == ("entity-statement+jwt", "RS256")
    assert header["kid"] in {key["kid"] for key in claims["jwks"]["keys"]}
    assert {"iss", "sub", "iat", "exp", "jwks", "metadata"} <= claims.keys()
    base = f"{gateway.issuer}/federation"
    assert {
        name: value
        for name, value in claims["metadata"]["federation_entity"].items()
        if name.endswith("_endpoint")
    } == {
        "federation_fetch_endpoint": f"{base}/fetch",
        "federation_list_endpoint": f"{base}/list",
        "federation_resolve_endpoint": f"{base}/resolve",
        "federation_trust_mark_status_endpoint": f"{base}/trust-mark-status",
        "federation_trust_mark_list_endpoint": f"{base}/trust-mark-list",
        "federation_trust_mark_endpoint": f"{base}/trust-mark",
        "federation_historical_keys_endpoint": f"{base}/historical-keys",
    }
    assert claims["trust_mark_issuers"] == {NATIONAL: [gateway.issuer], DENGBAO: [gateway.issuer]}


# --- §8.1, §8.2 ---------------------------------------------------------------------------------


def test_fetch_about_the_anchor_itself_is_an_invalid_request(gateway: RunningGateway) -> None:
    answer = get(gateway, "/federation/fetch", sub=gateway.issuer)
    assert error_of(answer) == (400, "invalid_request")  # §8.1.2


def test_what_no_view_answers_is_a_federation_error_too(gateway: RunningGateway) -> None:
    """§8.9 for what Werkzeug answers before a view: an unknown federation path, a wrong
    method, whatever the caller accepts (a resolver asks for entity statements, not HTML)."""
    accept = {"Accept": "application/entity-statement+jwt, text/html;q=0.9"}
    unknown = requests.get(f"{gateway.issuer}/federation/nothing", headers=accept, timeout=10)
    assert error_of(unknown) == (404, "not_found")
    wrong = requests.delete(f"{gateway.issuer}/federation/fetch", headers=accept, timeout=10)
    assert error_of(wrong)[0] == 405
    configuration = requests.post(
        f"{gateway.issuer}/.well-known/openid-federation", headers=accept, timeout=10
    )
    assert error_of(configuration)[0] == 405


def test_the_list_endpoint_takes_the_final_parameters(
    gateway: RunningGateway, leaf: MarkedLeaf
) -> None:
    listing = "/federation/list"
    both = ["openid_provider", "openid_relying_party"]
    assert get(gateway, listing, entity_type=both).json() == [leaf.entity_id]
    assert get(gateway, listing, entity_type=["openid_provider"]).json() == []
    assert get(gateway, listing, entity_type="federation_entity").json() == []
    assert get(gateway, listing, intermediate="true").json() == []  # regions, portals: leaves
    assert get(gateway, listing, intermediate="false").json() == [leaf.entity_id]
    assert get(gateway, listing, trust_mark_type=NATIONAL).json() == []
    assert gateway.admin("PUT", MARKS, {"trust_mark_type": NATIONAL}).status_code == 201
    assert get(gateway, listing, trust_mark_type=NATIONAL).json() == [leaf.entity_id]
    assert get(gateway, listing, trust_marked="true").json() == [leaf.entity_id]
    assert get(gateway, listing, trust_mark_type=DENGBAO).json() == []
    for bad in ({"trust_marked": "yes"}, {"intermediate": "1"}, {"entity_type": ""}):
        assert error_of(get(gateway, listing, **bad)) == (400, "invalid_request"), bad
    twice = get(gateway, listing, trust_mark_type=[NATIONAL, DENGBAO])
    assert error_of(twice) == (400, "invalid_request")


# --- §8.3: resolve with trust marks --------------------------------------------------------------


def test_resolve_carries_only_verified_active_trust_marks(
    gateway: RunningGateway, leaf: MarkedLeaf, tls: Tls
) -> None:
    national = gateway.admin("PUT", MARKS, {"trust_mark_type": NATIONAL}).json()["trust_mark"]
    dengbao = gateway.admin("PUT", MARKS, {"trust_mark_type": DENGBAO}).json()["trust_mark"]
    kid = anchor_configuration(gateway)[1]["jwks"]["keys"][0]["kid"]
    forged = jwt.encode(
        {"alg": "ES256", "kid": kid, "typ": "trust-mark+jwt"},
        {"iss": gateway.issuer, "sub": leaf.entity_id, "trust_mark_type": NATIONAL, "iat": 1},
        ECKey.generate_key("P-256"),
    )
    leaf.trust_marks = [
        {"trust_mark_type": NATIONAL, "trust_mark": national},
        {"trust_mark_type": DENGBAO, "trust_mark": dengbao},
        {"trust_mark_type": NATIONAL, "trust_mark": forged},
        {"trust_mark_type": DENGBAO, "trust_mark": national},  # the type does not match
    ]
    # §8.3.1: trust_anchor may repeat; one of them is this anchor.
    claims = resolved(gateway, leaf.entity_id, ["https://other.example.cn", gateway.issuer])
    assert claims["trust_marks"] == leaf.trust_marks[:2]
    assert {"iss", "sub", "iat", "exp", "metadata", "trust_chain"} <= claims.keys()
    assert "aud" not in claims  # §8.3.2: the request was not authenticated
    dengbao_exp = json.loads(jws.extract_compact(dengbao.encode()).payload)["exp"]
    assert claims["exp"] == dengbao_exp  # §8.3.2: not beyond an included trust mark
    # @openid-federation/core 0.2.1 validates trust_marks with a pre-Final schema (`id` where
    # the Final has `trust_mark_type`, §3.1.2) and so drops a chain whose leaf carries Final
    # trust marks: a gap in that implementation. If this starts failing, the library adopted the
    # Final: make it "== 1".
    assert resolve_externally(tls, leaf.entity_id, gateway.issuer)["chains"] == []

    assert gateway.admin("DELETE", f"{MARKS}?trust_mark_type={DENGBAO}").status_code == 204
    claims = resolved(gateway, leaf.entity_id, [gateway.issuer])
    assert claims["trust_marks"] == leaf.trust_marks[:1]  # the revoked mark is left out
    assert claims["exp"] > dengbao_exp
    assert gateway.admin("DELETE", f"{MARKS}?trust_mark_type={NATIONAL}").status_code == 204
    assert "trust_marks" not in resolved(gateway, leaf.entity_id, [gateway.issuer])

    missing = get(gateway, "/federation/resolve", sub=leaf.entity_id)
    assert error_of(missing) == (400, "invalid_request")
    foreign = get(gateway, "/federation/resolve", sub=leaf.entity_id, trust_anchor=UNKNOWN)
    assert error_of(foreign) == (404, "invalid_trust_anchor")


# --- §8.4, §8.5, §8.6: not_found ------------------------------------------------------------------


def test_unknown_types_and_foreign_marks_are_not_found(
    gateway: RunningGateway, leaf: MarkedLeaf
) -> None:
    listing = get(gateway, "/federation/trust-mark-list", trust_mark_type=UNKNOWN)
    assert error_of(listing) == (404, "not_found")  # §8.5, §8.9
    mark = get(gateway, "/federation/trust-mark", trust_mark_type=UNKNOWN, sub=leaf.entity_id)
    assert error_of(mark) == (404, "not_found")  # §8.6.2
    assert get(gateway, "/federation/trust-mark-list", trust_mark_type=NATIONAL).json() == []
    elsewhere = jwt.encode(
        {"alg": "ES256", "typ": "trust-mark+jwt"},
        {"iss": "https://tmi.example.cn", "sub": leaf.entity_id, "trust_mark_type": NATIONAL},
        ECKey.generate_key("P-256"),
    )
    status = requests.post(
        f"{gateway.issuer}/federation/trust-mark-status", data={"trust_mark": elsewhere}, timeout=10
    )
    assert error_of(status) == (404, "not_found")  # §8.4.2: a mark it did not issue


# --- §8.7: historical keys across a rotation ------------------------------------------------------


def historical_externally(gateway: RunningGateway, statement: str) -> dict[str, Any]:
    done = subprocess.run(
        ["node", str(PEERS / "federation.mjs"), "historical-keys", gateway.issuer, statement],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=PEERS,
        env=dict(os.environ),
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def historical_keys(gateway: RunningGateway) -> list[dict[str, Any]]:
    answer = get(gateway, "/federation/historical-keys")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/jwk-set+jwt"
    _, anchor = anchor_configuration(gateway)
    assert jws.extract_compact(answer.text.encode()).headers()["typ"] == "jwk-set+jwt"
    kid = jws.extract_compact(answer.text.encode()).headers()["kid"]
    key = next(key for key in anchor["jwks"]["keys"] if key["kid"] == kid)
    claims = jwt.decode(answer.text, JWKRegistry.import_key(key)).claims  # §8.7.2: no exp
    assert claims["iss"] == gateway.issuer
    assert isinstance(claims["iat"], int)
    keys: list[dict[str, Any]] = claims["keys"]
    return keys


def test_a_rotated_federation_key_is_listed_and_still_verifies_what_it_signed(
    gateway: RunningGateway, leaf: MarkedLeaf
) -> None:
    assert historical_keys(gateway) == []  # a fresh ring: nothing retired yet
    statement = get(gateway, "/federation/fetch", sub=leaf.entity_id).text
    old_kid = jws.extract_compact(statement.encode()).headers()["kid"]
    before = historical_externally(gateway, statement)
    assert (before["current"], before["historical"]) == (True, False)

    path = gateway.services.settings.federation_keys_path
    rotate = ["keys", "rotate", "--file", str(path), "--max-token-lifetime", "1"]
    assert cli.main(rotate) == 0
    deadline = time.monotonic() + 40  # the ring follows its file every 10 s
    while old_kid in {key["kid"] for key in anchor_configuration(gateway)[1]["jwks"]["keys"]}:
        assert time.monotonic() < deadline, "the rotated federation key file was not followed"
        time.sleep(1)

    listed = {key["kid"]: key for key in historical_keys(gateway)}
    assert old_kid in listed
    assert listed[old_kid]["iat"] <= time.time()
    assert isinstance(listed[old_kid]["exp"], int)
    assert "d" not in listed[old_kid]
    _, anchor = anchor_configuration(gateway)
    typ, now = "entity-statement+jwt", datetime.now(UTC)
    with pytest.raises(StatementError):
        verify_statement(statement, anchor["jwks"], typ=typ, now=now)
    key = {name: value for name, value in listed[old_kid].items() if name not in ("iat", "exp")}
    verify_statement(statement, {"keys": [key]}, typ=typ, now=now)
    after = historical_externally(gateway, statement)
    assert (after["current"], after["historical"]) == (False, True)

    # tongxing keys revoke: the key's revocation is published with its reason (§8.7.2, §8.7.3).
    revoke = ["keys", "revoke", "--file", str(path), old_kid, "--reason", "compromised"]
    assert cli.main(revoke) == 0
    assert load_key_ring(path).history[0].kid == old_kid
    deadline = time.monotonic() + 40
    while "revoked" not in {key["kid"]: key for key in historical_keys(gateway)}[old_kid]:
        assert time.monotonic() < deadline, "the revocation was not followed"
        time.sleep(1)
    revoked = {key["kid"]: key for key in historical_keys(gateway)}[old_kid]["revoked"]
    assert revoked["reason"] == "compromised"
    assert isinstance(revoked["revoked_at"], int)
