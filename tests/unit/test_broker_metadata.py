"""The discovery/JWKS cache: lifetimes within bounds, throttled refetch, stale service, no sockets.

Requests never leave the process: an in-process ``requests`` transport adapter answers them, and
a fake clock moves time. The same cache against a real oidc-provider is tested in
tests/integration/test_broker_oidc_provider.py.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import requests
from joserfc.jwk import RSAKey
from pydantic import SecretStr
from requests.adapters import BaseAdapter
from urllib3 import HTTPResponse

from gateway.broker.errors import InvalidUpstreamToken, RegionMetadataInvalid, RegionUnavailable
from gateway.broker.metadata import CachePolicy, MetadataCache, ProviderMetadata, cache_lifetime
from gateway.broker.transport import HttpLimits, new_session
from gateway.registry import Names, Region, RegionKind

ISSUER = "https://idp.zj.example.cn/realms/zj"
JWKS_URI = ISSUER + "/protocol/openid-connect/certs"
POLICY = CachePolicy()

Answer = tuple[int, dict[str, str], bytes]


class FakeClock:
    def __init__(self, now: float = 1_760_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class InProcessUpstream(BaseAdapter):
    """Answers requests from a table of URL -> handler, and counts them."""

    def __init__(self) -> None:
        super().__init__()
        self.routes: dict[str, Callable[[], Answer]] = {}
        self.calls: list[str] = []
        self.down = False

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        url = str(request.url)
        self.calls.append(url)
        if self.down:
            raise requests.ConnectionError("connection refused")
        status, headers, body = self.routes[url]()
        response = requests.Response()
        response.status_code = status
        response.headers.update(headers)
        response.raw = HTTPResponse(
            body=io.BytesIO(body), status=status, headers=headers, preload_content=False
        )
        response.url = url
        response.request = request
        return response

    def close(self) -> None:
        pass

    def count(self, url: str) -> int:
        return self.calls.count(url)


def region(code: str = "zj", issuer: str = ISSUER) -> Region:
    return Region(
        code=code,
        names=Names(zh="浙江", en="Zhejiang"),
        kind=RegionKind.PROVINCE,
        issuer=issuer,
        client_id="tongxing",
        client_secret=SecretStr("secret-0123456789"),
    )


def discovery(issuer: str = ISSUER, **changes: Any) -> dict[str, Any]:
    document = {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/protocol/openid-connect/auth",
        "token_endpoint": issuer + "/protocol/openid-connect/token",
        "jwks_uri": issuer + "/protocol/openid-connect/certs",
        "authorization_response_iss_parameter_supported": True,
    }
    document.update(changes)
    return {k: v for k, v in document.items() if v is not None}


def json_answer(document: Any, **headers: str) -> Callable[[], Answer]:
    return lambda: (
        200,
        {"Content-Type": "application/json", **headers},
        json.dumps(document).encode(),
    )


@pytest.fixture(scope="module")
def old_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "old"})


@pytest.fixture(scope="module")
def new_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "new"})


@pytest.fixture
def upstream(old_key: RSAKey) -> InProcessUpstream:
    fake = InProcessUpstream()
    fake.routes[ISSUER + "/.well-known/openid-configuration"] = json_answer(
        discovery(), **{"Cache-Control": "max-age=300"}
    )
    fake.routes[JWKS_URI] = json_answer({"keys": [old_key.as_dict(private=False)]})
    return fake


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(upstream: InProcessUpstream, clock: FakeClock) -> MetadataCache:
    session = new_session()
    session.mount("https://", upstream)
    return MetadataCache(session=session, clock=clock)


# -- lifetimes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "lifetime"),
    [
        ({}, 3600),
        ({"Cache-Control": "max-age=600"}, 600),
        ({"cache-control": "public, max-age=600"}, 600),
        ({"Cache-Control": 'max-age="600"'}, 600),
        ({"Cache-Control": "max-age=600", "Age": "100"}, 500),
        ({"Cache-Control": "max-age=600", "Age": "590"}, 60),
        ({"Cache-Control": "max-age=5"}, 60),
        ({"Cache-Control": "max-age=0"}, 60),
        ({"Cache-Control": "max-age=31536000"}, 86400),
        ({"Cache-Control": "no-store"}, 60),
        ({"Cache-Control": "no-cache, max-age=600"}, 60),
        ({"Cache-Control": "max-age=-5"}, 3600),
        ({"Cache-Control": "max-age=abc"}, 3600),
        ({"Cache-Control": "private"}, 3600),
    ],
)
def test_the_lifetime_follows_max_age_within_bounds(
    headers: dict[str, str], lifetime: float
) -> None:
    assert cache_lifetime(headers, POLICY) == lifetime


def test_a_policy_with_inverted_bounds_is_refused() -> None:
    with pytest.raises(ValueError, match="min_lifetime"):
        CachePolicy(min_lifetime=600, default_lifetime=60)


def test_http_limits_keep_the_head_within_the_total() -> None:
    with pytest.raises(ValueError, match="total_timeout"):
        HttpLimits(connect_timeout=3, read_timeout=3, total_timeout=5)


# -- the discovery document --------------------------------------------------------------------


def test_discovery_is_cached_until_max_age_passes(
    cache: MetadataCache, upstream: InProcessUpstream, clock: FakeClock
) -> None:
    url = ISSUER + "/.well-known/openid-configuration"
    first = cache.metadata(region())
    assert first.token_endpoint == ISSUER + "/protocol/openid-connect/token"
    assert first.authorization_response_iss_parameter_supported is True
    clock.advance(299)
    assert cache.metadata(region()) is first
    assert upstream.count(url) == 1
    clock.advance(2)
    cache.metadata(region())
    assert upstream.count(url) == 2


@pytest.mark.parametrize(
    "published",
    [ISSUER + "/", "https://idp.js.example.cn/realms/js", ISSUER.replace("https", "http")],
)
def test_a_discovery_document_for_another_issuer_is_refused(
    published: str, cache: MetadataCache, upstream: InProcessUpstream
) -> None:
    upstream.routes[ISSUER + "/.well-known/openid-configuration"] = json_answer(
        discovery(published)
    )
    with pytest.raises(RegionMetadataInvalid, match="differs from the configured"):
        cache.metadata(region())


@pytest.mark.parametrize(
    "changes",
    [
        {"jwks_uri": None},
        {"token_endpoint": "http://idp.zj.example.cn/token"},  # plain http off loopback
        {"authorization_endpoint": "https://user@idp.zj.example.cn/auth"},
        {"authorization_response_iss_parameter_supported": "yes"},
        {"code_challenge_methods_supported": "S256"},
    ],
)
def test_unusable_discovery_documents_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(RegionMetadataInvalid):
        ProviderMetadata.from_document("zj", ISSUER, discovery(**changes))


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        ((500, {}, b"oops"), "HTTP 500"),
        ((404, {}, b"{}"), "HTTP 404"),
        ((302, {"Location": "https://elsewhere.example/"}, b""), "redirect"),
        ((200, {}, b"<html>"), "not JSON"),
        ((200, {}, b"[1]"), "not an object"),
        ((200, {}, b"{" + b" " * (2 << 20) + b"}"), "larger than allowed"),
        ((200, {"Content-Length": str(8 << 20)}, b"{}"), "too large"),
    ],
)
def test_bad_answers_make_the_region_unavailable(
    answer: Answer, match: str, cache: MetadataCache, upstream: InProcessUpstream
) -> None:
    upstream.routes[ISSUER + "/.well-known/openid-configuration"] = lambda: answer
    with pytest.raises(RegionUnavailable, match=match):
        cache.metadata(region())


# -- keys and the unknown-kid rule -------------------------------------------------------------


def test_an_unknown_kid_refetches_the_jwk_set_after_rotation(
    cache: MetadataCache,
    upstream: InProcessUpstream,
    clock: FakeClock,
    old_key: RSAKey,
    new_key: RSAKey,
) -> None:
    assert cache.find_key(region(), "old", "RS256").kid == "old"
    clock.advance(11)
    upstream.routes[JWKS_URI] = json_answer(
        {"keys": [old_key.as_dict(private=False), new_key.as_dict(private=False)]}
    )
    assert cache.find_key(region(), "new", "RS256").kid == "new"
    assert upstream.count(JWKS_URI) == 2


def test_unknown_kids_refetch_at_most_once_every_ten_seconds(
    cache: MetadataCache, upstream: InProcessUpstream, clock: FakeClock
) -> None:
    cache.find_key(region(), "old", "RS256")
    assert upstream.count(JWKS_URI) == 1
    for i in range(50):  # a flood of invented kids within ten seconds
        with pytest.raises(InvalidUpstreamToken, match="no RS256 key"):
            cache.find_key(region(), f"invented-{i}", "RS256")
        clock.advance(0.1)
    assert upstream.count(JWKS_URI) == 1
    clock.advance(5.1)
    with pytest.raises(InvalidUpstreamToken):
        cache.find_key(region(), "invented-again", "RS256")
    assert upstream.count(JWKS_URI) == 2
    with pytest.raises(InvalidUpstreamToken):
        cache.find_key(region(), "and-again", "RS256")
    assert upstream.count(JWKS_URI) == 2


def test_threads_waiting_on_an_unknown_kid_share_one_refetch(
    upstream: InProcessUpstream, clock: FakeClock, old_key: RSAKey, new_key: RSAKey
) -> None:
    session = new_session()
    session.mount("https://", upstream)
    cache = MetadataCache(session=session, clock=clock)
    cache.find_key(region(), "old", "RS256")
    clock.advance(60)
    release = threading.Event()
    rotated = json.dumps(
        {"keys": [old_key.as_dict(private=False), new_key.as_dict(private=False)]}
    ).encode()

    def slow_rotated_jwks() -> Answer:
        release.wait(5)
        return 200, {}, rotated

    upstream.routes[JWKS_URI] = slow_rotated_jwks
    found: list[str | None] = []

    def look_up() -> None:
        found.append(cache.find_key(region(), "new", "RS256").kid)

    threads = [threading.Thread(target=look_up) for _ in range(8)]
    for thread in threads:
        thread.start()
    release.set()
    for thread in threads:
        thread.join(10)
    assert found == ["new"] * 8
    assert upstream.count(JWKS_URI) == 2  # the first fetch, then one shared refetch


def test_an_expired_document_is_served_at_once_while_a_refresh_is_in_flight(
    cache: MetadataCache, upstream: InProcessUpstream, clock: FakeClock
) -> None:
    url = ISSUER + "/.well-known/openid-configuration"
    old = cache.metadata(region())
    clock.advance(301)
    release = threading.Event()
    refreshed = json.dumps(discovery(jwks_uri=ISSUER + "/rotated-certs")).encode()

    def slow_discovery() -> Answer:
        release.wait(5)
        return 200, {}, refreshed

    upstream.routes[url] = slow_discovery
    refresher = threading.Thread(target=cache.metadata, args=(region(),))
    refresher.start()
    while upstream.count(url) < 2:  # the refresh is in flight
        time.sleep(0.01)
    assert cache.metadata(region()) is old  # not queued behind the slow refresh
    release.set()
    refresher.join(5)
    assert cache.metadata(region()).jwks_uri == ISSUER + "/rotated-certs"


def test_keys_expire_with_their_max_age(
    cache: MetadataCache, upstream: InProcessUpstream, clock: FakeClock, old_key: RSAKey
) -> None:
    upstream.routes[JWKS_URI] = json_answer(
        {"keys": [old_key.as_dict(private=False)]}, **{"Cache-Control": "max-age=120"}
    )
    cache.keys(region())
    clock.advance(119)
    cache.keys(region())
    assert upstream.count(JWKS_URI) == 1
    clock.advance(2)
    cache.keys(region())
    assert upstream.count(JWKS_URI) == 2


# -- a region that is down ---------------------------------------------------------------------


def test_cached_metadata_and_keys_are_served_while_the_region_is_down(
    cache: MetadataCache, upstream: InProcessUpstream, clock: FakeClock
) -> None:
    metadata = cache.metadata(region())
    cache.find_key(region(), "old", "RS256")
    clock.advance(7200)  # everything expired
    upstream.down = True
    assert cache.metadata(region()) is metadata
    assert cache.find_key(region(), "old", "RS256").kid == "old"
    calls = len(upstream.calls)
    clock.advance(5)  # within the failure back-off: the region is not asked again
    cache.metadata(region())
    cache.keys(region())
    assert len(upstream.calls) == calls
    clock.advance(10)
    cache.metadata(region())
    assert len(upstream.calls) == calls + 1
    upstream.down = False
    clock.advance(10)
    cache.metadata(region())
    cache.keys(region())
    assert cache.fetch_count(region()) == len(upstream.calls)


def test_stale_values_are_served_for_a_bounded_time_only(
    cache: MetadataCache, upstream: InProcessUpstream, clock: FakeClock
) -> None:
    cache.metadata(region())
    upstream.down = True
    clock.advance(300 + 24 * 3600 + 1)
    with pytest.raises(RegionUnavailable, match="ConnectionError"):
        cache.metadata(region())


def test_a_region_down_with_nothing_cached_fails_fast_after_the_first_try(
    cache: MetadataCache, upstream: InProcessUpstream, clock: FakeClock
) -> None:
    upstream.down = True
    with pytest.raises(RegionUnavailable, match="ConnectionError"):
        cache.metadata(region())
    with pytest.raises(RegionUnavailable, match="failed recently"):
        cache.metadata(region())
    assert len(upstream.calls) == 1


def test_one_region_down_leaves_another_alone(
    cache: MetadataCache, upstream: InProcessUpstream
) -> None:
    other = "https://idp.js.example.cn/realms/js"
    upstream.routes[other + "/.well-known/openid-configuration"] = lambda: (503, {}, b"")
    with pytest.raises(RegionUnavailable):
        cache.metadata(region("js", other))
    assert cache.metadata(region()).issuer == ISSUER


def test_a_region_whose_issuer_changes_is_fetched_afresh(
    cache: MetadataCache, upstream: InProcessUpstream
) -> None:
    moved = "https://idp2.zj.example.cn/realms/zj"
    upstream.routes[moved + "/.well-known/openid-configuration"] = json_answer(discovery(moved))
    assert cache.metadata(region()).issuer == ISSUER
    assert cache.metadata(region("zj", moved)).issuer == moved
    cache.forget(region())
    cache.metadata(region())
    assert upstream.count(ISSUER + "/.well-known/openid-configuration") == 2
