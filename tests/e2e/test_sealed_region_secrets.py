"""Region client secrets are sealed at rest, and a sealing-key rotation keeps sign-ins working
(issue 14 "Secrets at rest", THREAT_MODEL row 8: no clear-text secret in a database column).

A Keycloak realm is registered under one sealing key; the raw row holds no clear secret. The key
is rotated as docs/security/secrets.md says (new key first, ``tongxing secrets reseal``, old key
removed) and a person signs in through the region with Chromium on the restarted gateway.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from gateway_fixtures import (
    PortalSite,
    RunningGateway,
    keycloak_region,
    register_portal,
    sign_in_at_keycloak,
)
from playwright.sync_api import Page
from sqlalchemy import select
from tongxing_dev.keycloak import KeycloakEndpoint
from tongxing_dev.process import free_port
from werkzeug.serving import make_server

from gateway.app import create_app
from gateway.cli import main
from gateway.errors import RegionSecretUnreadable
from gateway.registry import Registry
from gateway.sealing import RegionSecretSealer
from gateway.services import build_services
from gateway.settings import Settings
from gateway.store.schema import regions
from gateway.store.sql import SqlStore

OLD_KEY = "old-sealing-key-" + secrets.token_urlsafe(24)
NEW_KEY = "new-sealing-key-" + secrets.token_urlsafe(24)


@contextmanager
def gateway_with(base: dict[str, Any], sealing_keys: list[str]) -> Iterator[RunningGateway]:
    settings = Settings.model_validate({**base, "sealing_keys": sealing_keys})
    services = build_services(settings)
    port = int(base["issuer"].rsplit(":", 1)[1])
    server = make_server("127.0.0.1", port, create_app(services=services), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield RunningGateway(
            issuer=settings.issuer_url,
            admin_token=settings.admin_token.get_secret_value(),
            operator_token="",
            services=services,
            server=server,
        )
    finally:
        server.shutdown()
        server.server_close()
        services.close()


def raw_region_row(data_dir: Path) -> str:
    store = SqlStore.from_url(f"sqlite:///{data_dir / 'tongxing.db'}")
    try:
        with store.engine.connect() as conn:
            document = conn.execute(
                select(regions.c.document).where(regions.c.key == "zj")
            ).scalar_one()
    finally:
        store.close()
    return json.dumps(document)


def test_a_rotated_sealing_key_keeps_keycloak_sign_ins_working_and_no_row_holds_the_secret(
    tmp_path: Path,
    keycloak: KeycloakEndpoint,
    page: Page,
    site: PortalSite,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data_dir = tmp_path / "gateway"
    base: dict[str, Any] = {
        "issuer": f"http://127.0.0.1:{free_port()}",
        "data_dir": data_dir,
        "create_keys": True,
        "insecure_allow_http": True,
        **{
            key: secrets.token_urlsafe(32)
            for key in (
                "national_secret",
                "pairwise_secret",
                "admin_token",
                "session_secret",
                "mfa_secret",
            )
        },
    }
    with gateway_with(base, [OLD_KEY]) as first:
        zj = keycloak_region(keycloak, first, "zj")
    zj.admin.change_current_realm(zj.realm)
    client_uuid = zj.admin.get_client_id("tongxing")
    assert client_uuid is not None
    keycloak_secret = zj.admin.get_client_secrets(client_uuid)["value"]
    try:
        sealed_old = raw_region_row(data_dir)
        assert keycloak_secret not in sealed_old
        assert '"client_secret"' not in sealed_old
        assert '"client_secret_sealed"' in sealed_old

        # The new key alone cannot open what the old one sealed: that is why reseal comes first.
        store = SqlStore.from_url(f"sqlite:///{data_dir / 'tongxing.db'}")
        try:
            new_only = RegionSecretSealer.from_keys([NEW_KEY], fallback=base["mfa_secret"])
            with pytest.raises(RegionSecretUnreadable):
                Registry(store, sealer=new_only).region("zj")
        finally:
            store.close()

        # The rotation's middle step, as an operator runs it: new key first, old key after.
        for name, value in base.items():
            monkeypatch.setenv(f"TONGXING_{name.upper()}", str(value))
        monkeypatch.setenv("TONGXING_SEALING_KEYS", json.dumps([NEW_KEY, OLD_KEY]))
        assert main(["secrets", "reseal"]) == 0
        assert main(["secrets", "reseal"]) == 0  # nothing left to do: all under the first key
        sealed_new = raw_region_row(data_dir)
        assert sealed_new != sealed_old
        assert keycloak_secret not in sealed_new

        # The old key removed: the gateway signs people in through the region.
        with gateway_with(base, [NEW_KEY]) as second:
            portal = register_portal(second, site, "sealed")
            started = portal.start("openid profile", region="zj")
            page.goto(started["url"])
            sign_in_at_keycloak(page, zj)
            page.wait_for_url(f"{portal.redirect_uri}**")
            claims = portal.finish(site.last_visit(portal.redirect_uri), started)["claims"]
            assert claims["sub"]
            assert claims["acr"] == "loa1"
    finally:
        zj.admin.change_current_realm("master")
        zj.admin.delete_realm(zj.realm)
