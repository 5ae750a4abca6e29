"""A gateway without federation keys still starts, with the federation off (issue 17).

Production gets its token signing keys from a mounted Secret and never generates keys
(``create_keys`` false). A gateway deployed before the federation existed has no federation key
file: it must keep starting and serving sign-ins, its federation endpoints answering
``not_found`` (OpenID Federation 1.0 §8.9). Federation keys that are named but missing stop the
start with the file's name, as missing signing keys do.
"""

from __future__ import annotations

import datetime
import secrets
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from gateway.keys import KeyFileError, KeyRing, save_key_ring
from gateway.services import build_services
from gateway.settings import Settings


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    keys = tmp_path / "secret" / "keys.json"
    keys.parent.mkdir()
    now = datetime.datetime.now(datetime.UTC)
    save_key_ring(KeyRing.generate(now=now), keys, overwrite=False)
    data = tmp_path / "data"
    data.mkdir()
    return Settings.model_validate(
        {
            "issuer": "http://127.0.0.1:9",
            "insecure_allow_http": True,
            "data_dir": data,
            "keys_file": keys,
            "create_keys": False,
            "national_secret": secrets.token_urlsafe(32),
            "pairwise_secret": secrets.token_urlsafe(32),
            "admin_token": secrets.token_urlsafe(32),
            "session_secret": secrets.token_urlsafe(32),
            "mfa_secret": secrets.token_urlsafe(32),
            **extra,
        }
    )


def test_without_federation_keys_the_gateway_starts_with_the_federation_off(
    tmp_path: Path,
) -> None:
    services = build_services(_settings(tmp_path))
    try:
        assert services.federation is None
        client = create_app(services=services).test_client()
        assert client.get("/.well-known/openid-configuration").status_code == 200
        for path in ("/.well-known/openid-federation", "/federation/list"):
            answer = client.get(path)
            assert answer.status_code == 404
            assert answer.get_json()["error"] == "not_found"
        assert not (tmp_path / "data" / "federation-keys.json").exists()  # nothing made
    finally:
        services.close()


@pytest.mark.parametrize(
    "extra",
    [
        {"federation_keys_file": "named-but-missing.json"},
        {"federation_automatic_registration": True},
    ],
    ids=["named", "automatic-registration"],
)
def test_federation_keys_named_or_needed_but_missing_stop_the_start(
    tmp_path: Path, extra: dict[str, Any]
) -> None:
    if "federation_keys_file" in extra:
        extra = {"federation_keys_file": tmp_path / extra["federation_keys_file"]}
    with pytest.raises(KeyFileError, match="federation"):
        build_services(_settings(tmp_path, **extra))
