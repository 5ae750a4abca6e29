"""The signing key ring: publish before sign, rotation, verification, and the key file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import shutil
import stat
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from gateway.keys import (
    SIGNING_ALGORITHMS,
    InvalidKeyRingError,
    KeyFileError,
    KeyFileMissingError,
    KeyRing,
    KeyRingError,
    SigningKey,
    TokenRejectedError,
    dumps_key_ring,
    load_key_ring,
    load_or_create,
    loads_key_ring,
    save_key_ring,
)
from gateway.keys import files as keys_files

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
LIFETIME = timedelta(minutes=10)
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi")
CLAIMS = {"iss": "https://tongxing.example", "sub": "citizen-1", "aud": "portal-zj"}


@pytest.fixture(scope="module")
def ring_document() -> str:
    return dumps_key_ring(KeyRing.generate(now=NOW))


@pytest.fixture
def ring(ring_document: str) -> KeyRing:
    """A fresh ring for each test; generated once per module, since RSA generation is slow."""
    return loads_key_ring(ring_document)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def header_of(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(unb64url(token.split(".")[0]))
    return decoded


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """The JWS signing input ``base64url(header).base64url(payload)`` (RFC 7515 §5.1)."""
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"


def kids(ring: KeyRing, now: datetime = NOW) -> list[str]:
    return [jwk["kid"] for jwk in ring.jwks(now)["keys"]]


def secret_values(ring: KeyRing) -> list[str]:
    values: list[str] = []
    for key in ring.keys:
        private = key.jose_key.as_dict(private=True)
        values += [str(private[name]) for name in PRIVATE_MEMBERS if name in private]
    assert values
    return values


# --- A fresh ring -----------------------------------------------------------------------------


def test_a_fresh_ring_has_one_active_and_one_next_key_per_algorithm(ring: KeyRing) -> None:
    states = sorted((key.alg, key.state) for key in ring.keys)
    assert states == [
        ("ES256", "active"),
        ("ES256", "next"),
        ("RS256", "active"),
        ("RS256", "next"),
    ]
    assert ring.algorithms == SIGNING_ALGORITHMS
    assert all(key.created_at == NOW and key.retire_until is None for key in ring.keys)
    assert ring.active_key("RS256").jose_key.public_key.key_size == 2048


def test_a_3072_bit_ring_can_be_generated() -> None:
    ring = KeyRing.generate(now=NOW, algorithms=["RS256"], rsa_key_size=3072)
    assert ring.active_key().jose_key.public_key.key_size == 3072
    assert ring.algorithms == ("RS256",)


def test_rs256_is_mandatory() -> None:
    with pytest.raises(InvalidKeyRingError, match="no RS256 key"):
        KeyRing.generate(now=NOW, algorithms=["ES256"])


def test_other_algorithms_and_key_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported signing algorithm"):
        SigningKey.generate("HS256", now=NOW)
    with pytest.raises(ValueError, match="RSA key size"):
        SigningKey.generate("RS256", now=NOW, rsa_key_size=1024)


def test_naive_datetimes_are_refused(ring: KeyRing) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ring.rotate(datetime(2026, 11, 22, 8, 0), LIFETIME)


def test_a_signing_key_must_carry_its_thumbprint_and_private_key(ring: KeyRing) -> None:
    active = ring.active_key()
    with pytest.raises(InvalidKeyRingError, match="kid is not the RFC 7638 thumbprint"):
        replace(active, kid="my-key-1")
    with pytest.raises(InvalidKeyRingError, match="not a ES256 key"):
        replace(active, alg="ES256")
    public_only = RSAKey.generate_key(2048, private=False)
    with pytest.raises(InvalidKeyRingError, match="private key is missing"):
        replace(active, jose_key=public_only)


def test_the_kid_is_the_rfc_7638_thumbprint(ring: KeyRing) -> None:
    for jwk in ring.jwks(NOW)["keys"]:
        required = ("e", "kty", "n") if jwk["kty"] == "RSA" else ("crv", "kty", "x", "y")
        canonical = json.dumps({name: jwk[name] for name in required}, separators=(",", ":"))
        assert jwk["kid"] == b64url(hashlib.sha256(canonical.encode()).digest())


# --- The JWK Set ------------------------------------------------------------------------------


def test_the_jwks_publishes_every_key_without_private_members(ring: KeyRing) -> None:
    jwks = ring.jwks(NOW)
    assert sorted(kids(ring)) == sorted(key.kid for key in ring.keys)
    for jwk in jwks["keys"]:
        assert not set(PRIVATE_MEMBERS) & jwk.keys(), jwk["kid"]
        assert jwk["use"] == "sig"
        assert jwk["alg"] in SIGNING_ALGORITHMS
        assert jwk["kty"] == ("RSA" if jwk["alg"] == "RS256" else "EC")
    text = json.dumps(jwks)
    assert not any(secret in text for secret in secret_values(ring))


def test_the_jwks_is_a_copy_the_caller_may_change(ring: KeyRing) -> None:
    ring.jwks(NOW)["keys"][0]["d"] = "tampered"
    assert "d" not in ring.jwks(NOW)["keys"][0]


# --- Signing and verifying --------------------------------------------------------------------


@pytest.mark.parametrize("alg", SIGNING_ALGORITHMS)
def test_a_signed_token_verifies_and_names_the_active_kid(ring: KeyRing, alg: str) -> None:
    token = ring.sign(CLAIMS, alg=alg)
    header = header_of(token)
    assert header == {"alg": alg, "kid": ring.active_key(alg).kid}
    assert ring.verify(token, now=NOW) == CLAIMS


def test_a_typ_is_set_when_asked_and_can_be_required(ring: KeyRing) -> None:
    token = ring.sign(CLAIMS, typ="logout+jwt")
    assert header_of(token)["typ"] == "logout+jwt"
    assert ring.verify(token, now=NOW, typ="logout+jwt") == CLAIMS
    with pytest.raises(TokenRejectedError, match="typ"):
        ring.verify(ring.sign(CLAIMS), now=NOW, typ="logout+jwt")


def test_the_published_key_alone_verifies_the_signature(ring: KeyRing) -> None:
    """Checked with plain ``cryptography`` (RFC 7518 §3.3), not through joserfc."""
    token = ring.sign(CLAIMS)
    published = {jwk["kid"]: jwk for jwk in ring.jwks(NOW)["keys"]}
    jwk = published[header_of(token)["kid"]]
    public_key = rsa.RSAPublicNumbers(
        e=int.from_bytes(unb64url(jwk["e"]), "big"), n=int.from_bytes(unb64url(jwk["n"]), "big")
    ).public_key()
    signing_input, _, signature = token.rpartition(".")
    public_key.verify(
        unb64url(signature), signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()
    )


def test_signing_with_an_algorithm_the_ring_lacks_is_refused() -> None:
    ring = KeyRing.generate(now=NOW, algorithms=["RS256"])
    with pytest.raises(KeyRingError, match="no active ES256 key"):
        ring.sign(CLAIMS, alg="ES256")


# --- Rotation (OIDC Core §10.1) ---------------------------------------------------------------


def test_the_next_key_is_published_before_it_signs(ring: KeyRing) -> None:
    upcoming = next(key for key in ring.keys if key.alg == "RS256" and key.state == "next")
    assert upcoming.kid in kids(ring)
    assert header_of(ring.sign(CLAIMS))["kid"] != upcoming.kid

    ring.rotate(NOW, LIFETIME)

    assert header_of(ring.sign(CLAIMS))["kid"] == upcoming.kid
    new_next = next(key for key in ring.keys if key.alg == "RS256" and key.state == "next")
    assert new_next.kid in kids(ring)
    assert new_next.kid not in {upcoming.kid}


def test_a_retired_key_verifies_until_retire_until_then_leaves_the_jwks(ring: KeyRing) -> None:
    old = ring.active_key("RS256")
    token = ring.sign(CLAIMS)

    ring.rotate(NOW, LIFETIME)

    retired = next(key for key in ring.keys if key.kid == old.kid)
    assert retired.state == "retired"
    assert retired.retire_until == NOW + LIFETIME
    almost = NOW + LIFETIME - timedelta(seconds=1)
    assert old.kid in kids(ring, almost)
    assert ring.verify(token, now=almost) == CLAIMS

    after = NOW + LIFETIME
    assert old.kid not in kids(ring, after)
    with pytest.raises(TokenRejectedError, match="unknown or withdrawn kid"):
        ring.verify(token, now=after)

    ring.rotate(after + timedelta(days=1), LIFETIME)
    assert old.kid not in {key.kid for key in ring.keys}
    assert old.kid not in kids(ring, after + timedelta(days=1))


def test_each_rotation_keeps_one_active_and_one_next_key_per_algorithm(ring: KeyRing) -> None:
    for step in range(3):
        ring.rotate(NOW + step * timedelta(minutes=1), LIFETIME)
    for alg in SIGNING_ALGORITHMS:
        states = sorted(key.state for key in ring.keys if key.alg == alg)
        assert states == ["active", "next", "retired", "retired", "retired"]


def test_a_ring_without_a_next_key_publishes_one_before_promoting_it(ring: KeyRing) -> None:
    active = ring.active_key("RS256")
    handmade = KeyRing([key for key in ring.keys if key.state == "active"])

    handmade.rotate(NOW, LIFETIME)

    assert handmade.active_key("RS256").kid == active.kid
    assert [key.state for key in handmade.keys if key.alg == "RS256"] == ["active", "next"]


# --- Verification refuses what the ring did not sign ------------------------------------------


def test_verify_refuses_alg_none(ring: KeyRing) -> None:
    header = {"alg": "none", "kid": ring.active_key().kid}
    with pytest.raises(TokenRejectedError, match="algorithm 'none' is not accepted"):
        ring.verify(unsigned(header, CLAIMS) + ".", now=NOW)


def _rsa_public_key_encodings(ring: KeyRing) -> list[bytes]:
    key = ring.active_key("RS256")
    pem = key.jose_key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return [pem, json.dumps(key.public_jwk()).encode()]


def test_verify_refuses_hs256_keyed_with_the_rsa_public_key(ring: KeyRing) -> None:
    for secret in _rsa_public_key_encodings(ring):
        signing_input = unsigned({"alg": "HS256", "kid": ring.active_key().kid}, CLAIMS)
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        with pytest.raises(TokenRejectedError, match="algorithm 'HS256' is not accepted"):
            ring.verify(f"{signing_input}.{b64url(mac)}", now=NOW)


def test_verify_refuses_an_unknown_kid(ring: KeyRing) -> None:
    stranger = KeyRing.generate(now=NOW, algorithms=["RS256"])
    with pytest.raises(TokenRejectedError, match="unknown or withdrawn kid"):
        ring.verify(stranger.sign(CLAIMS), now=NOW)


def test_verify_refuses_a_token_without_kid(ring: KeyRing) -> None:
    token = jwt.encode({"alg": "RS256"}, CLAIMS, ring.active_key().jose_key)
    with pytest.raises(TokenRejectedError, match="unknown or withdrawn kid"):
        ring.verify(token, now=NOW)


@pytest.mark.parametrize("embedded", ["jwk", "jku", "x5u"])
def test_verify_refuses_a_header_that_carries_its_own_key(ring: KeyRing, embedded: str) -> None:
    attacker = ECKey.generate_key("P-256")  # an RSA JWK would not fit the 512-byte header cap
    values = {
        "jwk": attacker.as_dict(private=False),
        "jku": "https://attacker.example/jwks",
        "x5u": "https://attacker.example/cert.pem",
    }
    header = {"alg": "ES256", "kid": ring.active_key("ES256").kid, embedded: values[embedded]}
    token = jwt.encode(header, CLAIMS, attacker)
    with pytest.raises(TokenRejectedError, match=f"carries its own key \\({embedded}\\)"):
        ring.verify(token, now=NOW)


def test_verify_refuses_an_oversized_header(ring: KeyRing) -> None:
    attacker = RSAKey.generate_key(2048)
    header = {"alg": "RS256", "kid": ring.active_key().kid, "jwk": attacker.as_dict()}
    with pytest.raises(TokenRejectedError, match="too large"):
        ring.verify(jwt.encode(header, CLAIMS, attacker), now=NOW)


def test_verify_refuses_a_kid_of_another_algorithm(ring: KeyRing) -> None:
    signing_input = unsigned({"alg": "RS256", "kid": ring.active_key("ES256").kid}, CLAIMS)
    with pytest.raises(TokenRejectedError, match="is a ES256 key, not RS256"):
        ring.verify(f"{signing_input}.{b64url(b'x' * 256)}", now=NOW)


def test_verify_refuses_a_changed_payload(ring: KeyRing) -> None:
    header, _payload, signature = ring.sign(CLAIMS).split(".")
    forged = b64url(json.dumps({**CLAIMS, "sub": "someone-else"}).encode())
    with pytest.raises(TokenRejectedError, match="bad signature"):
        ring.verify(f"{header}.{forged}.{signature}", now=NOW)


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c.d.e", "é.é.é", "..."])
def test_verify_refuses_garbage(ring: KeyRing, token: str) -> None:
    with pytest.raises(TokenRejectedError):
        ring.verify(token, now=NOW)


# --- The key file -----------------------------------------------------------------------------


def test_a_saved_ring_loads_with_the_same_keys_and_mode_0600(ring: KeyRing, tmp_path: Path) -> None:
    ring.rotate(NOW, LIFETIME)
    path = tmp_path / "keys.json"

    save_key_ring(ring, path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["keys.json"]  # no temporary file left
    loaded = load_key_ring(path)
    assert [(k.kid, k.alg, k.state, k.created_at, k.retire_until) for k in loaded.keys] == [
        (k.kid, k.alg, k.state, k.created_at, k.retire_until) for k in ring.keys
    ]
    assert loaded.verify(ring.sign(CLAIMS, alg="ES256"), now=NOW) == CLAIMS
    assert ring.verify(loaded.sign(CLAIMS), now=NOW) == CLAIMS
    assert loaded.jwks(NOW) == ring.jwks(NOW)


def test_saving_replaces_the_previous_file_atomically(ring: KeyRing, tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    save_key_ring(ring, path)
    ring.rotate(NOW, LIFETIME)
    save_key_ring(ring, path)
    assert load_key_ring(path).active_key().kid == ring.active_key().kid
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(list(tmp_path.iterdir())) == 1


def test_saving_without_overwrite_never_replaces_a_file(ring: KeyRing, tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text("precious")
    with pytest.raises(FileExistsError):
        save_key_ring(ring, path, overwrite=False)
    assert path.read_text() == "precious"
    assert len(list(tmp_path.iterdir())) == 1


def test_load_or_create_generates_and_saves_a_missing_file_once(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"

    created = load_or_create(path, create=True, now=NOW)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_or_create(path, create=True, now=NOW + timedelta(days=1))
    assert [key.kid for key in again.keys] == [key.kid for key in created.keys]


def test_when_two_processes_create_the_file_at_once_both_use_the_first(
    ring: KeyRing, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keys.json"
    generate = KeyRing.generate

    def generate_while_another_process_wins(**kwargs: Any) -> KeyRing:
        save_key_ring(ring, path)  # the other process, between our check and our save
        return generate(**kwargs)

    monkeypatch.setattr(KeyRing, "generate", generate_while_another_process_wins)

    loaded = load_or_create(path, create=True, now=NOW)

    assert [key.kid for key in loaded.keys] == [key.kid for key in ring.keys]
    assert [p.name for p in tmp_path.iterdir()] == ["keys.json"]


def test_a_missing_file_without_create_is_an_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "secret" / "keys.json"
    with pytest.raises(KeyFileMissingError, match="does not exist; mount the signing key") as info:
        load_or_create(path, create=False, now=NOW)
    assert str(path) in str(info.value)
    assert info.value.path == path
    assert not path.exists()


def test_a_corrupt_file_is_an_error_and_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text('{"version": 1, "keys": [')
    with pytest.raises(KeyFileError, match="is invalid: not JSON") as info:
        load_or_create(path, create=True, now=NOW)
    assert str(path) in str(info.value)
    assert path.read_text() == '{"version": 1, "keys": ['


def test_an_unreadable_path_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot be read") as info:
        load_or_create(tmp_path, create=True, now=NOW)
    assert str(tmp_path) in str(info.value)


Mutation = Callable[[dict[str, Any]], None]


def _drop_next_and_double_active(document: dict[str, Any]) -> None:
    for entry in document["keys"]:
        if entry["jwk"]["alg"] == "RS256":
            entry["state"] = "active"


def _drop_rs256(document: dict[str, Any]) -> None:
    document["keys"] = [e for e in document["keys"] if e["jwk"]["alg"] != "RS256"]


def _unknown_state(document: dict[str, Any]) -> None:
    document["keys"][0]["state"] = "standby"


def _wrong_kid(document: dict[str, Any]) -> None:
    document["keys"][0]["jwk"]["kid"] = "my-key-1"


def _public_only(document: dict[str, Any]) -> None:
    for name in PRIVATE_MEMBERS:
        document["keys"][0]["jwk"].pop(name)


def _retired_without_date(document: dict[str, Any]) -> None:
    document["keys"][1]["state"] = "retired"


def _hmac_key(document: dict[str, Any]) -> None:
    document["keys"][0]["jwk"]["alg"] = "HS256"


def _broken_member(document: dict[str, Any]) -> None:
    document["keys"][0]["jwk"]["d"] = "AQAB"


def _short_rsa_key(document: dict[str, Any]) -> None:
    numbers = rsa.generate_private_key(public_exponent=65537, key_size=1024).private_numbers()  # noqa: S505

    def member(value: int) -> str:
        return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

    document["keys"][0]["jwk"] = {
        "kty": "RSA",
        "alg": "RS256",
        "n": member(numbers.public_numbers.n),
        "e": member(numbers.public_numbers.e),
        "d": member(numbers.d),
    }


def _naive_date(document: dict[str, Any]) -> None:
    document["keys"][0]["created_at"] = "2026-11-22T08:00:00"


def _future_version(document: dict[str, Any]) -> None:
    document["version"] = 2


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        (_drop_next_and_double_active, "RS256 needs exactly one active key, found 2"),
        (_drop_rs256, "no RS256 key"),
        (_unknown_state, "keys\\[0\\]: unknown state 'standby'"),
        (_wrong_kid, "kid 'my-key-1' is not the RFC 7638 thumbprint"),
        (_public_only, "keys\\[0\\]: the jwk is not a private key"),
        (_retired_without_date, "retire_until is required for retired keys"),
        (_hmac_key, "jwk alg 'HS256' is not one of RS256, ES256"),
        (_broken_member, "keys\\[0\\]: not a valid RSA private JWK"),
        (_short_rsa_key, "keys\\[0\\]: the RSA modulus must have 2048 or 3072 bits"),
        (_naive_date, "created_at has no UTC offset"),
        (_future_version, "unsupported format version '2'"),
    ],
)
def test_an_invalid_file_is_refused_with_a_clear_message(
    ring: KeyRing, tmp_path: Path, mutation: Mutation, message: str
) -> None:
    document = json.loads(dumps_key_ring(ring))
    mutation(document)
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(document))

    with pytest.raises(KeyFileError, match=message) as info:
        load_or_create(path, create=True, now=NOW)

    assert str(path) in str(info.value)
    assert json.loads(path.read_text()) == document
    assert not any(secret in str(info.value) for secret in secret_values(ring))


def test_the_document_parser_reports_without_a_path(ring: KeyRing) -> None:
    assert [k.kid for k in loads_key_ring(dumps_key_ring(ring)).keys] == [k.kid for k in ring.keys]
    with pytest.raises(InvalidKeyRingError, match="'keys' must be a non-empty list"):
        loads_key_ring('{"version": 1, "keys": []}')


# --- Secrets stay secret ----------------------------------------------------------------------


def test_repr_str_and_logs_never_show_private_key_material(
    ring: KeyRing, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway.keys")
    path = tmp_path / "keys.json"
    save_key_ring(ring, path)
    loaded = load_key_ring(path)
    loaded.rotate(NOW, LIFETIME)

    secrets = secret_values(ring) + secret_values(loaded)
    shown = [repr(ring), str(ring), repr(loaded), caplog.text]
    shown += [repr(key) for key in loaded.keys] + [str(key) for key in loaded.keys]
    assert caplog.records
    for text in shown:
        assert not any(secret in text for secret in secrets), text
    assert ring.active_key().kid in repr(ring)
    assert "jose_key" not in repr(ring.active_key())


# --- Following the key file -------------------------------------------------------------------

EVERY = 10.0


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float = EVERY) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def rotated_document(ring_document: str) -> str:
    """The file ``tongxing keys rotate`` makes of ``ring_document``."""
    rotated = loads_key_ring(ring_document)
    rotated.rotate(NOW, LIFETIME)
    return dumps_key_ring(rotated)


def signing_kid(ring: KeyRing, alg: str = "RS256") -> str:
    kid: str = header_of(ring.sign(CLAIMS, alg))["kid"]
    return kid


def watch(path: Path, document: str, clock: FakeClock) -> KeyRing:
    path.write_text(document)
    return load_key_ring(path, watch_every=EVERY, clock=clock)


def replace_file(path: Path, document: str) -> None:
    save_key_ring(loads_key_ring(document), path)  # atomically, as an operator would


def count_loads(monkeypatch: pytest.MonkeyPatch) -> list[str | bytes]:
    loaded: list[str | bytes] = []

    def counting_loads(text: str | bytes) -> KeyRing:
        loaded.append(text)
        return loads_key_ring(text)

    monkeypatch.setattr(keys_files, "loads_key_ring", counting_loads)
    return loaded


def test_a_watched_ring_signs_with_the_published_next_key_once_the_file_is_rotated(
    ring_document: str, rotated_document: str, tmp_path: Path
) -> None:
    path, clock = tmp_path / "keys.json", FakeClock()
    ring = watch(path, ring_document, clock)
    before = {(key.alg, key.state): key.kid for key in ring.keys}

    replace_file(path, rotated_document)
    clock.advance()

    for alg in SIGNING_ALGORITHMS:
        # publish before sign: the key that signs now was the published next key
        assert signing_kid(ring, alg) == before[alg, "next"]
        retired = [key for key in ring.keys if key.alg == alg and key.state == "retired"]
        assert [key.kid for key in retired] == [before[alg, "active"]]
        assert before[alg, "active"] in kids(ring)  # tokens it signed still verify


def test_the_file_is_looked_at_only_when_the_interval_has_passed(
    ring_document: str, rotated_document: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, clock = tmp_path / "keys.json", FakeClock()
    ring = watch(path, ring_document, clock)
    active = ring.active_key().kid
    replace_file(path, rotated_document)
    looked: list[Path] = []
    stat = Path.stat

    def counting_stat(self: Path, **kwargs: Any) -> Any:
        looked.append(self)
        return stat(self, **kwargs)

    monkeypatch.setattr(Path, "stat", counting_stat)
    clock.advance(EVERY - 0.001)
    for _ in range(5):
        assert signing_kid(ring) == active
        ring.verify(ring.sign(CLAIMS), now=NOW)
        ring.jwks(NOW)
    assert looked == []

    clock.advance(0.001)
    assert signing_kid(ring) != active
    assert looked == [path]


def test_an_unchanged_file_is_not_read_again(
    ring_document: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, clock = tmp_path / "keys.json", FakeClock()
    ring = watch(path, ring_document, clock)
    loaded = count_loads(monkeypatch)

    for _ in range(5):
        clock.advance()
        signing_kid(ring)

    assert loaded == []


def _without_rs256_active(document: dict[str, Any]) -> None:
    document["keys"] = [
        e for e in document["keys"] if (e["jwk"]["alg"], e["state"]) != ("RS256", "active")
    ]


def _without_es256(document: dict[str, Any]) -> None:
    document["keys"] = [e for e in document["keys"] if e["jwk"]["alg"] != "ES256"]


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda text: text[: len(text) // 2], "is invalid: not JSON"),
        (
            lambda text: json.dumps(_mutated(text, _without_rs256_active)),
            "RS256 needs exactly one active key, found 0",
        ),
        (
            lambda text: json.dumps(_mutated(text, _without_es256)),
            "is refused: it has no active ES256 key",
        ),
        (lambda text: "[" * 100_000, "cannot be loaded \\(RecursionError\\)"),
    ],
    ids=["truncated", "no-active-key", "drops-an-algorithm", "nested-too-deep"],
)
def test_an_invalid_new_file_is_logged_once_and_the_ring_in_use_stays(
    ring_document: str,
    rotated_document: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    spoil: Callable[[str], str],
    message: str,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.keys")
    path, clock = tmp_path / "keys.json", FakeClock()
    ring = watch(path, ring_document, clock)
    active = ring.active_key().kid
    loaded = count_loads(monkeypatch)

    path.write_text(spoil(rotated_document))
    for _ in range(3):
        clock.advance()
        assert signing_kid(ring) == active
        assert signing_kid(ring, "ES256") == ring.active_key("ES256").kid

    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert str(path) in errors[0]
    assert re.search(message, errors[0])
    assert len(loaded) == 1  # the refused version is not read again
    secrets = secret_values(ring) + secret_values(loads_key_ring(rotated_document))
    assert not any(secret in caplog.text for secret in secrets)

    replace_file(path, rotated_document)
    clock.advance()
    assert signing_kid(ring) == loads_key_ring(rotated_document).active_key().kid
    assert "reloaded signing key ring from" in caplog.text


def _mutated(text: str, mutation: Mutation) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(text)
    mutation(document)
    return document


def test_a_missing_file_is_logged_once_and_a_new_one_is_picked_up(
    ring_document: str, rotated_document: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, clock = tmp_path / "keys.json", FakeClock()
    ring = watch(path, ring_document, clock)
    active = ring.active_key().kid

    path.unlink()
    for _ in range(3):
        clock.advance()
        assert signing_kid(ring) == active
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert f"{path}: does not exist" in errors[0]

    replace_file(path, rotated_document)
    clock.advance()
    assert signing_kid(ring) == loads_key_ring(rotated_document).active_key().kid


def _publish_like_the_kubelet(secret: Path, document: str, version: str) -> Path:
    """Kubernetes' atomic writer: the files go to a new timestamped folder, and ``..data`` is
    switched to it by renaming a symlink over it; ``keys.json`` is a symlink through ``..data``."""
    folder = secret / f"..2026_11_22_08_00_0{version}.{version}"
    folder.mkdir()
    (folder / "keys.json").write_text(document)
    swap = secret / "..data_tmp"
    swap.symlink_to(folder.name)
    swap.replace(secret / "..data")
    return folder


def test_a_secret_volume_updated_by_a_symlink_swap_is_picked_up(
    ring_document: str, rotated_document: str, tmp_path: Path
) -> None:
    secret, clock = tmp_path / "keys", FakeClock()
    secret.mkdir()
    first = _publish_like_the_kubelet(secret, ring_document, "1")
    path = secret / "keys.json"
    path.symlink_to("..data/keys.json")
    ring = load_key_ring(path, watch_every=EVERY, clock=clock)
    before = ring.active_key().kid
    old = (first / "keys.json").stat()

    second = _publish_like_the_kubelet(secret, rotated_document, "2")
    shutil.rmtree(first)
    # Same mtime as the old file: the new inode is what tells the versions apart.
    os.utime(second / "keys.json", ns=(old.st_atime_ns, old.st_mtime_ns))
    clock.advance()

    assert signing_kid(ring) == loads_key_ring(rotated_document).active_key().kid
    assert before in kids(ring)


def test_a_new_active_key_that_was_never_published_is_used_with_a_warning(
    ring_document: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, clock = tmp_path / "keys.json", FakeClock()
    ring = watch(path, ring_document, clock)
    replacement = KeyRing.generate(now=NOW)  # say, after a key was compromised

    save_key_ring(replacement, path)
    clock.advance()

    assert signing_kid(ring) == replacement.active_key().kid
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("without having been published first" in w for w in warnings)
    assert any("is no longer published" in w for w in warnings)


def test_signing_goes_on_in_other_threads_while_one_reloads(
    ring_document: str, rotated_document: str, tmp_path: Path
) -> None:
    path, clock = tmp_path / "keys.json", FakeClock()
    threads = 4
    start = threading.Barrier(threads)
    progress = threading.Condition()
    signed = 0
    readings = threading.local()

    def clock_shared_by_the_threads() -> float:
        if threading.current_thread() is not threading.main_thread():
            readings.count = getattr(readings, "count", 0) + 1
            if readings.count == 1:
                # Every thread finds the check due at the same moment, so all try to reload.
                start.wait(timeout=10)
            else:
                # Only the thread that took the reload reads the clock again: it goes on once
                # every other thread has signed, so they must not have waited for it.
                with progress:
                    assert progress.wait_for(lambda: signed == threads - 1, timeout=5)
        return clock()

    path.write_text(ring_document)
    ring = load_key_ring(path, watch_every=EVERY, clock=clock_shared_by_the_threads)
    old, new = ring.active_key().kid, loads_key_ring(rotated_document).active_key().kid

    def sign() -> str:
        nonlocal signed
        kid = signing_kid(ring)
        with progress:
            signed += 1
            progress.notify_all()
        return kid

    replace_file(path, rotated_document)
    clock.advance()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(sign) for _ in range(threads)]
        kids_signed = sorted(future.result(timeout=60) for future in futures)

    # One thread reloaded and signed with the new ring; the others kept the ring in use.
    assert kids_signed == sorted([old] * (threads - 1) + [new])
    assert signing_kid(ring) == new


def test_load_or_create_follows_the_file_it_created(rotated_document: str, tmp_path: Path) -> None:
    path, clock = tmp_path / "keys.json", FakeClock()
    ring = load_or_create(path, create=True, now=NOW, watch_every=EVERY, clock=clock)

    replace_file(path, rotated_document)
    clock.advance()

    assert signing_kid(ring) == loads_key_ring(rotated_document).active_key().kid


@pytest.mark.parametrize("every", [0.0, -1.0, float("nan"), float("inf")])
def test_the_check_interval_must_be_positive(
    ring_document: str, tmp_path: Path, every: float
) -> None:
    path = tmp_path / "keys.json"
    path.write_text(ring_document)
    with pytest.raises(ValueError, match="interval must be positive"):
        load_key_ring(path, watch_every=every)
