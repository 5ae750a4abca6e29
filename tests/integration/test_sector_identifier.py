"""``sector_identifier_uri`` (OIDC Core §8.1, Dynamic Client Registration §2 and §5), fetched
by the gateway from a real HTTPS server, and the outbound session's address check.

THREAT_MODEL row 6 (a pairwise ``sub`` no other portal can obtain) and row 1 (a tenant cannot
make the gateway call its own machine or link). The gateway runs as in production: https issuer,
``insecure_allow_http`` off, trusting the test CA through ``outbound_ca_file``. The sector
documents are served over HTTPS on this machine's outside address (not loopback, which the
gateway refuses); a second server on loopback, reached through a host name that resolves to
127.0.0.1, shows the check made after DNS resolution.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import secrets
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from flask.testing import FlaskClient

from gateway.app import create_app
from gateway.outbound import (
    FetchLimits,
    LocalAddressError,
    OutboundFetchError,
    OutboundPolicy,
    fetch_json,
)
from gateway.services import Services, build_services
from gateway.settings import Settings
from tongxing_api.vocabulary import is_local_address, is_local_host

TOKEN = secrets.token_urlsafe(32)
PERSON = "national-subject-0001"


def _outside_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("203.0.113.1", 9))  # TEST-NET-3: only the route is looked up
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if is_local_address(ipaddress.ip_address(address)) else address


def _loopback_name() -> str | None:
    """A host name the literal rule lets through that resolves to loopback only (DNS or
    /etc/hosts), e.g. the machine's own name on many Linux systems."""
    for name in (socket.gethostname(), "localhost.localdomain", "ip6-localhost"):
        if is_local_host(name):
            continue
        try:
            infos = socket.getaddrinfo(name, 443, socket.AF_INET, socket.SOCK_STREAM)
        except OSError:
            continue
        if infos and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos):
            return name
    return None


OUTSIDE = _outside_address()
LOOPBACK_NAME = _loopback_name()


@dataclass
class Tls:
    ca_file: Path
    cert_file: Path
    key_file: Path


def _certificates(folder: Path, addresses: list[str], names: list[str]) -> Tls:
    """A throwaway CA and a serving certificate for ``addresses`` and ``names``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tongxing-sector-test-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    alt += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    serving = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sector-documents")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    tls = Tls(folder / "ca.crt", folder / "server.crt", folder / "server.key")
    tls.ca_file.write_bytes(ca.public_bytes(pem))
    tls.cert_file.write_bytes(serving.public_bytes(pem))
    tls.key_file.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return tls


@dataclass
class DocumentServer:
    """An HTTPS server answering each path with a fixed status, headers and body."""

    base: str
    routes: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)

    def serve(self, path: str, document: Any) -> str:
        self.routes[path] = (
            200,
            {"Content-Type": "application/json"},
            json.dumps(document).encode(),
        )
        return self.base + path


def _start(address: str, tls: Tls, base_host: str) -> Iterator[DocumentServer]:
    state = DocumentServer(base="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits.append(self.path)
            status, headers, body = state.routes.get(self.path, (404, {}, b"{}"))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer((address, 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert_file, tls.key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    state.base = f"https://{base_host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    addresses = ["127.0.0.1", *([OUTSIDE] if OUTSIDE else [])]
    names = [LOOPBACK_NAME] if LOOPBACK_NAME else []
    return _certificates(tmp_path_factory.mktemp("tls"), addresses, names)


@pytest.fixture(scope="module")
def outside(tls: Tls) -> Iterator[DocumentServer]:
    # The gateway must refuse loopback, so an accepted document needs an address that is not:
    # a machine without one cannot run this test, and says so (never a skip).
    assert OUTSIDE is not None, "this machine has no non-loopback IPv4 address on a route"
    yield from _start(OUTSIDE, tls, OUTSIDE)


@pytest.fixture(scope="module")
def loopback(tls: Tls) -> Iterator[DocumentServer]:
    assert LOOPBACK_NAME is not None, "no host name here resolves to loopback only (/etc/hosts)"
    address = str(socket.getaddrinfo(LOOPBACK_NAME, 443, socket.AF_INET)[0][4][0])
    yield from _start(address, tls, LOOPBACK_NAME)


@pytest.fixture
def services(tmp_path: Path, tls: Tls) -> Iterator[Services]:
    """A gateway as in production: https issuer, the development switch off."""
    settings = Settings.model_validate(
        {
            "issuer": "https://tongxing.example.cn",
            "data_dir": tmp_path,
            "create_keys": True,
            "insecure_allow_http": False,
            "outbound_ca_file": tls.ca_file,
            "national_secret": secrets.token_urlsafe(32),
            "pairwise_secret": secrets.token_urlsafe(32),
            "admin_token": TOKEN,
            "session_secret": secrets.token_urlsafe(32),
            "mfa_secret": secrets.token_urlsafe(32),
        }
    )
    built = build_services(settings)
    yield built
    built.close()


@pytest.fixture
def client(services: Services) -> FlaskClient:
    return create_app(services=services).test_client()


def portal(redirect_uris: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "names": {"zh": "浙江政务服务网", "en": "Zhejiang services"},
        "owner": "zj",
        "redirect_uris": redirect_uris,
        "subject_type": "pairwise",
        **extra,
    }


def put(client: FlaskClient, client_id: str, body: dict[str, Any]) -> Any:
    return client.put(
        f"/admin/v1/portals/{client_id}", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
    )


def sector_error(response: Any) -> str:
    assert response.status_code == 400, response.get_json()
    fields: dict[str, str] = {f["field"]: f["message"] for f in response.get_json()["fields"]}
    assert set(fields) == {"sector_identifier_uri"}, fields
    return fields["sector_identifier_uri"]


A_URIS = ["https://a.zj.example.cn/callback"]
B_URIS = ["https://b.zj.example.cn/callback", "https://m.b.zj.example.cn/callback"]


def test_a_sector_document_missing_a_redirect_uri_refuses_the_portal(
    client: FlaskClient, services: Services, outside: DocumentServer
) -> None:
    url = outside.serve("/missing.json", A_URIS + B_URIS[:1])
    message = sector_error(put(client, "portal-b", portal(B_URIS, sector_identifier_uri=url)))
    assert B_URIS[1] in message
    assert B_URIS[0] not in message
    assert services.registry.portal("portal-b") is None


def test_portals_on_several_hosts_sharing_a_sector_document_get_the_same_pairwise_sub(
    client: FlaskClient, services: Services, outside: DocumentServer
) -> None:
    """OIDC Core §8.1: the sector is the sector_identifier_uri's host; a portal without one
    is its own sector (its redirect host) and sees another ``sub``."""
    url = outside.serve("/zj-services.json", A_URIS + B_URIS)
    assert put(client, "portal-a", portal(A_URIS, sector_identifier_uri=url)).status_code == 201
    created = put(client, "portal-b", portal(B_URIS, sector_identifier_uri=url))
    assert created.status_code == 201, created.get_json()
    assert put(client, "portal-c", portal(["https://c.zj.example.cn/cb"])).status_code == 201
    subs = {}
    for client_id in ("portal-a", "portal-b", "portal-c"):
        registered = services.registry.portal(client_id)
        assert registered is not None
        subs[client_id] = services.tokens.subject_for(registered, PERSON)
    assert subs["portal-a"] == subs["portal-b"] != PERSON
    assert subs["portal-c"] != subs["portal-a"]
    # Without the document, portal B's two hosts are refused as before.
    refused = put(client, "portal-d", portal(B_URIS))
    assert refused.status_code == 400
    assert "one host" in refused.get_json()["fields"][0]["message"]


def test_an_http_sector_identifier_uri_is_refused_and_not_fetched(
    client: FlaskClient, outside: DocumentServer
) -> None:
    url = outside.serve("/plain.json", A_URIS).replace("https://", "http://", 1)
    before = len(outside.hits)
    assert "https" in sector_error(
        put(client, "portal-a", portal(A_URIS, sector_identifier_uri=url))
    )
    assert len(outside.hits) == before


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        ((302, {"Location": "/zj.json"}, b""), "redirect"),
        ((200, {"Content-Type": "application/json"}, b"[" + b'"x",' * 40_000 + b'"x"]'), "bytes"),
        ((200, {"Content-Type": "application/json"}, b'{"redirect_uris": []}'), "JSON array"),
        ((200, {"Content-Type": "text/html"}, b"<html>secret page</html>"), "JSON"),
        ((404, {}, b"{}"), "HTTP 404"),
    ],
)
def test_a_sector_document_that_is_not_a_plain_json_array_refuses_the_portal(
    client: FlaskClient,
    outside: DocumentServer,
    route: tuple[int, dict[str, str], bytes],
    expected: str,
) -> None:
    outside.serve("/zj.json", A_URIS)
    outside.routes["/odd.json"] = route
    message = sector_error(
        put(client, "portal-a", portal(A_URIS, sector_identifier_uri=outside.base + "/odd.json"))
    )
    assert expected in message
    assert "secret page" not in message  # nothing of the peer's body reaches the tenant
    assert outside.hits.count("/zj.json") == 0  # the redirect was not followed


def test_the_outbound_session_refuses_a_name_that_resolves_to_loopback(
    tls: Tls, loopback: DocumentServer
) -> None:
    """DNS rebinding: the name passes the literal rule; its address is checked when connecting.
    The same fetch under the development switch succeeds, so the refusal is the check's."""
    url = loopback.serve("/zj.json", A_URIS)
    limits = FetchLimits()
    with OutboundPolicy(insecure_allow_http=True, ca_file=tls.ca_file).session() as session:
        assert fetch_json(session, url, limits=limits) == A_URIS
    hits = len(loopback.hits)
    with OutboundPolicy(ca_file=tls.ca_file).session() as session:
        with pytest.raises(requests.ConnectionError) as raised:
            session.get(url, timeout=3)
        cause = raised.value.args[0]
        assert isinstance(getattr(cause, "reason", cause), LocalAddressError)
        with pytest.raises(OutboundFetchError, match="resolves to a loopback or link-local"):
            fetch_json(session, url, limits=limits)
    assert len(loopback.hits) == hits  # no request reached the server


def test_a_sector_identifier_uri_whose_name_resolves_to_loopback_is_refused(
    client: FlaskClient, loopback: DocumentServer
) -> None:
    url = loopback.serve("/zj.json", A_URIS)
    hits = len(loopback.hits)
    message = sector_error(put(client, "portal-a", portal(A_URIS, sector_identifier_uri=url)))
    assert "loopback or link-local" in message
    assert len(loopback.hits) == hits
