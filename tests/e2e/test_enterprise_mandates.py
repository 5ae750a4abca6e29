"""Legal persons and acting for them (issue 16), against real servers: the e-business-licence
system is a Keycloak realm made from ``realms/enterprise.json.j2``; the agent's home region is a
province realm; portals are driven by openid-client and headless Chromium.

The legal representative signs in through the enterprise region, and an enterprise portal sees
the enterprise; the representative grants a mandate; the agent, signed in through their
province, accepts it and acts for the enterprise; after the revocation the agent is refused.
A malformed credit code gets the clear page. Every grant, acceptance, use, refusal and
revocation leaves an audit record.
"""

from __future__ import annotations

import datetime
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from gateway_fixtures import (
    KeycloakRegion,
    Portal,
    PortalSite,
    RunningGateway,
    add_keycloak_person,
    register_portal,
    sign_in_at_keycloak,
)
from keycloak import KeycloakAdmin, KeycloakOpenIDConnection
from playwright.sync_api import Browser, Page, expect
from realm_operator.models import RegionSpec
from realm_operator.templates import GATEWAY_CLIENT_ID, RealmTemplates
from tongxing_dev.keycloak import KeycloakEndpoint

from gateway.identity import check_character
from gateway.mandates import ACTING_FOR_CLAIM
from gateway.observe import Event, MandateAccepted

ENTERPRISE = "914403001922038216"  # a real, published code (GB 32100-2015 check holds)
REPRESENTATIVE_ID = "11010519491231002X"  # the worked example of GB 11643-1999 (zj's person)
BAD_CHECK = "91350100M000100Y44"  # the standard's worked example with a wrong check character


def _identity_number(stem: str) -> str:
    return stem + check_character(stem)


AGENT_ID = _identity_number("33010619800101123")


@dataclass
class EnterpriseRealm:
    code: str
    realm: str
    admin: KeycloakAdmin

    def person(self, username: str, identity_number: str, code: str, role: str) -> KeycloakRegion:
        password = "Ent-" + secrets.token_urlsafe(12) + "!1a"
        self.admin.change_current_realm(self.realm)
        self.admin.create_user(
            {
                "username": username,
                "firstName": "法人",
                "lastName": "王",
                "email": f"{username}@example.cn",
                "emailVerified": True,
                "enabled": True,
                "attributes": {
                    "id_number": [identity_number],
                    "credit_code": [code],
                    "enterprise_name": ["华为技术有限公司"],
                    "enterprise_type": ["有限责任公司"],
                    "enterprise_role": [role],
                },
                "credentials": [{"type": "password", "value": password, "temporary": False}],
            }
        )
        return KeycloakRegion(self.code, self.realm, self.admin, username, password)


@pytest.fixture(scope="module")
def ebl(keycloak: KeycloakEndpoint, gateway: RunningGateway) -> Iterator[EnterpriseRealm]:
    """The e-business-licence system: a realm rendered from the enterprise template, as the
    operator would make it, registered with the gateway as a region of kind ``enterprise``."""
    code = f"ebl-{uuid.uuid4().hex[:6]}"
    spec = RegionSpec.model_validate(
        {
            "code": code,
            "names": {"zh": "电子营业执照", "en": "Electronic business licence"},
            "kind": "enterprise",
            "keycloak": {"url": keycloak.url, "realm": code},
        }
    )
    blueprint = RealmTemplates().render_for(spec, gateway.issuer)
    admin = KeycloakAdmin(
        connection=KeycloakOpenIDConnection(
            server_url=keycloak.url,
            username=keycloak.admin_user,
            password=keycloak.admin_password,
            realm_name="master",
            user_realm_name="master",
        )
    )
    admin.create_realm(blueprint.creation())
    admin.change_current_realm(code)
    client = admin.get_client_id(GATEWAY_CLIENT_ID)
    assert client is not None
    secret = admin.get_client_secrets(client)["value"]
    response = gateway.admin(
        "PUT",
        f"/regions/{code}",
        {
            "names": {"zh": "电子营业执照", "en": "Electronic business licence"},
            "kind": "enterprise",
            "issuer": keycloak.issuer(code),
            "client_id": GATEWAY_CLIENT_ID,
            "client_secret": secret,
        },
    )
    assert response.status_code == 201, response.text
    yield EnterpriseRealm(code, code, admin)
    admin.change_current_realm("master")
    admin.delete_realm(code)


@pytest.fixture
def other_page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="zh-CN")
    yield context.new_page()
    context.close()


def _act(page: Page, portal: Portal, site: PortalSite, started: dict[str, Any]) -> Any:
    expect(page.locator("#acting-for")).to_be_visible()
    page.click("#act-for")
    page.wait_for_url(f"{portal.redirect_uri}**")
    return portal.finish(site.last_visit(portal.redirect_uri), started)


def test_a_representative_grants_an_agent_acts_and_is_refused_after_revocation(
    gateway: RunningGateway,
    zj: KeycloakRegion,
    ebl: EnterpriseRealm,
    site: PortalSite,
    page: Page,
    other_page: Page,
) -> None:
    heard: list[Event] = []
    gateway.services.events.subscribe(heard.append)
    portal = register_portal(
        gateway,
        site,
        "ent",
        subject_kinds="enterprises",
        sector="market-regulation",
        scopes=["openid", "profile", "enterprise"],
    )
    people = register_portal(gateway, site, "people")
    representative = ebl.person("wangfa", REPRESENTATIVE_ID, ENTERPRISE, "legal_representative")

    # 1. The legal representative signs in through the e-business-licence system; the
    #    enterprise portal sees the person and the enterprise, with the credit code (it is
    #    registered for the enterprise scope).
    started = portal.start("openid profile enterprise", region=ebl.code)
    page.goto(started["url"])
    sign_in_at_keycloak(page, representative)
    page.wait_for_url(f"{gateway.issuer}/acting-for")
    expect(page.locator("label[data-choice^='seat:']")).to_contain_text("华为技术有限公司")
    tokens = _act(page, portal, site, started)
    acting = tokens["claims"][ACTING_FOR_CLAIM]
    assert acting["role"] == "legal_representative"
    assert acting["credit_code"] == ENTERPRISE
    assert acting["name"] == "华为技术有限公司"
    assert acting["type"] == "有限责任公司"
    assert acting["sub"] != tokens["claims"]["sub"]
    assert "mandate" not in acting

    # 2. A mandate for the agent: by their identity number (kept only as a keyed hash), as a
    #    one-time invitation. A portal that serves people only cannot be named.
    page.goto(f"{gateway.issuer}/account/mandates")
    expect(page.locator("#representing")).to_be_visible()
    expect(page.locator(f"input[value='{people.client_id}']")).to_have_count(0)
    page.fill("#agent-id-number", AGENT_ID)
    page.check(f"input[value='{portal.client_id}']")
    until = datetime.date.today() + datetime.timedelta(days=30)
    page.fill("#valid-until", until.isoformat())
    page.click("#grant-mandate")
    invitation = page.locator("#invitation-code").inner_text().strip()
    assert len(invitation) >= 20
    assert AGENT_ID not in page.content()
    expect(page.locator("ul.mandates li .state")).to_contain_text("待接受")

    # 3. The agent signs in through their province: with no mandate yet, the enterprise
    #    portal refuses them with a page that says why.
    agent = add_keycloak_person(zj, "agent-" + uuid.uuid4().hex[:4], AGENT_ID)
    started = portal.start("openid profile enterprise", region="zj")
    other_page.goto(started["url"])
    sign_in_at_keycloak(other_page, agent)
    expect(other_page.locator("h1")).to_contain_text("没有可代表的企业")

    # The invitation, taken by the representative themselves, is not theirs to accept.
    page.fill("#invitation-input", invitation)
    page.click("#accept-mandate")
    expect(page.locator("#mandate-error")).to_contain_text("不属于您")

    # The agent accepts it, and acts for the enterprise (the SSO session answers).
    other_page.goto(f"{gateway.issuer}/account/mandates")
    other_page.fill("#invitation-input", invitation)
    other_page.click("#accept-mandate")
    expect(other_page.locator("ul.held li")).to_contain_text("华为技术有限公司")
    started = portal.start("openid profile", region="zj")
    other_page.goto(started["url"])
    other_page.wait_for_url(f"{gateway.issuer}/acting-for")
    tokens = _act(other_page, portal, site, started)
    acting = tokens["claims"][ACTING_FOR_CLAIM]
    assert acting["role"] == "agent"
    assert acting["name"] == "华为技术有限公司"
    assert acting["mandate"]
    assert "credit_code" not in acting  # the portal did not ask for the enterprise scope
    info = portal.rp("userinfo", tokens["access_token"], tokens["claims"]["sub"])
    assert info[ACTING_FOR_CLAIM]["mandate"] == acting["mandate"]

    # 4. The representative revokes: userinfo no longer says the agent acts for the
    #    enterprise, and the agent's next sign-in at the portal is refused.
    page.goto(f"{gateway.issuer}/account/mandates")
    page.click(f"li[data-mandate='{acting['mandate']}'] button.revoke")
    expect(page.locator(f"li[data-mandate='{acting['mandate']}'] .state")).to_contain_text("已撤销")
    info = portal.rp("userinfo", tokens["access_token"], tokens["claims"]["sub"])
    assert ACTING_FOR_CLAIM not in info
    started = portal.start("openid profile", region="zj")
    other_page.goto(started["url"])
    expect(other_page.locator("h1")).to_contain_text("没有可代表的企业")

    # Every grant, acceptance, use, refusal and revocation is in the audit trail.
    kinds = [e.kind for e in heard]
    for kind in (
        "enterprise.signed_in",
        "mandate.granted",
        "mandate.accepted",
        "mandate.used",
        "mandate.revoked",
        "mandate.refused",
    ):
        assert kind in kinds, kind
    agent_subject = next(e for e in heard if isinstance(e, MandateAccepted)).subject
    audited = {
        record.entry.kind
        for record in gateway.services.store.recent_audit(
            agent_subject, frozenset({"mandate.accepted", "mandate.used", "mandate.refused"}), 20
        )
    }
    assert audited == {"mandate.accepted", "mandate.used", "mandate.refused"}
    assert AGENT_ID not in repr(heard)
    assert ENTERPRISE not in repr(heard)


def test_a_malformed_credit_code_gets_the_clear_page(
    gateway: RunningGateway, ebl: EnterpriseRealm, site: PortalSite, page: Page
) -> None:
    portal = register_portal(gateway, site, "ent-bad", subject_kinds="enterprises")
    person = ebl.person("badcode", _identity_number("44030519900101123"), BAD_CHECK, "agent")
    started = portal.start("openid profile", region=ebl.code)
    page.goto(started["url"])
    response_seen: list[int] = []
    page.on(
        "response",
        lambda r: response_seen.append(r.status) if "/callback/" in r.url else None,
    )
    sign_in_at_keycloak(page, person)
    expect(page.locator("h1")).to_contain_text("统一社会信用代码无效")
    expect(page.locator("body")).to_contain_text("Invalid unified social credit code")
    assert BAD_CHECK not in page.content()
    assert response_seen == [502]
    assert not site.visits or all(portal.redirect_uri not in v for v in site.visits)
