"""The broker against a real, non-Keycloak OpenID Provider (Node's oidc-provider), and against
small local servers that play a broken or malicious upstream.

oidc-provider's development interaction pages are plain HTML forms, so the whole authorization
code flow is driven with ``requests`` here; tests/e2e/test_broker_keycloak.py does the same
through Chromium against Keycloak.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from joserfc import jws
from joserfc.jwk import RSAKey
from pydantic import SecretStr
from tongxing_dev import peers
from tongxing_dev.process import LOOPBACK, Server

from gateway.broker import (
    IdentityNumberMissing,
    InvalidUpstreamToken,
    LoginTransaction,
    MetadataCache,
    RegionClient,
    RegionMetadataInvalid,
    RegionUnavailable,
    TokenExchangeFailed,
    UpstreamAccessDenied,
)
from gateway.broker.transport import HttpLimits, new_session
from gateway.registry import Names, Region, RegionKind

CLIENT_ID = "tongxing-gateway"
CLIENT_SECRET = "op-secret-0123456789abcdef"
CALLBACK = "http://127.0.0.1:9/broker/op/callback"  # never contacted: the test reads Location
PERSON_ID = "11010519491231002X"


class ShiftedClock:
    """Real time plus an offset the test moves forward (for the cache's time rules)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class CountingCache:
    cache: MetadataCache
    clock: ShiftedClock
    responses: list[str] = field(default_factory=list)

    def count(self, suffix: str) -> int:
        return sum(1 for url in self.responses if url.endswith(suffix))


def counting_cache() -> CountingCache:
    """A cache whose session records every response that really came back over a socket."""
    clock = ShiftedClock()
    session = new_session()
    counted = CountingCache(MetadataCache(session=session, clock=clock), clock)

    def record(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        counted.responses.append(response.url)

    session.hooks["response"].append(record)
    return counted


def region_for(issuer: str, code: str = "op") -> Region:
    return Region(
        code=code,
        names=Names(zh="测试省", en="Test province"),
        kind=RegionKind.PROVINCE,
        issuer=issuer,
        client_id=CLIENT_ID,
        client_secret=SecretStr(CLIENT_SECRET),
        scopes=["openid", "profile", "phone", "id_number"],
    )


def start_provider(workdir: Path) -> tuple[Server, str]:
    return peers.start_op(
        workdir,
        client={
            "clients": [
                {
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "redirect_uris": [CALLBACK],
                    "token_endpoint_auth_method": "client_secret_basic",
                }
            ],
            "accounts": {
                "zhangsan": {
                    "name": "张三",
                    "phone_number": "+86 138 0013 8000",
                    "id_number": PERSON_ID,
                },
                "lisi": {"name": "李四"},
            },
        },
    )


@pytest.fixture(scope="module")
def provider(node_peers: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server, issuer = start_provider(tmp_path_factory.mktemp("oidc-provider"))
    try:
        yield issuer
    finally:
        server.stop()


def sign_in(url: str, login: str, *, abort: bool = False) -> dict[str, list[str]]:
    """Walk oidc-provider's development login and consent forms; return the callback query."""
    browser = requests.Session()
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    response = browser.get(url, allow_redirects=False, timeout=10)
    for _ in range(10):
        if response.is_redirect:
            location = response.headers["Location"]
            if location.startswith(CALLBACK):
                return parse_qs(urlsplit(location).query)
            target = location if location.startswith("http") else origin + location
            response = browser.get(target, allow_redirects=False, timeout=10)
            continue
        assert response.status_code == 200, response.text[:500]
        if abort:
            link = re.search(r'href="([^"]+/abort)"', response.text)
            assert link is not None
            target = link.group(1) if link.group(1).startswith("http") else origin + link.group(1)
            response = browser.get(target, allow_redirects=False, timeout=10)
            continue
        action = re.search(r'<form[^>]*action="([^"]+)"', response.text)
        prompt = re.search(r'name="prompt" value="(\w+)"', response.text)
        assert action is not None
        assert prompt is not None
        target = action.group(1) if action.group(1).startswith("http") else origin + action.group(1)
        form = {"prompt": prompt.group(1), "login": login, "password": "any"}
        response = browser.post(target, data=form, allow_redirects=False, timeout=10)
    raise AssertionError("the sign-in did not come back to the callback")


# -- discovery and keys from a real provider ---------------------------------------------------


def test_discovery_and_keys_come_from_the_provider_and_are_cached(provider: str) -> None:
    counted = counting_cache()
    region = region_for(provider)
    metadata = counted.cache.metadata(region)
    assert metadata.issuer == provider
    assert metadata.token_endpoint == f"{provider}/token"
    assert metadata.authorization_response_iss_parameter_supported is True
    keys = counted.cache.keys(region)
    assert keys.kids
    kid = keys.kids[0]
    for _ in range(20):
        assert counted.cache.find_key(region, kid, "RS256") is not None
        counted.cache.metadata(region)
    assert counted.count("/.well-known/openid-configuration") == 1
    assert counted.count("/jwks") == 1
    assert counted.cache.fetch_count(region) == 2


def test_an_unknown_kid_refetches_the_provider_keys_once_per_ten_seconds(provider: str) -> None:
    counted = counting_cache()
    region = region_for(provider)
    counted.cache.keys(region)
    for i in range(30):
        with pytest.raises(InvalidUpstreamToken, match="no RS256 key"):
            counted.cache.find_key(region, f"invented-{i}", "RS256")
    assert counted.count("/jwks") == 1  # the first fetch was less than ten seconds ago
    counted.clock.advance(10)
    for i in range(30):
        with pytest.raises(InvalidUpstreamToken):
            counted.cache.find_key(region, f"invented-again-{i}", "RS256")
    assert counted.count("/jwks") == 2


def test_a_discovery_url_whose_issuer_differs_is_refused(provider: str) -> None:
    # oidc-provider answers on localhost as well, but names its issuer with 127.0.0.1.
    impostor = region_for(provider.replace("127.0.0.1", "localhost"))
    with pytest.raises(RegionMetadataInvalid, match="differs from the configured"):
        MetadataCache().metadata(impostor)


# -- the whole code flow -------------------------------------------------------------------------


def test_a_person_signs_in_through_the_code_flow(provider: str) -> None:
    cache = MetadataCache()
    client = RegionClient(region_for(provider), cache)
    # max_age makes the provider put auth_time in the ID token (OIDC Core §3.1.2.1).
    url, transaction = client.start_login(CALLBACK, max_age=600)
    callback = sign_in(url, "zhangsan")
    assert callback["iss"] == [provider]  # RFC 9207, as advertised
    identity = client.finish_login(callback, transaction)
    assert identity.region == "op"
    assert identity.issuer == provider
    assert identity.subject == "zhangsan"
    assert identity.identity_number.value == PERSON_ID
    assert identity.name == "张三"
    assert identity.phone_number == "+86 138 0013 8000"
    assert identity.auth_time is not None
    assert abs(identity.auth_time - time.time()) < 60
    assert identity.claims["aud"] == CLIENT_ID
    assert "id_number" not in identity.claims

    # The same callback again: the code is spent, the provider refuses it (RFC 6749 §4.1.2).
    with pytest.raises(TokenExchangeFailed) as replay:
        client.finish_login(callback, transaction)
    assert replay.value.error == "invalid_grant"


def test_a_person_without_an_identity_number_is_refused(provider: str) -> None:
    client = RegionClient(region_for(provider), MetadataCache())
    url, transaction = client.start_login(CALLBACK)
    with pytest.raises(IdentityNumberMissing):
        client.finish_login(sign_in(url, "lisi"), transaction)


def test_a_cancelled_sign_in_is_reported_as_access_denied(provider: str) -> None:
    client = RegionClient(region_for(provider), MetadataCache())
    url, transaction = client.start_login(CALLBACK)
    with pytest.raises(UpstreamAccessDenied) as cancelled:
        client.finish_login(sign_in(url, "zhangsan", abort=True), transaction)
    assert cancelled.value.error == "access_denied"


def test_a_code_sent_with_another_verifier_is_refused(provider: str) -> None:
    client = RegionClient(region_for(provider), MetadataCache())
    url, transaction = client.start_login(CALLBACK)
    callback = sign_in(url, "zhangsan")
    tampered = LoginTransaction.from_dict(
        transaction.to_dict() | {"code_verifier": "x" * 64}  # RFC 7636 §4.6
    )
    with pytest.raises(TokenExchangeFailed) as refused:
        client.finish_login(callback, tampered)
    assert refused.value.error == "invalid_grant"


# -- a region that is down or slow -------------------------------------------------------------


def test_a_stopped_region_serves_cached_keys_and_fails_fresh_fetches_fast(
    node_peers: Path, tmp_path: Path
) -> None:
    server, issuer = start_provider(tmp_path)
    region = region_for(issuer)
    counted = counting_cache()
    try:
        kid = counted.cache.keys(region).kids[0]
    finally:
        server.stop()
    counted.clock.advance(2 * 3600)  # everything cached has expired
    started = time.monotonic()
    assert counted.cache.find_key(region, kid, "RS256") is not None
    assert counted.cache.metadata(region).issuer == issuer
    assert time.monotonic() - started < 5

    started = time.monotonic()
    with pytest.raises(RegionUnavailable, match="ConnectionError"):
        MetadataCache().metadata(region)
    assert time.monotonic() - started < 5


@pytest.fixture
def silent_region() -> Iterator[str]:
    """A server that accepts connections and never answers: a hung region."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((LOOPBACK, 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        for conn in accepted:
            conn.close()
        listener.close()


@pytest.fixture
def trickling_region() -> Iterator[str]:
    """A server that answers 200 at once, then sends its body one byte every half second."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((LOOPBACK, 0))
    listener.listen(4)
    stop = threading.Event()

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
            conn.sendall(b"Content-Length: 100000\r\n\r\n")
            while not stop.wait(0.5):
                try:
                    conn.sendall(b" ")
                except OSError:
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()
        thread.join(2)


def test_a_region_trickling_its_answer_fails_at_the_total_deadline(trickling_region: str) -> None:
    # Every byte comes well within the read timeout; only the total deadline stops it. Shorter
    # limits than the default 2 + 3 <= 5 s keep the test quick; the arithmetic is the same.
    limits = HttpLimits(connect_timeout=0.5, read_timeout=1.0, total_timeout=2.0)
    started = time.monotonic()
    with pytest.raises(RegionUnavailable, match="deadline"):
        MetadataCache(limits=limits).metadata(region_for(trickling_region, code="slow"))
    assert time.monotonic() - started < 2.5


def test_a_hung_region_fails_within_five_seconds_and_blocks_no_other(
    silent_region: str, provider: str
) -> None:
    cache = MetadataCache()
    outcome: list[BaseException] = []
    elapsed: list[float] = []

    def hang() -> None:
        started = time.monotonic()
        try:
            cache.metadata(region_for(silent_region, code="hung"))
        except RegionUnavailable as exc:
            outcome.append(exc)
        elapsed.append(time.monotonic() - started)

    waiting = threading.Thread(target=hang)
    waiting.start()
    time.sleep(0.3)  # the hung region's fetch is in flight
    started = time.monotonic()
    assert cache.metadata(region_for(provider)).issuer == provider
    assert time.monotonic() - started < 1.5
    waiting.join(10)
    assert len(outcome) == 1
    assert "ReadTimeout" in str(outcome[0])
    assert elapsed[0] < 5.5


# -- a malicious upstream ----------------------------------------------------------------------


@dataclass
class Impostor:
    """An upstream that publishes a real key but answers the token request as the test says."""

    issuer: str
    key: RSAKey
    id_token: Callable[[dict[str, str]], str] | None = None
    token_status: int = 200
    seen: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(scope="module")
def impostor_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "impostor-1", "use": "sig"})


@pytest.fixture
def impostor(impostor_key: RSAKey) -> Iterator[Impostor]:
    state: dict[str, Impostor] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def answer(self, status: int, body: Any, **headers: str) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            me = state["impostor"]
            if self.path == "/.well-known/openid-configuration":
                self.answer(
                    200,
                    {
                        "issuer": me.issuer,
                        "authorization_endpoint": me.issuer + "/auth",
                        "token_endpoint": me.issuer + "/token",
                        "jwks_uri": me.issuer + "/jwks",
                    },
                )
            elif self.path == "/jwks":
                self.answer(200, {"keys": [me.key.as_dict(private=False)]})
            else:
                self.answer(404, {})

        def do_POST(self) -> None:
            me = state["impostor"]
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            me.seen.append({"form": form, "authorization": self.headers.get("Authorization")})
            if me.token_status != 200:
                self.answer(me.token_status, {"error": "invalid_client"})
                return
            assert me.id_token is not None
            self.answer(
                200,
                {"access_token": "at", "token_type": "Bearer", "id_token": me.id_token(form)},
                **{"Cache-Control": "no-store"},
            )

    httpd = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    state["impostor"] = Impostor(f"http://{LOOPBACK}:{httpd.server_address[1]}", impostor_key)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state["impostor"]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(2)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(impostor: Impostor, nonce: str) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": impostor.issuer,
        "sub": "victim",
        "aud": CLIENT_ID,
        "exp": now + 300,
        "iat": now,
        "nonce": nonce,
        "id_number": PERSON_ID,
    }


def _finish(impostor: Impostor, make: Callable[[dict[str, Any]], str]) -> Any:
    client = RegionClient(region_for(impostor.issuer, code="bad"), MetadataCache())
    transaction = client.start_login(CALLBACK).transaction
    impostor.id_token = lambda form: make(_claims(impostor, transaction.nonce))
    return client.finish_login(
        {"state": transaction.state, "code": "the-code", "iss": impostor.issuer}, transaction
    )


def test_the_code_is_redeemed_with_client_secret_basic_and_the_verifier(
    impostor: Impostor,
) -> None:
    def signed(claims: dict[str, Any]) -> str:
        return jws.serialize_compact(
            {"alg": "RS256", "kid": "impostor-1"}, json.dumps(claims), impostor.key
        )

    identity = _finish(impostor, signed)
    assert identity.subject == "victim"
    (request,) = impostor.seen
    expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert request["authorization"] == f"Basic {expected}"
    assert request["form"]["grant_type"] == "authorization_code"
    assert request["form"]["code"] == "the-code"
    assert request["form"]["redirect_uri"] == CALLBACK
    assert len(request["form"]["code_verifier"]) >= 43
    assert "client_secret" not in request["form"]


def test_an_unsigned_id_token_from_the_token_endpoint_is_refused(impostor: Impostor) -> None:
    def unsigned(claims: dict[str, Any]) -> str:
        header = b64(json.dumps({"alg": "none"}).encode())
        return f"{header}.{b64(json.dumps(claims).encode())}."

    with pytest.raises(InvalidUpstreamToken, match="'none' is not allowed"):
        _finish(impostor, unsigned)


def test_an_id_token_signed_with_an_embedded_key_is_refused(impostor: Impostor) -> None:
    rogue = RSAKey.generate_key(2048, parameters={"kid": "impostor-1"})

    def self_signed(claims: dict[str, Any]) -> str:
        header = {"alg": "RS256", "kid": "impostor-1", "jwk": rogue.as_dict(private=False)}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        private = rogue.get_op_key("sign")
        signature = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64(signature)}"

    with pytest.raises(InvalidUpstreamToken, match=r"carries its own key \(jwk\)"):
        _finish(impostor, self_signed)


def test_a_token_endpoint_refusing_the_client_is_reported(impostor: Impostor) -> None:
    impostor.token_status = 401
    with pytest.raises(TokenExchangeFailed) as refused:
        _finish(impostor, lambda claims: "")
    assert refused.value.error == "invalid_client"
