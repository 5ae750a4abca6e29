"""kubectl with a national identity (issue 18): a kube-apiserver trusts the gateway as an issuer.

A cluster admin who onboards regions signs in with their national identity, as any citizen does
at any portal, and ``kubectl`` presents the gateway's ID token to the API server. The API server
is the harness's kube-apiserver (a second one of this module's own, on the shared etcd below its
own prefix) with a structured authentication configuration (``--authentication-config``,
``apiserver.config.k8s.io/v1beta1`` ``AuthenticationConfiguration``, Kubernetes 1.32): the
gateway's https issuer, the test's CA, the ``client_id`` of a portal "kubernetes" registered at
the gateway as the one audience, and the username ``tongxing:<sub>``.

The ``sub`` is whatever the portal's registration says it sees (OIDC Core §8): here pairwise,
so RBAC binds the identifier of the kubernetes portal's sector, not the national subject every
public portal sees. The gateway has no groups claim, so the configuration maps no groups: RBAC
binds people one by one (``User`` subjects). What else the token says (``acr``,
``home_region``) goes into the user's ``extra``, which the API server's audit log records.

The gateway serves https on loopback as production serves it (``tongxing serve
--tls-certificate --tls-key``: granian's own TLS, rustls) with a certificate from a CA this
module makes; the API server and openid-client trust that CA, Chromium that certificate's key.

THREAT_MODEL rows played: 6 (a token the gateway issued to another portal does not open the
cluster: the audience is checked, the pairwise ``sub`` being the same), 1 (the national identity
lists Regions only in the namespace its RoleBinding names), and tokens of another issuer (the
region's Keycloak, for the same person and the same client id), signed by another key, or
expired are refused (401), as kube-apiserver's JWT authenticator must (OIDC Core §3.1.3.7).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from gateway_fixtures import PERSON_ID, KeycloakRegion, PortalSite, sign_in_at_keycloak
from joserfc import jwt
from joserfc.jwk import RSAKey
from keycloak import KeycloakAdmin, KeycloakOpenIDConnection
from operator_fixtures import REPO, install_crds, kubectl
from playwright.sync_api import Browser, Page
from tongxing_dev.browser import LAUNCH_ARGS
from tongxing_dev.keycloak import KeycloakEndpoint
from tongxing_dev.kube import ExtraApiServer, KubeEndpoint, start_extra_apiserver
from tongxing_dev.peers import PEERS
from tongxing_dev.process import LOOPBACK, Server, free_port

USERNAME_PREFIX = "tongxing:"
# Short, so the test sees a token it used expire; long enough for the calls made while it lives.
ID_TOKEN_SECONDS = 60
# kube-apiserver keeps a successful token review for 10 s (its token cache); past that, and past
# the token's exp, nothing but the token itself decides.
TOKEN_CACHE_SECONDS = 10


# --- TLS: a CA of this module's own, and the gateway's serving certificate --------------------


@dataclass(frozen=True)
class GatewayCertificates:
    """The CA the clients trust and the gateway's certificate and key (PKCS #8, as granian
    wants it), all PEM files."""

    ca_file: Path
    certificate: Path
    key: Path
    spki_sha256: str  # base64 SHA-256 of the gateway's public key, for Chromium

    @property
    def ca_pem(self) -> str:
        return self.ca_file.read_text()


def gateway_certificates(folder: Path) -> GatewayCertificates:
    """A throwaway CA and a serving certificate for ``127.0.0.1`` (RFC 5280 §4.2.1.6: an IP
    address SAN, which is what kube-apiserver, Node and Chromium match an IP URL against)."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tongxing-kubectl-test-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    serving = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tongxing-gateway")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    files = GatewayCertificates(
        ca_file=folder / "ca.crt",
        certificate=folder / "gateway.crt",
        key=folder / "gateway.key",
        spki_sha256=base64.b64encode(hashlib.sha256(spki).digest()).decode(),
    )
    files.ca_file.write_bytes(ca.public_bytes(pem))
    files.certificate.write_bytes(serving.public_bytes(pem))
    files.key.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    files.key.chmod(0o600)
    return files


# --- the gateway, served over https -------------------------------------------------------------


def serve_gateway_https(
    settings: dict[str, str], tls: GatewayCertificates, port: int, log: Path
) -> Server:
    """The gateway as its own process, serving https on loopback: ``TONGXING_*`` ``settings``.

    ``tongxing serve --tls-certificate --tls-key``: granian's own TLS (rustls), the gateway's
    production server, not a TLS layer of the test's making.
    """
    argv = [
        sys.executable,
        "-m",
        "gateway.cli",
        "serve",
        f"--host={LOOPBACK}",
        f"--port={port}",
        f"--tls-certificate={tls.certificate}",
        f"--tls-key={tls.key}",
    ]
    return Server("gateway", argv, log=log, env={**os.environ, **settings}, cwd=REPO)


@dataclass
class HttpsGateway:
    """The gateway on an https issuer, and its platform admin token."""

    issuer: str
    admin_token: str = field(repr=False)
    ca_file: Path
    server: Server

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return requests.request(
            method,
            f"{self.issuer}/admin/v1{path}",
            json=body,
            timeout=10,
            headers={"Authorization": f"Bearer {self.admin_token}"},
            verify=str(self.ca_file),
        )

    def discovery(self) -> dict[str, Any]:
        response = requests.get(
            f"{self.issuer}/.well-known/openid-configuration",
            timeout=3,
            verify=str(self.ca_file),
        )
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> GatewayCertificates:
    return gateway_certificates(tmp_path_factory.mktemp("gateway-tls"))


@pytest.fixture(scope="module")
def https_gateway(
    tmp_path_factory: pytest.TempPathFactory, tls: GatewayCertificates
) -> Iterator[HttpsGateway]:
    folder = tmp_path_factory.mktemp("https-gateway")
    port = free_port()
    issuer = f"https://{LOOPBACK}:{port}"
    admin_token = secrets.token_urlsafe(32)
    settings = {
        "TONGXING_ISSUER": issuer,
        # The gateway's own issuer is https; the switch is for the harness's Keycloak, which
        # serves its realms (the region's issuer) over plain http on loopback.
        "TONGXING_INSECURE_ALLOW_HTTP": "true",
        "TONGXING_DATA_DIR": str(folder / "data"),
        "TONGXING_CREATE_KEYS": "true",
        "TONGXING_ID_TOKEN_LIFETIME": f"PT{ID_TOKEN_SECONDS}S",
        "TONGXING_ADMIN_TOKEN": admin_token,
        **{
            f"TONGXING_{name}": secrets.token_urlsafe(32)
            for name in ("NATIONAL_SECRET", "PAIRWISE_SECRET", "SESSION_SECRET", "MFA_SECRET")
        },
    }
    server = serve_gateway_https(settings, tls, port, folder / "gateway.log")
    gateway = HttpsGateway(issuer, admin_token, tls.ca_file, server)

    def answers() -> bool:
        try:
            return bool(gateway.discovery()["issuer"] == issuer)
        except requests.RequestException:
            return False

    server.wait_until(answers, timeout=60, what="serving discovery over https")
    try:
        yield gateway
    finally:
        server.stop()


# --- the region (a Keycloak realm) and the portals -----------------------------------------------


@dataclass
class Region:
    """张三's province: a Keycloak realm registered with the gateway, and its token endpoint."""

    keycloak: KeycloakRegion
    token_endpoint: str


@pytest.fixture(scope="module")
def region(keycloak: KeycloakEndpoint, https_gateway: HttpsGateway) -> Iterator[Region]:
    """A realm with 张三 (his identity number as a claim) and the gateway's confidential client,
    as :func:`gateway_fixtures.keycloak_region` makes it for a plain-HTTP gateway."""
    admin = KeycloakAdmin(
        connection=KeycloakOpenIDConnection(
            server_url=keycloak.url,
            username=keycloak.admin_user,
            password=keycloak.admin_password,
            realm_name="master",
            user_realm_name="master",
        )
    )
    code = "zj"
    realm = f"kubectl-{uuid.uuid4().hex[:6]}"
    admin.create_realm({"realm": realm, "enabled": True})
    try:
        admin.change_current_realm(realm)
        profile = admin.get_realm_users_profile()
        profile["unmanagedAttributePolicy"] = "ENABLED"
        admin.update_realm_users_profile(profile)
        secret = secrets.token_urlsafe(24)
        admin.create_client(
            {
                "clientId": "tongxing",
                "secret": secret,
                "publicClient": False,
                "standardFlowEnabled": True,
                "directAccessGrantsEnabled": False,
                "redirectUris": [f"{https_gateway.issuer}/callback/{code}"],
                "attributes": {"pkce.code.challenge.method": "S256"},
                "protocolMappers": [
                    {
                        "name": "id_number",
                        "protocol": "openid-connect",
                        "protocolMapper": "oidc-usermodel-attribute-mapper",
                        "config": {
                            "user.attribute": "id_number",
                            "claim.name": "id_number",
                            "id.token.claim": "true",
                            "access.token.claim": "false",
                            "userinfo.token.claim": "true",
                            "jsonType.label": "String",
                        },
                    }
                ],
            }
        )
        person = KeycloakRegion(code, realm, admin)
        admin.create_user(
            {
                "username": person.username,
                "firstName": "三",
                "lastName": "张",
                "enabled": True,
                "email": "zhangsan@example.cn",
                "emailVerified": True,
                "attributes": {"id_number": [PERSON_ID]},
                "credentials": [{"type": "password", "value": person.password, "temporary": False}],
            }
        )
        response = https_gateway.admin(
            "PUT",
            f"/regions/{code}",
            {
                "names": {"zh": "浙江", "en": "Zhejiang"},
                "kind": "province",
                "issuer": keycloak.issuer(realm),
                "client_id": "tongxing",
                "client_secret": secret,
            },
        )
        assert response.status_code == 201, response.text
        yield Region(person, f"{keycloak.issuer(realm)}/protocol/openid-connect/token")
    finally:
        admin.change_current_realm("master")
        admin.delete_realm(realm)


@dataclass(frozen=True)
class KubernetesPortal:
    """A portal registered at the gateway, driven by openid-client as kubectl's login helper
    (kubelogin) would drive it: a public client, code flow with PKCE."""

    client_id: str
    redirect_uri: str


def register_public_portal(
    gateway: HttpsGateway, site: PortalSite, name: str, **extra: Any
) -> KubernetesPortal:
    client_id = f"{name}-{uuid.uuid4().hex[:6]}"
    redirect_uri = f"{site.base}/{client_id}/callback"
    response = gateway.admin(
        "PUT",
        f"/portals/{client_id}",
        {
            "names": {"zh": f"{name} 集群", "en": f"{name} cluster"},
            "owner": "zj",
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": "none",
            "scopes": ["openid", "profile"],
            **extra,
        },
    )
    assert response.status_code == 201, response.text
    assert "client_secret" not in response.json()
    return KubernetesPortal(client_id, redirect_uri)


def openid_client(ca_file: Path, command: str, *args: str) -> Any:
    """``tests/peers/rp.mjs`` (openid-client) trusting the test CA (``NODE_EXTRA_CA_CERTS``)."""
    done = subprocess.run(
        ["node", str(PEERS / "rp.mjs"), command, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=PEERS,
        env={**os.environ, "NODE_EXTRA_CA_CERTS": str(ca_file)},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def sign_in_for_id_token(
    page: Page,
    gateway: HttpsGateway,
    site: PortalSite,
    portal: KubernetesPortal,
    person: KeycloakRegion | None,
) -> str:
    """The code flow through Chromium; the ID token openid-client validated. ``person`` signs in
    at the region's Keycloak; ``None`` when the gateway's SSO session already knows them."""
    client = json.dumps({"client_id": portal.client_id})
    started = openid_client(
        gateway.ca_file,
        "authorize",
        gateway.issuer,
        client,
        portal.redirect_uri,
        "openid profile",
        json.dumps({"region": "zj"}),
    )
    page.goto(started["url"])
    if person is not None:
        sign_in_at_keycloak(page, person)
    page.wait_for_url(f"{portal.redirect_uri}**")
    tokens = openid_client(
        gateway.ca_file,
        "callback",
        gateway.issuer,
        client,
        site.last_visit(portal.redirect_uri),
        json.dumps(started["pending"]),
    )
    token: str = tokens["id_token"]
    return token


@pytest.fixture(scope="module")
def kubernetes_portal(https_gateway: HttpsGateway, site: PortalSite) -> KubernetesPortal:
    # Pairwise: RBAC binds the identifier of this portal's sector (OIDC Core §8.1), which no
    # public portal sees.
    return register_public_portal(https_gateway, site, "kubernetes", subject_type="pairwise")


@pytest.fixture(scope="module")
def https_browser(browser: Browser, chromium: Path, tls: GatewayCertificates) -> Iterator[Browser]:
    """Chromium that accepts the gateway's certificate by its public key, and nothing else
    (``--ignore-certificate-errors-spki-list``): a browser of the session's Playwright."""
    launched = browser.browser_type.launch(
        executable_path=str(chromium),
        args=[*LAUNCH_ARGS, f"--ignore-certificate-errors-spki-list={tls.spki_sha256}"],
        headless=True,
    )
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture
def https_page(https_browser: Browser) -> Iterator[Page]:
    context = https_browser.new_context(locale="zh-CN")
    yield context.new_page()
    context.close()


# --- the API server that trusts the gateway ------------------------------------------------------


def authentication_config(
    gateway: HttpsGateway, tls: GatewayCertificates, audience: str
) -> dict[str, Any]:
    """The structured authentication configuration (KEP-3331, ``v1beta1`` in Kubernetes 1.32).

    ``username``: the ``sub`` with a prefix, so no gateway identity can ever be mistaken for a
    name the cluster gives out itself (``system:...``, a ServiceAccount). ``uid``: the ``sub``
    as it is. No ``groups``: the gateway asserts none. ``extra``: the level and the home region
    the token states, for the audit log; an absent claim adds nothing (``has()``).
    """
    return {
        "apiVersion": "apiserver.config.k8s.io/v1beta1",
        "kind": "AuthenticationConfiguration",
        "jwt": [
            {
                "issuer": {
                    "url": gateway.issuer,
                    "certificateAuthority": tls.ca_pem,
                    "audiences": [audience],
                },
                "claimMappings": {
                    "username": {"claim": "sub", "prefix": USERNAME_PREFIX},
                    "uid": {"claim": "sub"},
                    "extra": [
                        {
                            "key": "tongxing.io/acr",
                            "valueExpression": "has(claims.acr) ? claims.acr : ''",
                        },
                        {
                            "key": "tongxing.io/home-region",
                            "valueExpression": (
                                "has(claims.home_region) ? claims.home_region : ''"
                            ),
                        },
                    ],
                },
            }
        ],
    }


@pytest.fixture(scope="module")
def trusting_apiserver(
    kube: KubeEndpoint,
    tmp_path_factory: pytest.TempPathFactory,
    https_gateway: HttpsGateway,
    tls: GatewayCertificates,
    kubernetes_portal: KubernetesPortal,
) -> Iterator[KubeEndpoint]:
    """kube-apiserver with ``--authentication-config`` naming the gateway; the Region CRD."""
    folder = tmp_path_factory.mktemp("apiserver")
    config = folder / "authentication-config.yaml"
    config.write_text(
        yaml.safe_dump(authentication_config(https_gateway, tls, kubernetes_portal.client_id))
    )
    extra: ExtraApiServer = start_extra_apiserver(
        kube, folder / "kube", [f"--authentication-config={config}"]
    )
    try:
        install_crds(extra.endpoint)
        yield extra.endpoint
    finally:
        extra.stop()


@dataclass
class Cluster:
    """The trusting API server seen by a national identity: kubectl with a bearer token."""

    kube: KubeEndpoint
    kubeconfig: Path

    def kubectl(self, token: str, *args: str) -> subprocess.CompletedProcess[str]:
        """``kubectl --token`` with a kubeconfig that holds the cluster and no credentials."""
        return subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", f"--token={token}", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def status(self, token: str, namespace: str) -> int:
        """The HTTP status of listing Regions in ``namespace`` with ``token``."""
        return requests.get(
            f"{self.kube.server}/apis/tongxing.io/v1alpha1/namespaces/{namespace}/regions",
            headers={"Authorization": f"Bearer {token}"},
            verify=self.kube.ca_file,
            timeout=10,
        ).status_code

    def whoami(self, token: str) -> dict[str, Any]:
        done = self.kubectl(token, "auth", "whoami", "-o", "json")
        assert done.returncode == 0, done.stderr
        user: dict[str, Any] = json.loads(done.stdout)["status"]["userInfo"]
        return user

    def refused(self, token: str, namespace: str) -> None:
        """401: the API server does not know who this is (RFC 6750 §3.1, ``invalid_token``)."""
        done = self.kubectl(token, "get", "regions", "-n", namespace)
        assert done.returncode != 0
        assert "You must be logged in to the server (Unauthorized)" in done.stderr, done.stderr
        assert self.status(token, namespace) == 401


def region_manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "tongxing.io/v1alpha1",
        "kind": "Region",
        "metadata": {"name": name},
        "spec": {
            "code": name,
            "names": {"zh": "浙江省", "en": "Zhejiang"},
            "kind": "province",
            "keycloak": {"url": "http://keycloak.invalid"},
        },
    }


def read_only_binding(namespace: str, username: str) -> list[dict[str, Any]]:
    """A Role that lists Regions in ``namespace`` and a RoleBinding of it to one person."""
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "region-reader", "namespace": namespace},
            "rules": [
                {"apiGroups": ["tongxing.io"], "resources": ["regions"], "verbs": ["get", "list"]}
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "region-reader-zhangsan", "namespace": namespace},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "region-reader",
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": username}
            ],
        },
    ]


@pytest.fixture(scope="module")
def cluster(trusting_apiserver: KubeEndpoint, tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    """Two namespaces with one Region each; no binding for anyone yet."""
    for namespace in ("onboarding", "elsewhere"):
        kubectl(trusting_apiserver, "create", "namespace", namespace)
        kubectl(
            trusting_apiserver,
            "apply",
            "-n",
            namespace,
            "-f",
            "-",
            stdin=yaml.safe_dump(region_manifest(f"zj-{namespace[:5]}")),
        )
    path = tmp_path_factory.mktemp("national-kubeconfig") / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "trusting",
                        "cluster": {
                            "server": trusting_apiserver.server,
                            "certificate-authority": trusting_apiserver.ca_file,
                        },
                    }
                ],
                "users": [{"name": "national", "user": {}}],
                "contexts": [
                    {"name": "national", "context": {"cluster": "trusting", "user": "national"}}
                ],
                "current-context": "national",
            }
        )
    )
    path.chmod(0o600)
    return Cluster(trusting_apiserver, path)


def wait_for_authentication(cluster: Cluster, token: str, timeout: float = 60) -> dict[str, Any]:
    """``kubectl auth whoami`` once the API server's JWT authenticator has read the gateway's
    discovery and keys (it does so in the background after it starts)."""
    deadline = time.monotonic() + timeout
    while True:
        done = cluster.kubectl(token, "auth", "whoami", "-o", "json")
        if done.returncode == 0:
            user: dict[str, Any] = json.loads(done.stdout)["status"]["userInfo"]
            return user
        assert time.monotonic() < deadline, done.stderr
        time.sleep(1)


def claims_of(token: str) -> dict[str, Any]:
    """The payload of a JWS, unverified: only to name what the test sends (the API server
    and openid-client verified it)."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def header_of(token: str) -> dict[str, Any]:
    part = token.split(".")[0]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


# --- the test ------------------------------------------------------------------------------------


def test_kubectl_lists_regions_only_where_rbac_binds_the_national_identity(
    https_gateway: HttpsGateway,
    region: Region,
    site: PortalSite,
    kubernetes_portal: KubernetesPortal,
    cluster: Cluster,
    https_page: Page,
) -> None:
    id_token = sign_in_for_id_token(
        https_page, https_gateway, site, kubernetes_portal, region.keycloak
    )
    claims = claims_of(id_token)
    assert claims["iss"] == https_gateway.issuer
    assert claims["aud"] == kubernetes_portal.client_id
    username = f"{USERNAME_PREFIX}{claims['sub']}"

    # Who the API server says this is: the pairwise sub, prefixed; no group but the one every
    # authenticated user has; the level and home region as extra.
    user = wait_for_authentication(cluster, id_token)
    assert user["username"] == username
    assert user["uid"] == claims["sub"]
    assert user["groups"] == ["system:authenticated"]
    assert user["extra"] == {"tongxing.io/acr": ["loa1"], "tongxing.io/home-region": ["zj"]}

    # Authenticated is not authorised: without a binding, nothing.
    for namespace in ("onboarding", "elsewhere"):
        assert cluster.status(id_token, namespace) == 403

    # The platform binds this person to reading Regions in one namespace.
    kubectl(
        cluster.kube,
        "apply",
        "-f",
        "-",
        stdin=yaml.safe_dump_all(read_only_binding("onboarding", username)),
    )
    listed = cluster.kubectl(id_token, "get", "regions", "-n", "onboarding", "-o", "name")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["region.tongxing.io/zj-onboa"]

    elsewhere = cluster.kubectl(id_token, "get", "regions", "-n", "elsewhere")
    assert elsewhere.returncode != 0
    assert "Forbidden" in elsewhere.stderr
    assert f'User "{username}" cannot list resource "regions"' in elsewhere.stderr
    assert cluster.status(id_token, "elsewhere") == 403
    everywhere = cluster.kubectl(id_token, "get", "regions", "--all-namespaces")
    assert everywhere.returncode != 0
    assert "Forbidden" in everywhere.stderr
    # Nor may it write where it may read.
    assert (
        cluster.kubectl(
            id_token, "auth", "can-i", "create", "regions", "-n", "onboarding"
        ).stdout.strip()
        == "no"
    )
    assert time.time() < claims["exp"], "the machine is too slow for ID_TOKEN_SECONDS"

    # Another audience: the gateway's own token for another portal, on the same host so its
    # pairwise sub is the very same. Only the audience tells them apart, and it does.
    other_portal = register_public_portal(https_gateway, site, "other", subject_type="pairwise")
    other_token = sign_in_for_id_token(https_page, https_gateway, site, other_portal, None)
    assert claims_of(other_token)["sub"] == claims["sub"]
    assert claims_of(other_token)["aud"] == other_portal.client_id
    cluster.refused(other_token, "onboarding")

    # Another issuer: the region's Keycloak, for the same person, with the kubernetes portal's
    # client id as its audience.
    keycloak_token = keycloak_id_token(region, kubernetes_portal.client_id)
    assert claims_of(keycloak_token)["aud"] == kubernetes_portal.client_id
    cluster.refused(keycloak_token, "onboarding")

    # The gateway's issuer, audience, sub and key id, signed by a key the gateway never held.
    forged = jwt.encode(
        {"alg": "RS256", "kid": header_of(id_token)["kid"]},
        {**claims, "iat": int(time.time()), "exp": int(time.time()) + 300},
        RSAKey.generate_key(2048),
    )
    cluster.refused(forged, "onboarding")

    # Expired: the very token that listed Regions above, once its exp has passed.
    time.sleep(max(0.0, claims["exp"] - time.time()) + TOKEN_CACHE_SECONDS + 2)
    cluster.refused(id_token, "onboarding")


def keycloak_id_token(region: Region, client_id: str) -> str:
    """An ID token Keycloak issues to 张三 for a client of the realm named ``client_id``
    (the resource owner password grant, RFC 6749 §4.3, for a public client made for this)."""
    admin = region.keycloak.admin
    admin.change_current_realm(region.keycloak.realm)
    admin.create_client(
        {
            "clientId": client_id,
            "publicClient": True,
            "standardFlowEnabled": False,
            "directAccessGrantsEnabled": True,
        }
    )
    response = requests.post(
        region.token_endpoint,
        data={
            "grant_type": "password",
            "client_id": client_id,
            "username": region.keycloak.username,
            "password": region.keycloak.password,
            "scope": "openid",
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["id_token"]
    return token
