"""ID-token validation (OIDC Core §3.1.3.7) refuses every forgery and slip we can think of."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa as rsa_module
from joserfc import jws
from joserfc.jwk import ECKey, OctKey, RSAKey

from gateway.broker.errors import InvalidUpstreamToken, RegionMetadataInvalid
from gateway.broker.id_token import IdTokenExpectations, validate_id_token
from gateway.broker.metadata import RegionKeys, SigningKey
from gateway.keys import half_hash

ISSUER = "https://idp.zj.example.cn/realms/zj"
CLIENT_ID = "tongxing-gateway"
NONCE = "n-0S6_WzA2Mj"
NOW = 1_760_000_000.0
DROP = object()


@pytest.fixture(scope="module")
def rsa() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})


@pytest.fixture(scope="module")
def ec() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "ec-1"})


@pytest.fixture(scope="module")
def attacker() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "rogue"})


@pytest.fixture(scope="module")
def keys(rsa: RSAKey, ec: ECKey) -> RegionKeys:
    published = [rsa.as_dict(private=False), ec.as_dict(private=False)]
    return RegionKeys.from_jwks("zj", {"keys": published})


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "f:1234:zhangsan",
        "aud": CLIENT_ID,
        "exp": int(NOW) + 300,
        "iat": int(NOW),
        "nonce": NONCE,
        "id_number": "11010519491231002X",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not DROP}


def sign(payload: dict[str, Any], key: SigningKey, alg: str = "RS256", **header: Any) -> str:
    protected = {"alg": alg, "kid": key.kid, "typ": "JWT", **header}
    protected = {k: v for k, v in protected.items() if v is not DROP}
    return jws.serialize_compact(protected, json.dumps(payload), key, algorithms=[alg])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def validate(token: str, keys: RegionKeys, **expected: Any) -> dict[str, Any]:
    def resolve(kid: str | None, alg: str) -> SigningKey:
        key = keys.find(kid, alg)
        if key is None:
            raise InvalidUpstreamToken("zj", f"no key {kid!r}")
        return key

    values: dict[str, Any] = {
        "issuer": ISSUER,
        "client_id": CLIENT_ID,
        "nonce": NONCE,
        "now": NOW,
    } | expected
    return validate_id_token(
        token, region="zj", expected=IdTokenExpectations(**values), resolve_key=resolve
    )


def refused(token: str, keys: RegionKeys, match: str, **expected: Any) -> None:
    with pytest.raises(InvalidUpstreamToken, match=match):
        validate(token, keys, **expected)


@pytest.mark.parametrize("alg", ["RS256", "PS256"])
def test_a_token_signed_with_the_regions_rsa_key_is_accepted(
    alg: str, rsa: RSAKey, keys: RegionKeys
) -> None:
    assert validate(sign(claims(), rsa, alg), keys)["sub"] == "f:1234:zhangsan"


def test_a_token_signed_with_the_regions_ec_key_is_accepted(ec: ECKey, keys: RegionKeys) -> None:
    assert validate(sign(claims(), ec, "ES256"), keys)["nonce"] == NONCE


def test_alg_none_is_refused(keys: RegionKeys) -> None:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    token = f"{header}.{b64(json.dumps(claims()).encode())}."
    refused(token, keys, "algorithm 'none' is not allowed")


def test_hs256_keyed_with_the_rsa_public_key_is_refused(rsa: RSAKey, keys: RegionKeys) -> None:
    # The classic key-confusion forgery: an HMAC whose secret is the published public key.
    # joserfc itself refuses to make such a key, so the MAC is computed by hand.
    signing_input = (
        f"{b64(json.dumps({'alg': 'HS256', 'kid': 'rsa-1'}).encode())}."
        f"{b64(json.dumps(claims()).encode())}"
    )
    secret = rsa.as_pem(private=False)
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    refused(f"{signing_input}.{b64(mac)}", keys, "algorithm 'HS256' is not allowed")


def test_hs256_keyed_with_the_client_secret_is_refused(keys: RegionKeys) -> None:
    # Allowed by OIDC Core §10.1 for confidential clients, but never by the gateway.
    secret = OctKey.import_key(b"the-region-client-secret-0123456789")
    forged = jws.serialize_compact(
        {"alg": "HS256"}, json.dumps(claims()), secret, algorithms=["HS256"]
    )
    refused(forged, keys, "algorithm 'HS256' is not allowed")


@pytest.mark.parametrize("alg", ["RS384", "RS512", "ES384", "HS512", "EdDSA", "", None])
def test_algorithms_off_the_allow_list_are_refused(alg: Any, keys: RegionKeys) -> None:
    header = b64(json.dumps({"alg": alg, "kid": "rsa-1"}).encode())
    token = f"{header}.{b64(json.dumps(claims()).encode())}.{b64(b'x' * 64)}"
    refused(token, keys, "is not allowed|cannot be decoded")


def test_a_key_embedded_in_the_header_is_refused(attacker: RSAKey, keys: RegionKeys) -> None:
    token = sign(claims(), attacker, jwk=attacker.as_dict(private=False))
    refused(token, keys, r"carries its own key \(jwk\)")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("jku", "https://attacker.example/jwks.json"),
        ("x5u", "https://attacker.example/cert.pem"),
        ("x5c", ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]),
    ],
)
def test_key_urls_and_certificates_in_the_header_are_refused(
    name: str, value: Any, rsa: RSAKey, keys: RegionKeys
) -> None:
    header = {"alg": "RS256", "kid": "rsa-1", name: value}
    token = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims()).encode())}.{b64(b'x')}"
    refused(token, keys, "carries its own key")


def test_an_unknown_kid_is_refused(attacker: RSAKey, keys: RegionKeys) -> None:
    refused(sign(claims(), attacker), keys, "no key 'rogue'")


def test_a_known_kid_on_a_token_signed_by_another_key_is_refused(
    attacker: RSAKey, keys: RegionKeys
) -> None:
    refused(sign(claims(), attacker, kid="rsa-1"), keys, "signature does not verify")


def test_an_ec_algorithm_naming_an_rsa_kid_finds_no_key(ec: ECKey, keys: RegionKeys) -> None:
    refused(sign(claims(), ec, "ES256", kid="rsa-1"), keys, "no key 'rsa-1'")


def test_a_tampered_payload_is_refused(rsa: RSAKey, keys: RegionKeys) -> None:
    header, _, signature = sign(claims(), rsa).split(".")
    tampered = b64(json.dumps(claims(sub="someone-else")).encode())
    refused(f"{header}.{tampered}.{signature}", keys, "signature does not verify")


def test_a_token_without_kid_uses_the_only_fitting_key(rsa: RSAKey, keys: RegionKeys) -> None:
    assert validate(sign(claims(), rsa, kid=DROP), keys)["iss"] == ISSUER


def test_a_token_without_kid_is_refused_when_several_keys_fit(rsa: RSAKey) -> None:
    second = RSAKey.generate_key(2048, parameters={"kid": "rsa-2"})
    both = RegionKeys.from_jwks(
        "zj", {"keys": [rsa.as_dict(private=False), second.as_dict(private=False)]}
    )
    refused(sign(claims(), rsa, kid=DROP), both, "no key None")


@pytest.mark.parametrize(
    "issuer",
    [
        "https://idp.js.example.cn/realms/js",  # another region
        ISSUER + "/",  # exact comparison: no normalising
        ISSUER.upper(),
        DROP,
    ],
)
def test_a_wrong_issuer_is_refused(issuer: Any, rsa: RSAKey, keys: RegionKeys) -> None:
    refused(sign(claims(iss=issuer), rsa), keys, "is not the region's issuer")


@pytest.mark.parametrize("aud", ["another-client", ["another-client"], [], DROP, 42])
def test_a_wrong_audience_is_refused(aud: Any, rsa: RSAKey, keys: RegionKeys) -> None:
    refused(sign(claims(aud=aud), rsa), keys, "aud")


def test_several_audiences_need_azp_naming_the_gateway(rsa: RSAKey, keys: RegionKeys) -> None:
    audiences = [CLIENT_ID, "account"]
    refused(sign(claims(aud=audiences), rsa), keys, "several audiences but no azp")
    refused(sign(claims(aud=audiences, azp="account"), rsa), keys, "azp")
    assert validate(sign(claims(aud=audiences, azp=CLIENT_ID), rsa), keys)["azp"] == CLIENT_ID


def test_a_wrong_azp_is_refused_even_with_one_audience(rsa: RSAKey, keys: RegionKeys) -> None:
    refused(sign(claims(azp="portal-x"), rsa), keys, "azp is not the gateway's client id")


@pytest.mark.parametrize("nonce", ["another-nonce", "", DROP, 7])
def test_a_wrong_or_missing_nonce_is_refused(nonce: Any, rsa: RSAKey, keys: RegionKeys) -> None:
    refused(sign(claims(nonce=nonce), rsa), keys, "nonce does not match")


def test_an_expired_token_is_refused_beyond_the_leeway(rsa: RSAKey, keys: RegionKeys) -> None:
    refused(sign(claims(exp=int(NOW) - 61), rsa), keys, "has expired")
    assert validate(sign(claims(exp=int(NOW) - 30), rsa), keys)


def test_an_iat_in_the_future_is_refused_beyond_the_leeway(rsa: RSAKey, keys: RegionKeys) -> None:
    refused(sign(claims(iat=int(NOW) + 120), rsa), keys, "issued in the future")
    assert validate(sign(claims(iat=int(NOW) + 30), rsa), keys)


def test_an_old_token_is_refused(rsa: RSAKey, keys: RegionKeys) -> None:
    token = sign(claims(iat=int(NOW) - 3600, exp=int(NOW) + 3600), rsa)
    refused(token, keys, "issued too long ago")


def test_a_token_not_yet_valid_is_refused(rsa: RSAKey, keys: RegionKeys) -> None:
    refused(sign(claims(nbf=int(NOW) + 600), rsa), keys, "not valid yet")


@pytest.mark.parametrize("exp", ["9999999999", True, None, float("inf")])
def test_times_that_are_not_numbers_are_refused(exp: Any, rsa: RSAKey, keys: RegionKeys) -> None:
    payload = claims(exp=exp)
    if exp is None:
        del payload["exp"]
        refused(sign(payload, rsa), keys, "exp is missing")
        return
    token = sign(payload, rsa) if exp != float("inf") else _sign_raw(payload, rsa)
    refused(token, keys, "exp is not a number")


def _sign_raw(payload: dict[str, Any], key: RSAKey) -> str:
    # json.dumps writes Infinity, which Python's json.loads reads back as a float.
    return jws.serialize_compact(
        {"alg": "RS256", "kid": key.kid}, json.dumps(payload, allow_nan=True), key
    )


def test_max_age_needs_a_recent_auth_time(rsa: RSAKey, keys: RegionKeys) -> None:
    refused(sign(claims(), rsa), keys, "auth_time is missing", max_age=300)
    old = sign(claims(auth_time=int(NOW) - 1000), rsa)
    refused(old, keys, "older than the max_age", max_age=300)
    assert validate(sign(claims(auth_time=int(NOW) - 100), rsa), keys, max_age=300)


def test_at_hash_must_match_the_access_token(rsa: RSAKey, keys: RegionKeys) -> None:
    good = sign(claims(at_hash=half_hash("access-1", "RS256")), rsa)
    assert validate(good, keys, access_token="access-1")
    refused(good, keys, "at_hash does not match", access_token="access-2")


def test_an_access_token_typ_is_refused(rsa: RSAKey, keys: RegionKeys) -> None:
    refused(sign(claims(), rsa, typ="at+jwt"), keys, "header type")


def test_critical_header_extensions_are_refused(rsa: RSAKey, keys: RegionKeys) -> None:
    header = {"alg": "RS256", "kid": "rsa-1", "crit": ["exp"], "exp": 1}
    token = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims()).encode())}.{b64(b'x')}"
    refused(token, keys, "critical extensions|cannot be decoded")


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b", "a.b.c.d.e", "!!.!!.!!", "e30.e30.", "x" * 20000],
)
def test_malformed_tokens_are_refused(token: str, keys: RegionKeys) -> None:
    with pytest.raises(InvalidUpstreamToken):
        validate(token, keys)


def test_a_payload_that_is_not_an_object_is_refused(rsa: RSAKey, keys: RegionKeys) -> None:
    token = jws.serialize_compact({"alg": "RS256", "kid": "rsa-1"}, b"[1, 2]", rsa)
    refused(token, keys, "not a JSON object")


def test_the_jwk_set_keeps_only_public_signing_keys(rsa: RSAKey, ec: ECKey) -> None:
    # A short key is exactly what the gateway must refuse.
    short = rsa_module.generate_private_key(65537, 1024).public_key().public_numbers()  # noqa: S505
    small = {"kty": "RSA", "kid": "small", "n": b64(_int_bytes(short.n)), "e": "AQAB"}
    encryption = RSAKey.generate_key(2048, parameters={"kid": "enc", "use": "enc"})
    published = [
        rsa.as_dict(private=True),  # private material: a compromised region, ignored
        small,
        encryption.as_dict(private=False),
        {**ec.as_dict(private=False), "kid": "ec-hs", "alg": "HS256"},
        {"kty": "oct", "k": "c2VjcmV0", "kid": "oct"},
        {"kty": "RSA", "kid": "broken", "n": "AQAB", "e": "!!"},
        "not-a-key",
        ec.as_dict(private=False),
    ]
    keys = RegionKeys.from_jwks("zj", {"keys": published})
    assert keys.kids == ("ec-1",)


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


@pytest.mark.parametrize("document", [{}, {"keys": "x"}, {"keys": []}, {"keys": [{"kty": "oct"}]}])
def test_a_jwk_set_without_usable_keys_is_refused(document: dict[str, Any]) -> None:
    with pytest.raises(RegionMetadataInvalid):
        RegionKeys.from_jwks("zj", document)


def test_duplicate_claim_names_are_refused(rsa: RSAKey, keys: RegionKeys) -> None:
    payload = json.dumps(claims())[:-1] + ', "iss": "https://attacker.example"}'
    token = jws.serialize_compact({"alg": "RS256", "kid": "rsa-1"}, payload, rsa)
    refused(token, keys, "payload is not JSON")
