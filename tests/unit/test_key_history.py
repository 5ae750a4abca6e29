"""The keys a ring no longer holds (gateway.keys.history), kept for the federation historical keys
endpoint (OpenID Federation 1.0 §8.7): a rotation that drops a retired key keeps its public half
in the key file, with ``iat``, ``exp`` and ``revoked`` when revoked; older files still load."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway import cli
from gateway.keys import (
    InvalidKeyRingError,
    KeyRing,
    KeyRingError,
    dumps_key_ring,
    load_key_ring,
    loads_key_ring,
    save_key_ring,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)
LIFETIME = timedelta(hours=1)


def rotated_twice() -> tuple[KeyRing, set[str]]:
    """A ring whose first active keys were retired, then dropped by the second rotation."""
    ring = KeyRing.generate(now=NOW)
    first = {key.kid for key in ring.keys if key.state == "active"}
    ring.rotate(NOW, LIFETIME)
    ring.rotate(NOW + 2 * LIFETIME, LIFETIME)
    return ring, first


def test_a_rotation_keeps_the_public_half_of_the_key_it_drops() -> None:
    ring, first = rotated_twice()
    assert first.isdisjoint(key.kid for key in ring.keys)  # dropped from the ring
    assert {entry.kid for entry in ring.history} == first
    for entry in ring.history:
        assert not {"d", "p", "q"} & entry.jwk.keys()
        assert entry.expires_at == NOW + LIFETIME  # the end of its retention
    listed = {entry["kid"]: entry for entry in ring.historical_keys()}
    # the keys retired by the second rotation (still held) and the dropped ones
    retired = {key.kid for key in ring.keys if key.state == "retired"}
    assert set(listed) == first | retired
    for kid in first:
        assert listed[kid]["iat"] == int(NOW.timestamp())
        assert listed[kid]["exp"] == int((NOW + LIFETIME).timestamp())
        assert "revoked" not in listed[kid]


def test_the_history_survives_the_key_file_and_old_files_load(tmp_path: Path) -> None:
    ring, first = rotated_twice()
    path = tmp_path / "keys.json"
    save_key_ring(ring, path)
    document = json.loads(path.read_text())
    assert {entry["jwk"]["kid"] for entry in document["history"]} == first
    assert all("d" not in entry["jwk"] for entry in document["history"])
    assert load_key_ring(path).historical_keys() == ring.historical_keys()
    fresh = KeyRing.generate(now=NOW)
    assert "history" not in json.loads(dumps_key_ring(fresh))  # unchanged format without one
    assert loads_key_ring(dumps_key_ring(fresh)).history == ()


def test_a_history_with_a_private_key_or_a_wrong_kid_is_refused() -> None:
    ring, _ = rotated_twice()
    document = json.loads(dumps_key_ring(ring))
    private = json.loads(dumps_key_ring(ring))
    private["history"][0]["jwk"]["d"] = document["keys"][0]["jwk"]["d"]
    with pytest.raises(InvalidKeyRingError, match="public JWK"):
        loads_key_ring(json.dumps(private))
    wrong = json.loads(dumps_key_ring(ring))
    wrong["history"][0]["jwk"]["kid"] = "not-the-thumbprint"
    with pytest.raises(InvalidKeyRingError, match="thumbprint"):
        loads_key_ring(json.dumps(wrong))
    held = json.loads(dumps_key_ring(ring))
    jwk = dict(held["keys"][0]["jwk"])
    public = {name: value for name, value in jwk.items() if name not in ("d", "p", "q")}
    public = {k: v for k, v in public.items() if k not in ("dp", "dq", "qi")}
    held["history"].append({**held["history"][0], "jwk": public})
    with pytest.raises(InvalidKeyRingError, match="still held"):
        loads_key_ring(json.dumps(held))


def test_revoking_a_retired_key_withdraws_it_and_records_the_reason() -> None:
    ring = KeyRing.generate(now=NOW)
    ring.rotate(NOW, LIFETIME)
    retired = next(key for key in ring.keys if key.state == "retired")
    ring.revoke(retired.kid, NOW + timedelta(minutes=5), "compromised")
    assert retired.kid not in {key["kid"] for key in ring.jwks(NOW)["keys"]}
    listed = {entry["kid"]: entry for entry in ring.historical_keys()}
    assert listed[retired.kid]["revoked"] == {
        "revoked_at": int((NOW + timedelta(minutes=5)).timestamp()),
        "reason": "compromised",
    }
    active = ring.active_key()
    with pytest.raises(KeyRingError, match="rotate it out"):
        ring.revoke(active.kid, NOW)
    with pytest.raises(KeyRingError, match="no retired or historical key"):
        ring.revoke("unknown", NOW)
    assert loads_key_ring(dumps_key_ring(ring)).historical_keys() == ring.historical_keys()


def test_the_cli_revokes_and_shows_the_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.json"
    assert cli.main(["keys", "generate", "--file", str(path)]) == 0
    assert cli.main(["keys", "rotate", "--file", str(path)]) == 0
    retired = next(key for key in load_key_ring(path).keys if key.state == "retired")
    capsys.readouterr()
    revoke = ["keys", "revoke", "--file", str(path), retired.kid]
    assert cli.main([*revoke, "--reason", "superseded"]) == 0
    assert cli.main(revoke) == 0  # again: the first revocation and its reason stay
    ring = load_key_ring(path)
    assert retired.kid not in {key.kid for key in ring.keys}
    assert [entry.kid for entry in ring.history] == [retired.kid]
    capsys.readouterr()
    assert cli.main(["keys", "show", "--file", str(path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"kid": retired.kid, "state": "revoked"}.items() <= rows[-1].items()
    listed = {entry["kid"]: entry for entry in ring.historical_keys()}
    assert listed[retired.kid]["revoked"]["reason"] == "superseded"
