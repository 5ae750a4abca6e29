"""URLs the gateway itself calls on a registration's behalf (THREAT_MODEL rows 1 and 6).

A tenant that may create a Region or a Portal names URLs the gateway then contacts: the region's
issuer and the endpoints of its discovery document, the portal's back-channel logout URI and its
``sector_identifier_uri``. Outside the development switch ``insecure_allow_http`` these must be
https and must not name the gateway's own machine or link (loopback, link-local, in any spelling
a resolver accepts). The resolved address is checked when connecting; that half needs sockets
and lives in ``tests/integration/test_sector_identifier.py``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from gateway.app import create_app
from gateway.broker.errors import RegionMetadataInvalid
from gateway.broker.metadata import ProviderMetadata
from gateway.services import Services, build_services
from gateway.settings import Settings
from tongxing_api.vocabulary import check_outbound_url, host_address, is_local_host

#: Hosts that are the gateway's own machine or link, as a tenant might spell them.
LOCAL_HOSTS = [
    "127.0.0.1",
    "127.8.9.10",
    "localhost",
    "LocalHost.",
    "tongxing.localhost",
    "[::1]",
    "[::ffff:127.0.0.1]",  # IPv4-mapped IPv6 (RFC 4291 §2.5.5.2)
    "[::ffff:7f00:1]",
    "[::ffff:169.254.169.254]",
    "[64:ff9b::a9fe:a9fe]",  # NAT64 of 169.254.169.254 (RFC 6052)
    "169.254.169.254",  # cloud instance metadata
    "[fe80::1]",
    "[fe80::1%25eth0]",
    "0.0.0.0",  # noqa: S104 - an attacker's spelling, not a bind address
    "[::]",
    "2130706433",  # 127.0.0.1 as one decimal number
    "0x7f000001",
    "0177.0.0.1",  # octal
    "0x7f.1",
    "127.1",
    "0xa9fea9fe",  # 169.254.169.254 in hex
    "0251.0376.0251.0376",
    "１２７。０。０。１",  # full-width digits and ideographic full stops, folded by IDNA
]
#: Hosts that are fine, private ranges included (a region's IdP may live in the same cluster).
OUTSIDE_HOSTS = [
    "idp.zj.example.cn",
    "10.0.0.7",
    "192.0.2.2",
    "[2001:db8::1]",
    "1.2.3.4.5",  # not an address: a name, resolved (and checked) when connecting
    "localhost.example.cn",
]


@pytest.mark.parametrize("host", LOCAL_HOSTS)
def test_a_local_host_is_refused_with_the_switch_off_and_allowed_with_it_on(host: str) -> None:
    url = f"https://{host}/backchannel"
    with pytest.raises(ValueError, match="loopback or link-local"):
        check_outbound_url(url, what="backchannel_logout_uri", insecure_allow_http=False)
    assert check_outbound_url(url, what="backchannel_logout_uri", insecure_allow_http=True) == url


@pytest.mark.parametrize("host", OUTSIDE_HOSTS)
def test_a_host_outside_the_gateway_is_allowed(host: str) -> None:
    url = f"https://{host}/logout"
    assert check_outbound_url(url, what="issuer", insecure_allow_http=False) == url
    assert not is_local_host(host.strip("[]"))


@pytest.mark.parametrize(
    "url",
    [
        "http://idp.zj.example.cn/realms/zj",
        "http://127.0.0.1:8080/realms/zj",
        "http://localhost/realms/zj",
        "ftp://idp.zj.example.cn/",
        "HTTP://idp.zj.example.cn/",
    ],
)
def test_only_https_is_allowed_with_the_switch_off(url: str) -> None:
    with pytest.raises(ValueError, match="must use https"):
        check_outbound_url(url, what="issuer", insecure_allow_http=False)


def test_http_on_loopback_is_allowed_with_the_switch_on_and_only_there() -> None:
    url = "http://127.0.0.1:8080/realms/zj"
    assert check_outbound_url(url, what="issuer", insecure_allow_http=True) == url
    with pytest.raises(ValueError, match="https"):
        check_outbound_url("http://idp.example.cn/", what="issuer", insecure_allow_http=True)


@pytest.mark.parametrize("insecure", [False, True])
@pytest.mark.parametrize(
    "url",
    [
        "https://idp.zj.example.cn@127.0.0.1/realms/zj",
        "https://user:pass@idp.zj.example.cn/realms/zj",
        "https://@169.254.169.254/",
    ],
)
def test_userinfo_is_refused_whatever_the_switch(url: str, insecure: bool) -> None:
    """RFC 3986 §3.2.1: ``good@evil`` goes to ``evil``; a URL that hides its host is refused."""
    with pytest.raises(ValueError, match="userinfo"):
        check_outbound_url(url, what="issuer", insecure_allow_http=insecure)


@pytest.mark.parametrize(
    ("host", "address"),
    [("2130706433", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("0177.0.0.01", "127.0.0.1")],
)
def test_every_ipv4_spelling_the_resolver_takes_is_read_as_the_address(
    host: str, address: str
) -> None:
    assert str(host_address(host)) == address


# --- the admin API -------------------------------------------------------------------------------

TOKEN = secrets.token_urlsafe(32)
OPERATOR = secrets.token_urlsafe(32)
REGION = {
    "names": {"zh": "浙江", "en": "Zhejiang"},
    "kind": "province",
    "issuer": "https://idp.zj.example.cn/realms/zj",
    "client_id": "tongxing",
    "client_secret": "upstream-secret-value",
}
PORTAL = {
    "names": {"zh": "浙江政务服务网", "en": "Zhejiang services"},
    "owner": "zj",
    "redirect_uris": ["https://portal.zj.example.cn/callback"],
}
OWNER = {"kind": "Portal", "namespace": "zj-gov", "name": "portal", "uid": "uid-owner-1"}


def _services(tmp_path: Path, *, insecure: bool) -> Iterator[Services]:
    settings = Settings.model_validate(
        {
            "issuer": "https://tongxing.example.cn",
            "data_dir": tmp_path,
            "create_keys": True,
            "insecure_allow_http": insecure,
            "national_secret": secrets.token_urlsafe(32),
            "pairwise_secret": secrets.token_urlsafe(32),
            "admin_token": TOKEN,
            "operator_token": OPERATOR,
            "session_secret": secrets.token_urlsafe(32),
            "mfa_secret": secrets.token_urlsafe(32),
        }
    )
    built = build_services(settings)
    yield built
    built.close()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[FlaskClient]:
    """The admin API of a gateway with the development switch off (production)."""
    for services in _services(tmp_path / "production", insecure=False):
        yield create_app(services=services).test_client()


@pytest.fixture
def dev_client(tmp_path: Path) -> Iterator[FlaskClient]:
    """The admin API of a gateway with ``insecure_allow_http`` on (development, tests)."""
    for services in _services(tmp_path / "development", insecure=True):
        yield create_app(services=services).test_client()


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def fields(response: Any) -> dict[str, str]:
    assert response.status_code == 400, response.get_json()
    return {f["field"]: f["message"] for f in response.get_json()["fields"]}


@pytest.mark.parametrize(
    "issuer",
    [
        "http://127.0.0.1:8080/realms/zj",
        "https://127.0.0.1/realms/zj",
        "https://169.254.169.254/latest",
        "https://[::ffff:127.0.0.1]/realms/zj",
        "https://localhost/realms/zj",
    ],
)
def test_a_region_issuer_inside_the_gateway_is_refused_on_its_field(
    client: FlaskClient, dev_client: FlaskClient, issuer: str
) -> None:
    response = client.put("/admin/v1/regions/zj", json={**REGION, "issuer": issuer}, headers=auth())
    assert set(fields(response)) == {"issuer"}
    assert client.get("/admin/v1/regions/zj", headers=auth()).status_code == 404
    # The same document, with the development switch on, is what every test gateway registers.
    created = dev_client.put(
        "/admin/v1/regions/zj", json={**REGION, "issuer": issuer}, headers=auth()
    )
    assert created.status_code == 201, created.get_json()


@pytest.mark.parametrize(
    "uri",
    [
        "http://portal.zj.example.cn/logout",
        "https://169.254.169.254/latest/meta-data/",
        "https://0x7f000001:8443/admin",
        "https://[fe80::1]/logout",
    ],
)
def test_a_back_channel_logout_uri_inside_the_gateway_is_refused_on_its_field(
    client: FlaskClient, uri: str
) -> None:
    body = {**PORTAL, "backchannel_logout_uri": uri, "managed_by": OWNER}
    response = client.put("/admin/v1/portals/zj-portal", json=body, headers=auth(OPERATOR))
    message = fields(response)["backchannel_logout_uri"]
    assert "https" in message or "loopback or link-local" in message
    assert client.get("/admin/v1/portals/zj-portal", headers=auth()).status_code == 404


def test_a_back_channel_logout_uri_on_an_outside_host_is_registered(client: FlaskClient) -> None:
    body = {**PORTAL, "backchannel_logout_uri": "https://portal.zj.example.cn/logout"}
    assert client.put("/admin/v1/portals/zj-portal", json=body, headers=auth()).status_code == 201


@pytest.mark.parametrize(
    "uri", ["http://sectors.zj.example.cn/zj.json", "https://127.0.0.1/zj.json"]
)
def test_a_sector_identifier_uri_inside_the_gateway_or_over_http_is_refused_unfetched(
    client: FlaskClient, uri: str
) -> None:
    """Refused before any fetch: a fetch would need a socket, which this tier refuses."""
    body = {**PORTAL, "subject_type": "pairwise", "sector_identifier_uri": uri}
    response = client.put("/admin/v1/portals/zj-portal", json=body, headers=auth())
    assert set(fields(response)) == {"sector_identifier_uri"}


def test_only_the_platform_may_change_a_registered_pairwise_sector(client: FlaskClient) -> None:
    """OIDC Core §8.1: a new sector gives every user of the portal a new ``sub`` there."""
    body = {**PORTAL, "subject_type": "pairwise", "managed_by": OWNER}
    created = client.put("/admin/v1/portals/zj-portal", json=body, headers=auth(OPERATOR))
    assert created.status_code == 201, created.get_json()
    moved = {**body, "redirect_uris": ["https://new.zj.example.cn/callback"]}
    refused = client.put("/admin/v1/portals/zj-portal", json=moved, headers=auth(OPERATOR))
    message = fields(refused)["redirect_uris"]
    assert "portal.zj.example.cn to new.zj.example.cn" in message
    # Same sector, another path: not a change of sector.
    same_host = {**body, "redirect_uris": ["https://portal.zj.example.cn/other"]}
    kept = client.put("/admin/v1/portals/zj-portal", json=same_host, headers=auth(OPERATOR))
    assert kept.status_code == 200, kept.get_json()
    # The platform changes the sector of a portal it registered, on purpose.
    by_platform = {key: value for key, value in body.items() if key != "managed_by"}
    assert (
        client.put("/admin/v1/portals/zj-hand", json=by_platform, headers=auth()).status_code == 201
    )
    moved_by_platform = {**by_platform, "redirect_uris": moved["redirect_uris"]}
    platform = client.put("/admin/v1/portals/zj-hand", json=moved_by_platform, headers=auth())
    assert platform.status_code == 200, platform.get_json()


# --- a region's discovery document ---------------------------------------------------------------


def discovery(issuer: str, **endpoints: str) -> dict[str, str]:
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/auth",
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/certs",
        **endpoints,
    }


@pytest.mark.parametrize(
    "endpoint", ["token_endpoint", "jwks_uri", "userinfo_endpoint", "end_session_endpoint"]
)
@pytest.mark.parametrize(
    "url", ["https://169.254.169.254/latest/meta-data", "https://127.0.0.1:9000/admin"]
)
def test_a_https_region_cannot_point_the_gateway_inside_through_discovery(
    endpoint: str, url: str
) -> None:
    issuer = "https://idp.zj.example.cn/realms/zj"
    document = discovery(issuer, **{endpoint: url})
    with pytest.raises(RegionMetadataInvalid, match="loopback or link-local"):
        ProviderMetadata.from_document("zj", issuer, document)
    with pytest.raises(RegionMetadataInvalid, match="loopback or link-local"):
        ProviderMetadata.from_document("zj", issuer, document, insecure_allow_http=False)
    allowed = ProviderMetadata.from_document("zj", issuer, document, insecure_allow_http=True)
    assert allowed.raw[endpoint] == url


def test_a_region_registered_on_loopback_for_development_keeps_its_loopback_endpoints() -> None:
    issuer = "http://127.0.0.1:8080/realms/zj"
    metadata = ProviderMetadata.from_document("zj", issuer, discovery(issuer))
    assert metadata.token_endpoint == f"{issuer}/token"
    with pytest.raises(RegionMetadataInvalid, match="https"):
        ProviderMetadata.from_document("zj", issuer, discovery(issuer), insecure_allow_http=False)
