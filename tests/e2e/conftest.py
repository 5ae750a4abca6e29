"""Fixtures the gateway's end-to-end modules share: each module gets its own gateway, its own
zj realm in the shared Keycloak, its own portal web server, and a fresh browser context per test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gateway_fixtures import (
    KeycloakRegion,
    PortalSite,
    RunningGateway,
    keycloak_region,
    start_gateway,
)
from playwright.sync_api import Browser, Page
from tongxing_dev.keycloak import KeycloakEndpoint


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    yield from start_gateway(tmp_path_factory.mktemp("gateway"))


@pytest.fixture(scope="module")
def zj(keycloak: KeycloakEndpoint, gateway: RunningGateway) -> Iterator[KeycloakRegion]:
    region = keycloak_region(keycloak, gateway, "zj")
    yield region
    region.admin.change_current_realm("master")
    region.admin.delete_realm(region.realm)


@pytest.fixture(scope="module")
def site() -> Iterator[PortalSite]:
    portals = PortalSite()
    yield portals
    portals.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="zh-CN")
    yield context.new_page()
    context.close()
