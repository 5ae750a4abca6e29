"""A real sign-in at a Keycloak region shows on ``/metrics`` (issue 14): one more sign-in
completed for that region and portal, one more timed call to the region's token endpoint, and a
token issued to the portal. The families are shared by every gateway of the test process, so the
test compares scrapes before and after."""

from __future__ import annotations

import requests
from gateway_fixtures import (
    KeycloakRegion,
    PortalSite,
    RunningGateway,
    register_portal,
    sign_in_at_keycloak,
)
from playwright.sync_api import Page
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(gateway: RunningGateway) -> Samples:
    answer = requests.get(f"{gateway.issuer}/metrics", timeout=10)
    assert answer.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_a_keycloak_sign_in_counts_for_its_region_and_portal(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    portal = register_portal(gateway, site, "metrics-portal")
    token_call = {"region": zj.code, "call": "token", "outcome": "ok"}
    before = scrape(gateway)

    started = portal.start("openid profile", region=zj.code)
    page.goto(started["url"])
    sign_in_at_keycloak(page, zj)
    page.wait_for_url(f"{portal.redirect_uri}**")
    portal.finish(site.last_visit(portal.redirect_uri), started)

    after = scrape(gateway)
    completed = "tongxing_signins_completed_total"
    assert (
        sum(
            v - before.get(key, 0.0)
            for key, v in after.items()
            if key[0] == completed
            and ("region", zj.code) in key[1]
            and ("portal", portal.client_id) in key[1]
        )
        == 1
    ), "no sign-in completed for the region and portal"
    assert (
        value(after, "tongxing_signins_started_total", region=zj.code, portal=portal.client_id)
        + value(after, "tongxing_signins_started_total", region="none", portal=portal.client_id)
        >= 1
    )
    # The gateway redeemed Keycloak's code once: one timed call to its token endpoint.
    count = "tongxing_upstream_request_duration_seconds_count"
    assert value(after, count, **token_call) == value(before, count, **token_call) + 1
    slowest = "tongxing_upstream_request_duration_seconds_bucket"
    assert value(after, slowest, **token_call, le="+Inf") == value(after, count, **token_call)
    assert value(after, "tongxing_upstream_request_duration_seconds_sum", **token_call) > value(
        before, "tongxing_upstream_request_duration_seconds_sum", **token_call
    )
    issued = {"portal": portal.client_id, "grant_type": "authorization_code"}
    assert value(after, "tongxing_tokens_issued_total", **issued) == 1
