"""`tongxing demo` end to end: Keycloak realms as regions, the gateway, the demo portals, Chromium.

The demo runs in-process on free ports with a realm prefix of its own, against the harness's
Keycloak; a person clicks through single sign-on, single logout and roaming between regions.
Its enterprise (issue 16) is registered as the walkthrough says: the e-business-licence region,
the enterprise portal and the loa3 portal, the proofing provider in discovery; in Chromium the
legal representative signs in for the enterprise and grants the agent a mandate, and the agent,
a citizen of 浙江, acts for the enterprise. Then `tongxing demo` runs as a process of its own
and is stopped the way `kill` stops it.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page
from tongxing_dev.keycloak import KeycloakEndpoint

from gateway.mandates import ACTING_FOR_CLAIM
from tongxing_demo.demo import PROOFED_PERSON, Demo, DemoOptions
from tongxing_demo.federation import (
    AGENT,
    CITIZENS,
    ENTERPRISE,
    ENTERPRISE_PORTAL,
    ENTERPRISE_REGION,
    PROOFED_PORTAL,
    PROOFING,
    REGIONS,
    REPRESENTATIVE,
    TRUST_FRAMEWORK,
)
from tongxing_demo.realms import KeycloakAccess, RealmProvisioner

CHOOSER_SCREENSHOT = Path("/tmp/tongxing-demo-chooser.png")  # noqa: S108 - the lead picks a home


@pytest.fixture(scope="module")
def demo(keycloak: KeycloakEndpoint, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    running = Demo(
        DemoOptions(
            keycloak=KeycloakAccess(keycloak.url, keycloak.admin_user, keycloak.admin_password),
            data_dir=tmp_path_factory.mktemp("demo"),
            gateway_port=0,
            portal_ports=(0, 0, 0, 0),
            realm_prefix=f"demo-{uuid.uuid4().hex[:6]}-",
        )
    )
    running.start()
    try:
        yield running
    finally:
        running.stop()
        running.delete_realms()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def claims(page: Page) -> dict[str, str]:
    rows = page.locator("#claims tr[data-claim]")
    return {
        str(row.get_attribute("data-claim")): row.locator("td").inner_text() for row in rows.all()
    }


def sign_in_at_region(page: Page, demo: Demo, region: str, who: int = 0) -> None:
    """On the gateway's chooser: pick ``region``; then the person's own Keycloak login page."""
    page.check(f"input[name=region][value={region}]")
    page.click("button[type=submit]")
    page.wait_for_selector("#kc-login")
    assert f"/realms/{demo.realms[region]}/" in page.url
    citizen, password = demo.citizens[who]
    page.fill("#username", citizen.username)
    page.fill("#password", password)
    page.click("#kc-login")


def test_demo_single_sign_on_single_logout_and_roaming(demo: Demo, page: Page) -> None:
    portal_a, portal_b, *_ = demo.portals
    assert demo.citizens[0][0] is CITIZENS[0]
    assert {"zj", "sh"} <= set(CITIZENS[0].regions)

    # Portal A: sign in, choose 浙江 on the gateway's chooser, sign in at the 浙江 realm.
    page.goto(portal_a.url)
    page.click("#sign-in")
    page.wait_for_selector("input[name=region]")
    assert page.url.startswith(f"{demo.gateway_url}/authorize")
    assert page.locator("h1").first.inner_text() == "选择您注册的地区"
    assert page.locator("ul.regions li").count() == len(REGIONS)
    page.screenshot(path=str(CHOOSER_SCREENSHOT), full_page=True)
    sign_in_at_region(page, demo, "zj")
    page.wait_for_selector("#claims")
    assert page.url == portal_a.url
    first = claims(page)
    assert first["name"] == "张三"
    assert first["home_region"] == "zj"
    assert first["iss"] == demo.gateway_url
    assert first["aud"] == portal_a.config.client_id
    assert first["acr"] == "loa1"

    # Portal B: single sign-on, no chooser and no password; a pairwise subject of its own.
    page.goto(portal_b.url)
    page.click("#sign-in")
    page.wait_for_selector("#claims")
    assert page.url == portal_b.url
    second = claims(page)
    assert second["name"] == "张三"
    assert second["sub"] != first["sub"]
    assert second["auth_time"] == first["auth_time"]

    # Sign out at portal B: RP-initiated logout, then back-channel logout ends portal A's session.
    page.click("#sign-out")
    page.wait_for_selector("#signed-out")
    assert page.url.startswith(portal_b.config.post_logout_redirect_uri)
    page.goto(portal_a.url)
    assert page.locator("#ended-elsewhere").is_visible()
    assert page.locator("#sign-in").is_visible()

    # Roaming: the same person through 上海 reaches the same national identity at portal A.
    page.click("#sign-in")
    sign_in_at_region(page, demo, "sh")
    page.wait_for_selector("#claims")
    roamed = claims(page)
    assert roamed["home_region"] == "sh"
    assert roamed["sub"] == first["sub"]
    assert roamed["sid"] != first["sid"]


# --- the enterprise and the proofing step (issue 16) -------------------------------------------


def test_the_enterprise_region_portals_and_proofing_provider_are_registered(demo: Demo) -> None:
    services = demo.services
    assert services is not None
    ebl = services.registry.region(ENTERPRISE_REGION)
    assert ebl is not None
    assert ebl.kind.value == "enterprise"
    assert ebl.issuer.endswith(f"/realms/{demo.realms[ENTERPRISE_REGION]}")
    business = services.registry.portal(ENTERPRISE_PORTAL.client_id)
    assert business is not None
    assert business.subject_kinds == "both"
    assert "enterprise" in business.scopes
    tax = services.registry.portal(PROOFED_PORTAL.client_id)
    assert tax is not None
    assert tax.minimum_level == "loa3"

    discovery = requests.get(f"{demo.gateway_url}/.well-known/openid-configuration", timeout=5)
    metadata = discovery.json()
    assert metadata["verified_claims_supported"] is True
    assert metadata["trust_frameworks_supported"] == [TRUST_FRAMEWORK]
    assert {"name", "birthdate"} <= set(metadata["claims_in_verified_claims_supported"])
    # The proofing provider is a live OpenID Provider in the demo's Keycloak.
    assert demo.proofing is not None
    provider = requests.get(f"{demo.proofing.issuer}/.well-known/openid-configuration", timeout=5)
    assert provider.json()["issuer"] == demo.proofing.issuer

    banner = demo.banner()
    for expected in (
        REPRESENTATIVE.username,
        AGENT.username,
        AGENT.identity_number,
        ENTERPRISE.credit_code,
        f"{demo.gateway_url}/account/mandates",
        TRUST_FRAMEWORK,
        "TONGXING_PROOFING_PROVIDERS",
        *(portal.url for portal in demo.portals),
    ):
        assert expected in banner, expected


def acting_for(page: Page) -> dict[str, object]:
    shown = claims(page)[ACTING_FOR_CLAIM]
    value = json.loads(shown)
    assert isinstance(value, dict)
    return value


def test_the_representative_grants_a_mandate_and_the_agent_acts_for_the_enterprise(
    demo: Demo, page: Page, browser: Browser
) -> None:
    business = demo.portals[2]
    who = {citizen.username: index for index, (citizen, _) in enumerate(demo.citizens)}

    # The legal representative signs in at the e-business-licence system for the enterprise.
    page.goto(business.url)
    page.click("#sign-in")
    page.wait_for_selector("input[name=region]")
    sign_in_at_region(page, demo, ENTERPRISE_REGION, who[REPRESENTATIVE.username])
    page.wait_for_url(f"{demo.gateway_url}/acting-for")
    page.click("label[data-choice^='seat:']")
    page.click("#act-for")
    page.wait_for_selector("#claims")
    seat = acting_for(page)
    assert seat["role"] == "legal_representative"
    assert seat["credit_code"] == ENTERPRISE.credit_code
    assert seat["name"] == ENTERPRISE.name

    # She grants the agent a mandate for the enterprise portal: a one-time invitation code.
    page.goto(f"{demo.gateway_url}/account/mandates")
    page.fill("#agent-id-number", AGENT.identity_number)
    page.check(f"input[value='{ENTERPRISE_PORTAL.client_id}']")
    until = datetime.date.today() + datetime.timedelta(days=30)
    page.fill("#valid-until", until.isoformat())
    page.click("#grant-mandate")
    invitation = page.locator("#invitation-code").inner_text().strip()
    assert invitation

    # The agent, a citizen of 浙江, in a browser of his own: signs in as himself, accepts the
    # invitation, and then acts for the enterprise at the same portal.
    context = browser.new_context(locale="zh-CN")
    try:
        agent = context.new_page()
        agent.set_default_timeout(15_000)
        agent.goto(business.url)
        agent.click("#sign-in")
        agent.wait_for_selector("input[name=region]")
        sign_in_at_region(agent, demo, "zj", who[AGENT.username])
        agent.wait_for_selector("#claims")
        assert ACTING_FOR_CLAIM not in claims(agent)
        agent.goto(f"{demo.gateway_url}/account/mandates")
        agent.fill("#invitation-input", invitation)
        agent.click("#accept-mandate")
        agent.wait_for_selector("ul.held li")
        assert ENTERPRISE.name in agent.locator("ul.held li").first.inner_text()
        agent.goto(f"{business.config.base_url}/login")  # signed in already: sign in again
        agent.wait_for_url(f"{demo.gateway_url}/acting-for")
        agent.click("label[data-choice^='mandate:']")
        agent.click("#act-for")
        agent.wait_for_selector("#claims")
        acted = acting_for(agent)
        assert acted["role"] == "agent"
        assert acted["name"] == ENTERPRISE.name
        assert acted["mandate"]
        assert claims(agent)["home_region"] == "zj"
    finally:
        context.close()


def test_a_citizen_is_proofed_at_the_loa3_portal(demo: Demo, page: Page) -> None:
    tax = demo.portals[3]
    who = {citizen.username: index for index, (citizen, _) in enumerate(demo.citizens)}
    person, password = demo.citizens[who[PROOFED_PERSON.username]]
    assert demo.proofing is not None

    page.goto(tax.url)
    page.click("#sign-in")
    page.wait_for_selector("input[name=region]")
    sign_in_at_region(page, demo, "mps", who[person.username])
    # loa2 from the region, loa3 needed: on to the proofing provider, as the same person.
    page.wait_for_url(f"{demo.proofing.issuer}/**")
    page.fill("#username", person.username)
    page.fill("#password", password)
    page.click("#kc-login")
    # Verified claims leave only with the person's consent.
    page.wait_for_url(f"{demo.gateway_url}/**")
    page.click("button[value=allow]")
    page.wait_for_selector("#claims")
    shown = claims(page)
    assert shown["acr"] == "loa3"
    verified = json.loads(shown["verified_claims"])
    assert verified["verification"]["trust_framework"] == TRUST_FRAMEWORK
    assert verified["claims"] == {
        "name": person.full_name,
        "birthdate": "1978-05-15",
    }


# --- stopping ----------------------------------------------------------------------------------

TONGXING = Path(sys.executable).with_name("tongxing")
GATEWAY_LINE = re.compile(r"Gateway \(OpenID Provider\)\s+(http://127\.0\.0\.1:\d+)/")


def wait_for(output: Path, pattern: re.Pattern[str], process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = pattern.search(output.read_text(encoding="utf-8", errors="replace"))
        if found:
            return found.group(1)
        assert process.poll() is None, output.read_text(encoding="utf-8", errors="replace")
        time.sleep(0.2)
    raise AssertionError(f"the demo did not start: {output.read_text(encoding='utf-8')}")


def listening(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def test_sigterm_stops_the_demo_within_seconds(keycloak: KeycloakEndpoint, tmp_path: Path) -> None:
    prefix = f"demo-{uuid.uuid4().hex[:6]}-"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TONGXING_")}
    env |= {
        "TONGXING_DEMO_KEYCLOAK_URL": keycloak.url,
        "TONGXING_DEMO_KEYCLOAK_ADMIN": keycloak.admin_user,
        "TONGXING_DEMO_KEYCLOAK_PASSWORD": keycloak.admin_password,
    }
    output = tmp_path / "demo.out"
    argv = [str(TONGXING), "demo", "--data-dir", str(tmp_path / "data"), "--realm-prefix", prefix]
    ports = ["--port", "0", "--portal-a-port", "0", "--portal-b-port", "0"]
    ports += ["--enterprise-portal-port", "0", "--loa3-portal-port", "0"]
    with output.open("wb") as out:
        process = subprocess.Popen(
            [*argv, *ports], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path
        )
    try:
        gateway = wait_for(output, GATEWAY_LINE, process)
        discovery = requests.get(f"{gateway}/.well-known/openid-configuration", timeout=5)
        assert discovery.json()["issuer"] == gateway

        os.kill(process.pid, signal.SIGTERM)  # what `kill <pid>` sends
        started = time.monotonic()
        assert process.wait(timeout=15) == 0
        assert time.monotonic() - started < 10
        assert "Stopping the demo" in output.read_text(encoding="utf-8")
        assert not listening(gateway)  # its ports are free again
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        provisioner = RealmProvisioner(
            KeycloakAccess(keycloak.url, keycloak.admin_user, keycloak.admin_password)
        )
        for code in [*(region.code for region in REGIONS), PROOFING.code]:
            provisioner.delete(f"{prefix}{code}")
