"""The npm protocol peers are real: oidc-provider serves discovery, openid-client reads it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from tongxing_dev import ComponentError, peers


@pytest.fixture
def oidc_provider(node_peers: Path, tmp_path: Path) -> Iterator[str]:
    server, issuer = peers.start_op(
        tmp_path,
        client={
            "client_id": "portal-smoke",
            "client_secret": "smoke-secret-0123456789",
            "redirect_uris": ["http://127.0.0.1/callback"],
        },
    )
    try:
        yield issuer
    finally:
        server.stop()


def test_oidc_provider_serves_its_own_discovery(oidc_provider: str) -> None:
    response = requests.get(f"{oidc_provider}/.well-known/openid-configuration", timeout=5)
    assert response.status_code == 200
    metadata = response.json()
    assert metadata["issuer"] == oidc_provider
    assert "S256" in metadata["code_challenge_methods_supported"]
    keys = requests.get(metadata["jwks_uri"], timeout=5).json()["keys"]
    assert keys, "oidc-provider publishes signing keys"


def test_openid_client_reads_oidc_providers_discovery(oidc_provider: str) -> None:
    metadata = peers.rp("discover", oidc_provider)
    assert metadata["issuer"] == oidc_provider
    assert metadata["token_endpoint"].startswith(oidc_provider)


def test_openid_client_refuses_an_issuer_that_does_not_match(oidc_provider: str) -> None:
    # Discovery from a URL whose issuer differs must fail (OIDC Discovery §4.3).
    wrong = oidc_provider.replace("127.0.0.1", "localhost")
    with pytest.raises(ComponentError, match=r"rp\.mjs discover"):
        peers.rp("discover", wrong)
