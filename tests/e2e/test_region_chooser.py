"""The chooser at national scale (issue 15): 80 regions registered through the admin API, shown
grouped by kind, searched without JavaScript, the remembered region first, and the language the
portal asked for (``ui_locales``, OIDC Core §3.1.2.1) leading.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gateway_fixtures import KeycloakRegion, PortalSite, RunningGateway, register_portal
from playwright.sync_api import Browser, Page

# 80 with zj: 21 more provinces, 4 municipalities, 5 autonomous regions, 2 SARs, the XPCC, and
# 46 national departments.
KINDS = {
    "province": (21, "省", "Province"),
    "municipality": (4, "市", "Municipality"),
    "autonomous-region": (5, "自治区", "Autonomous region"),
    "sar": (2, "特区", "SAR"),
    "corps": (1, "兵团", "Corps"),
    "department": (46, "部门", "Department"),
}
GROUP_ORDER = ["province", "municipality", "autonomous-region", "sar", "corps", "department"]


@pytest.fixture(scope="module")
def eighty(gateway: RunningGateway, zj: KeycloakRegion) -> Iterator[list[str]]:
    codes = []
    for kind, (count, zh, en) in KINDS.items():
        for i in range(1, count + 1):
            code = f"{kind[:3]}-{i:02d}"
            body = {
                "names": {"zh": f"{zh}{i:02d}", "en": f"{en} {i:02d}"},
                "kind": kind,
                "issuer": f"https://{code}.idp.example.cn",
                "client_id": "tongxing",
                "client_secret": "s" * 24,
            }
            answer = gateway.admin("PUT", f"/regions/{code}", body)
            assert answer.status_code == 201, answer.text
            codes.append(code)
    yield codes
    for code in codes:
        gateway.admin("DELETE", f"/regions/{code}")


@pytest.fixture
def no_script(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="zh-CN", java_script_enabled=False)
    yield context.new_page()
    context.close()


def test_eighty_regions_are_grouped_searched_without_javascript_and_remembered(
    gateway: RunningGateway,
    zj: KeycloakRegion,
    site: PortalSite,
    eighty: list[str],
    no_script: Page,
) -> None:
    page = no_script
    portal = register_portal(gateway, site, "chooser")
    shown = page.goto(portal.start()["url"])
    assert shown is not None
    size = len(shown.body())
    print(f"chooser with 80 regions: {size} bytes")  # the size issue 15 asks for
    assert size < 64 * 1024
    assert page.locator("input[name=region]").count() == 80
    groups = page.locator("fieldset.region-group").evaluate_all("fs => fs.map(f => f.id)")
    assert groups == [f"group-{kind}" for kind in GROUP_ORDER]
    assert page.locator("#group-province legend").inner_text() == "省 Provinces"
    assert page.locator("#group-department input").count() == 46

    # The search is a plain GET form: it narrows the list, the pending form handle kept.
    page.fill("#region-search", "department 07")
    page.click("#search-button")
    page.wait_for_selector("#search-result")
    assert page.locator("input[name=region]").evaluate_all("i => i.map(e => e.value)") == ["dep-07"]
    page.fill("#region-search", "浙江")
    page.click("#search-button")
    page.wait_for_selector("#search-result")
    assert page.locator("input[name=region]").evaluate_all("i => i.map(e => e.value)") == ["zj"]
    page.check("input[value=zj]")  # choosing from a search result goes to the region
    page.click("button[type=submit]")
    page.wait_for_selector("#kc-form-login, #username")
    assert f"/realms/{zj.realm}/" in page.url

    # Nothing matches: said so, with the way back to the whole list.
    page.goto(portal.start()["url"])
    assert page.locator("#group-last input[value=zj]").is_checked()  # remembered, first
    groups = page.locator("fieldset.region-group").evaluate_all("fs => fs.map(f => f.id)")
    assert groups[0] == "group-last"
    assert page.locator("input[name=region]").count() == 80
    page.fill("#region-search", "亚特兰蒂斯")
    page.click("#search-button")
    assert "没有与“亚特兰蒂斯”匹配的地区" in page.locator("#no-match").inner_text()
    assert page.locator("input[name=region]").count() == 0
    page.click("#show-all")
    assert page.locator("input[name=region]").count() == 80


def test_ui_locales_en_makes_english_lead_on_every_page_of_the_sign_in(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, no_script: Page
) -> None:
    page = no_script
    portal = register_portal(gateway, site, "english")
    page.goto(portal.start("openid profile", ui_locales="en")["url"])
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text() == "Choose the region where you registered"
    assert page.locator("p[lang=zh-CN]").first.inner_text() == "选择您注册的地区"
    # The search's page has no ui_locales of its own: the pending authorization keeps it.
    page.fill("#region-search", "zhe")
    page.click("#search-button")
    assert page.locator("html").get_attribute("lang") == "en"

    page.goto(portal.start()["url"])  # no ui_locales, a Chinese browser: Chinese leads
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator("h1").inner_text() == "选择您注册的地区"
