"""``tongxing demo``: the gateway with a small federation, on loopback, from embedded defaults.

Three regions are real OpenID Providers: Keycloak realms (浙江 a province, 上海 a municipality,
公安部 a department) in the Keycloak the demo is given, each with the gateway as a confidential
client, mappers that put the resident identity number and the full name into the ID token, zh-CN
and English login pages, and demo citizens. One of them, 张三, is registered in 浙江 and in 上海
with the same identity number: whichever region he signs in through, the portals see one
national identity ("一次注册，全网通行").

Two demo portals (:mod:`gateway.demo_portal`) are relying parties of the gateway with pairwise
subjects. Everything listens on 127.0.0.1; the gateway reaches the realms over HTTP exactly as it
would reach a province's IdP. Regions and portals are registered through the gateway's registry
in-process (the admin API works too: its token is in the secrets file).

State lives in the data folder: the SQLite store, the signing keys (generated on first start)
and ``secrets.json`` (mode 0600), which holds the gateway's secrets, the realms' client secrets,
the portals' client secrets and the citizens' passwords, generated once and reused, so a restart
keeps every login working. Provisioning is idempotent: realms, clients and users are created or
brought back to what the demo expects.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Final

import requests
from keycloak import KeycloakAdmin, KeycloakOpenIDConnection
from keycloak.exceptions import KeycloakAuthenticationError, KeycloakError
from pydantic import SecretStr, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from gateway.app import create_app
from gateway.demo_portal import PortalConfig, PortalLink, create_portal_app
from gateway.identity import check_character
from gateway.keys import KeyFileError
from gateway.registry import ClaimMapping, Names, Portal, Region, RegionKind, hash_secret
from gateway.services import Services, build_services
from gateway.settings import Settings
from gateway.wsgi import BackgroundServer, ServerUnavailableError

log = logging.getLogger(__name__)

LOOPBACK: Final = "127.0.0.1"
SECRETS_FILE: Final = "secrets.json"
SECRETS_VERSION: Final = 1
GATEWAY_CLIENT_ID: Final = "tongxing"
KEYCLOAK_TIMEOUT: Final = 20


class DemoError(Exception):
    """The demo cannot start; the message says why and what to do."""


@dataclass(frozen=True)
class KeycloakAccess:
    """A Keycloak and its master-realm administrator."""

    url: str
    admin_user: str
    admin_password: str = field(repr=False)


@dataclass(frozen=True)
class DemoOptions:
    keycloak: KeycloakAccess
    data_dir: Path
    gateway_port: int
    portal_ports: tuple[int, int]
    #: Realm names are ``<prefix><region code>``; tests use a prefix of their own.
    realm_prefix: str = "tongxing-demo-"
    verbose: bool = False


@dataclass(frozen=True)
class DemoRegion:
    code: str
    kind: RegionKind
    zh: str
    en: str
    realm_title_zh: str
    realm_title_en: str


REGIONS: Final = (
    DemoRegion(
        "zj", RegionKind.PROVINCE, "浙江", "Zhejiang", "浙江省统一身份认证", "Zhejiang identity"
    ),
    DemoRegion(
        "sh",
        RegionKind.MUNICIPALITY,
        "上海",
        "Shanghai",
        "上海市统一身份认证",
        "Shanghai identity",
    ),
    DemoRegion(
        "mps",
        RegionKind.DEPARTMENT,
        "公安部",
        "Ministry of Public Security",
        "公安部网络身份认证",
        "MPS network identity",
    ),
)


def identity_number(address: str, birth: str, sequence: str) -> str:
    """A well-formed GB 11643-1999 number: address code, birth date, sequence, check character."""
    first17 = address + birth + sequence
    return first17 + check_character(first17)


@dataclass(frozen=True)
class Citizen:
    username: str
    family_name: str
    given_name: str
    identity_number: str = field(repr=False)
    phone_number: str
    regions: tuple[str, ...]
    story_zh: str
    story_en: str

    @property
    def full_name(self) -> str:
        return self.family_name + self.given_name


CITIZENS: Final = (
    Citizen(
        "zhangsan",
        "张",
        "三",
        identity_number("330106", "19900307", "123"),
        "+86 138 0013 8000",
        ("zj", "sh"),
        "在浙江登记，后迁居上海：两个地区账号，一个国家身份",
        "registered in Zhejiang, moved to Shanghai: two regional accounts, one national identity",
    ),
    Citizen(
        "lisi",
        "李",
        "四",
        identity_number("310104", "19851120", "456"),
        "+86 139 0013 9000",
        ("sh",),
        "上海居民",
        "a Shanghai resident",
    ),
    Citizen(
        "wangwu",
        "王",
        "五",
        identity_number("110102", "19780515", "789"),
        "+86 137 0013 7000",
        ("mps",),
        "持有公安部网络身份认证账号",
        "holds an MPS network identity account",
    ),
)


@dataclass(frozen=True)
class DemoPortal:
    client_id: str
    owner: str
    name_zh: str
    name_en: str
    scopes: tuple[str, ...]
    accent: str


PORTALS: Final = (
    DemoPortal(
        "zj-services",
        "zj",
        "浙江政务服务网（演示）",
        "Zhejiang Government Services (demo)",
        ("openid", "profile", "phone"),
        "#0f6e5f",
    ),
    DemoPortal(
        "mps-services",
        "mps",
        "公安部政务服务平台（演示）",
        "Ministry of Public Security Services (demo)",
        ("openid", "profile"),
        "#0b3d6e",
    ),
)
# Pairwise subjects are per sector, the redirect URI's host (OIDC Core §8.1): portal B is reached
# as "localhost" (still 127.0.0.1) so that the two portals are two sectors with two subjects.
PORTAL_HOSTS: Final = ("127.0.0.1", "localhost")


# --- secrets -----------------------------------------------------------------------------------


class DemoSecrets:
    """Secrets generated once into a 0600 JSON file in the data folder, and reused."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._values: dict[str, str] = self._load()
        self._dirty = False

    def _load(self) -> dict[str, str]:
        try:
            mode = self.path.stat().st_mode
        except FileNotFoundError:
            return {}
        if stat.S_IMODE(mode) & 0o077:
            raise DemoError(f"{self.path} is readable by others; chmod 600 it (or delete it)")
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise DemoError(
                f"{self.path} cannot be read ({type(error).__name__}); delete it to start afresh"
            ) from None
        if not isinstance(document, dict) or document.get("version") != SECRETS_VERSION:
            raise DemoError(f"{self.path} is not a demo secrets file; delete it to start afresh")
        values = document.get("secrets")
        if not isinstance(values, dict):
            raise DemoError(f"{self.path} is not a demo secrets file; delete it to start afresh")
        return {str(k): str(v) for k, v in values.items()}

    def get(self, name: str, make: Callable[[], str] | None = None) -> str:
        """The secret called ``name``, generated (by ``make``, default 43 random characters)."""
        if name not in self._values:
            self._values[name] = make() if make is not None else secrets.token_urlsafe(32)
            self._dirty = True
        return self._values[name]

    def save(self) -> None:
        if not self._dirty:
            return
        data = json.dumps({"version": SECRETS_VERSION, "secrets": self._values}, indent=2)
        descriptor, name = tempfile.mkstemp(dir=self.path.parent, prefix=".secrets.", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
                os.fchmod(stream.fileno(), 0o600)
                stream.write(data + "\n")
            Path(name).replace(self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                Path(name).unlink()
            raise
        self._dirty = False


def required_secrets() -> list[str]:
    """The gateway's secret settings without a default: the demo generates each one once."""
    return [
        name
        for name, spec in Settings.model_fields.items()
        if spec.annotation is SecretStr and spec.is_required()
    ]


def _password() -> str:
    # Short enough to type on a login page, random enough for a loopback demo.
    return f"tx-{secrets.token_hex(4)}"


# --- Keycloak ----------------------------------------------------------------------------------


def _mapper(name: str, attribute: str) -> dict[str, Any]:
    """A user attribute into the ID token and userinfo under the same name."""
    return {
        "name": name,
        "protocol": "openid-connect",
        "protocolMapper": "oidc-usermodel-attribute-mapper",
        "config": {
            "user.attribute": attribute,
            "claim.name": attribute,
            "id.token.claim": "true",
            "access.token.claim": "false",
            "userinfo.token.claim": "true",
            "jsonType.label": "String",
        },
    }


MAPPERS: Final = (
    _mapper("id_number", "id_number"),
    _mapper("full_name", "full_name"),
    _mapper("phone_number", "phone_number"),
)


class RealmProvisioner:
    """Creates or brings back a demo region's realm in Keycloak (python-keycloak, admin API)."""

    def __init__(self, access: KeycloakAccess) -> None:
        self.access = access
        self.admin = KeycloakAdmin(
            connection=KeycloakOpenIDConnection(
                server_url=access.url,
                username=access.admin_user,
                password=access.admin_password,
                realm_name="master",
                user_realm_name="master",
                timeout=KEYCLOAK_TIMEOUT,
            )
        )

    def issuer(self, realm: str) -> str:
        return f"{self.access.url}/realms/{realm}"

    def provision(
        self,
        realm: str,
        region: DemoRegion,
        redirect_uri: str,
        client_secret: str,
        citizens: list[tuple[Citizen, str]],
    ) -> None:
        admin = self.admin
        admin.change_current_realm("master")
        settings = {
            "realm": realm,
            "enabled": True,
            "displayName": f"{region.realm_title_zh}（演示） {region.realm_title_en} (demo)",
            "internationalizationEnabled": True,
            "supportedLocales": ["zh-CN", "en"],
            "defaultLocale": "zh-CN",
            "registrationAllowed": False,
            "resetPasswordAllowed": False,
            "loginWithEmailAllowed": False,
        }
        # Not create_realm(skip_exists=True): python-keycloak 7.1 raises TypeError on the 409.
        if realm in {entry.get("realm") for entry in admin.get_realms()}:
            admin.update_realm(realm, settings)
        else:
            admin.create_realm(settings)
        admin.change_current_realm(realm)
        profile = admin.get_realm_users_profile()
        # The identity number is an attribute only an administrator may set: a citizen must not
        # be able to rewrite it in Keycloak's account console.
        if profile.get("unmanagedAttributePolicy") != "ADMIN_EDIT":
            profile["unmanagedAttributePolicy"] = "ADMIN_EDIT"
            admin.update_realm_users_profile(profile)
        self._client(redirect_uri, client_secret)
        for citizen, password in citizens:
            self._user(citizen, password)

    def _client(self, redirect_uri: str, secret: str) -> None:
        admin = self.admin
        client = {
            "clientId": GATEWAY_CLIENT_ID,
            "name": "通行 Tongxing national gateway",
            "enabled": True,
            "secret": secret,
            "publicClient": False,
            "clientAuthenticatorType": "client-secret",
            "standardFlowEnabled": True,
            "implicitFlowEnabled": False,
            "directAccessGrantsEnabled": False,
            "serviceAccountsEnabled": False,
            "redirectUris": [redirect_uri],
            "webOrigins": [],
            "attributes": {"pkce.code.challenge.method": "S256"},
        }
        internal_id = admin.get_client_id(GATEWAY_CLIENT_ID)
        if internal_id is None:
            admin.create_client({**client, "protocolMappers": list(MAPPERS)})
            return
        admin.update_client(internal_id, client)
        present = {m.get("name") for m in admin.get_mappers_from_client(internal_id)}
        for mapper in MAPPERS:
            if mapper["name"] not in present:
                admin.add_mapper_to_client(internal_id, mapper)

    def _user(self, citizen: Citizen, password: str) -> None:
        admin = self.admin
        user = {
            "username": citizen.username,
            "firstName": citizen.given_name,
            "lastName": citizen.family_name,
            "email": f"{citizen.username}@example.cn",
            "emailVerified": True,
            "enabled": True,
            "attributes": {
                "id_number": [citizen.identity_number],
                "full_name": [citizen.full_name],
                "phone_number": [citizen.phone_number],
            },
        }
        user_id = admin.get_user_id(citizen.username)
        if user_id is None:
            user_id = admin.create_user(user)
        else:
            admin.update_user(user_id, user)
        admin.set_user_password(user_id, password, temporary=False)

    def delete(self, realm: str) -> None:
        self.admin.change_current_realm("master")
        with contextlib.suppress(KeycloakError):
            self.admin.delete_realm(realm)


# --- the demo ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunningPortal:
    config: PortalConfig
    url: str


class Demo:
    """The demo federation: start it, use its URLs, stop it."""

    def __init__(self, options: DemoOptions) -> None:
        self.options = options
        self._servers: list[BackgroundServer] = []
        self.services: Services | None = None
        self.gateway_url = ""
        self.portals: list[RunningPortal] = []
        self.citizens: list[tuple[Citizen, str]] = []
        self.realms: dict[str, str] = {}
        self.admin_token = ""

    def realm(self, code: str) -> str:
        return f"{self.options.realm_prefix}{code}"

    def start(self) -> None:
        """Bind, provision, register, serve; on any failure, stop what was started."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        options = self.options
        data_dir = options.data_dir
        try:
            data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as error:
            raise DemoError(f"cannot create {data_dir}: {error.strerror}") from None
        store = DemoSecrets(data_dir / SECRETS_FILE)

        gateway = self._bind(LOOPBACK, options.gateway_port, "--port")
        self.gateway_url = f"http://{LOOPBACK}:{gateway.port}"
        portal_servers = [
            self._bind(LOOPBACK, port, flag)
            for port, flag in zip(
                options.portal_ports, ("--portal-a-port", "--portal-b-port"), strict=True
            )
        ]

        self.admin_token = store.get("admin_token")
        settings = Settings.model_validate(
            {
                "issuer": self.gateway_url,
                "data_dir": data_dir,
                "create_keys": True,
                "insecure_allow_http": True,
                **{name: store.get(name) for name in required_secrets()},
            }
        )
        self.citizens = [(c, store.get(f"password:{c.username}", _password)) for c in CITIZENS]
        region_secrets = {r.code: store.get(f"region:{r.code}") for r in REGIONS}
        portal_secrets = {p.client_id: store.get(f"portal:{p.client_id}") for p in PORTALS}
        store.save()

        self.services = services = self._open(settings)
        self._provision(region_secrets)
        now = datetime.now(UTC)
        self._register_regions(services, region_secrets, now)
        self._register_portals(services, portal_servers, portal_secrets, now)
        gateway.attach(create_app(services=services))
        for server in self._servers:
            server.start()

    def _register_regions(
        self, services: Services, region_secrets: dict[str, str], now: datetime
    ) -> None:
        for region in REGIONS:
            services.registry.put_region(
                Region(
                    code=region.code,
                    names=Names(zh=region.zh, en=region.en),
                    kind=region.kind,
                    issuer=self._issuer(region.code),
                    client_id=GATEWAY_CLIENT_ID,
                    client_secret=SecretStr(region_secrets[region.code]),
                    scopes=["openid", "profile"],
                    # A new region is data: these realms name the person's claims their own way.
                    claims=ClaimMapping(
                        identity_number="id_number", name="full_name", phone_number="phone_number"
                    ),
                ),
                now,
            )

    def _register_portals(
        self,
        services: Services,
        servers: list[BackgroundServer],
        portal_secrets: dict[str, str],
        now: datetime,
    ) -> None:
        bases = [
            f"http://{host}:{server.port}"
            for host, server in zip(PORTAL_HOSTS, servers, strict=True)
        ]
        for index, (portal, server) in enumerate(zip(PORTALS, servers, strict=True)):
            other = PORTALS[1 - index]
            config = PortalConfig(
                client_id=portal.client_id,
                client_secret=portal_secrets[portal.client_id],
                issuer=self.gateway_url,
                base_url=bases[index],
                name_zh=portal.name_zh,
                name_en=portal.name_en,
                scope=" ".join(portal.scopes),
                accent=portal.accent,
                links=(PortalLink(f"{other.name_zh} {other.name_en}", f"{bases[1 - index]}/"),),
            )
            services.registry.put_portal(
                Portal(
                    client_id=portal.client_id,
                    names=Names(zh=portal.name_zh, en=portal.name_en),
                    owner=portal.owner,
                    redirect_uris=[config.redirect_uri],
                    post_logout_redirect_uris=[config.post_logout_redirect_uri],
                    backchannel_logout_uri=config.backchannel_logout_uri,
                    client_secret_hash=hash_secret(config.client_secret),
                    scopes=list(portal.scopes),
                    subject_type="pairwise",
                ),
                now,
            )
            server.attach(create_portal_app(config))
            self.portals.append(RunningPortal(config, f"{config.base_url}/"))

    def _bind(self, host: str, port: int, flag: str) -> BackgroundServer:
        try:
            server = BackgroundServer(host, port)
        except ServerUnavailableError:
            raise DemoError(
                f"port {port} on {host} is in use; choose another with {flag}"
            ) from None
        self._servers.append(server)
        return server

    def _open(self, settings: Settings) -> Services:
        try:
            return build_services(settings)
        except (KeyFileError, SQLAlchemyError, OSError) as error:
            raise DemoError(
                f"cannot open the demo's store or keys in {settings.data_dir} "
                f"({type(error).__name__}); delete the folder to start afresh"
            ) from None

    def _issuer(self, code: str) -> str:
        return f"{self.options.keycloak.url}/realms/{self.realm(code)}"

    def _provision(self, region_secrets: dict[str, str]) -> None:
        access = self.options.keycloak
        try:
            provisioner = RealmProvisioner(access)
            for region in REGIONS:
                residents = [(c, p) for c, p in self.citizens if region.code in c.regions]
                provisioner.provision(
                    self.realm(region.code),
                    region,
                    f"{self.gateway_url}/callback/{region.code}",
                    region_secrets[region.code],
                    residents,
                )
                self.realms[region.code] = self.realm(region.code)
        except KeycloakAuthenticationError:
            raise DemoError(
                f"Keycloak at {access.url} refused the administrator {access.admin_user!r} "
                "(check --keycloak-admin and --keycloak-password)"
            ) from None
        except (KeycloakError, requests.RequestException, TypeError, ValueError) as error:
            # python-keycloak raises TypeError/ValueError for answers it did not expect.
            raise DemoError(
                f"cannot set up the demo realms in Keycloak at {access.url} "
                f"({type(error).__name__}: {_first_line(error)}); is it running?"
            ) from None

    def delete_realms(self) -> None:
        """Remove the demo's realms from Keycloak (tests clean up with this)."""
        provisioner = RealmProvisioner(self.options.keycloak)
        for realm in self.realms.values():
            provisioner.delete(realm)

    def stop(self) -> None:
        for server in reversed(self._servers):
            server.stop()
        self._servers.clear()
        if self.services is not None:
            self.services.close()
            self.services = None

    def banner(self) -> str:
        """What to open and who to sign in as."""
        portal_a, portal_b = self.portals
        lines = [
            "通行 Tongxing demo federation is running on loopback (Ctrl-C stops it).",
            "",
            f"  Gateway (OpenID Provider)  {self.gateway_url}/.well-known/openid-configuration",
            f"  Portal A  {portal_a.url}  {portal_a.config.name_zh}",
            f"  Portal B  {portal_b.url}  {portal_b.config.name_zh}",
            "",
            "  Regions: Keycloak realms the gateway brokers to over HTTP",
        ]
        for region in REGIONS:
            lines.append(f"    {region.code:<4} {region.zh:<6}\t{self._issuer(region.code)}")
        lines += ["", "  Demo citizens (username / password, regions):"]
        for citizen, password in self.citizens:
            regions = ",".join(citizen.regions)
            lines.append(
                f"    {citizen.username:<9} {password:<12} {citizen.full_name}  {regions:<6} "
                f"{citizen.story_en}"
            )
        lines += [
            "",
            "  Try it:",
            f"    1. Open portal A, click 登录 Sign in, choose 浙江 and sign in as "
            f"{CITIZENS[0].username}.",
            "    2. Open portal B and click Sign in: no chooser, no password (single sign-on);",
            "       its sub differs from portal A's (pairwise subjects).",
            "    3. Sign out at portal B: portal A's session ends too (back-channel logout).",
            f"    4. Sign in at portal A again through 上海 as {CITIZENS[0].username}:",
            "       the same sub as through 浙江 (register once, roam everywhere).",
            "",
            f"  Admin API: {self.gateway_url}/admin/v1 (bearer token: admin_token in "
            f"{self.options.data_dir / SECRETS_FILE})",
        ]
        return "\n".join(lines)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else "no detail"


@contextlib.contextmanager
def _quiet_request_logs(verbose: bool) -> Iterator[None]:
    logger = logging.getLogger("werkzeug")
    previous = logger.level
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(previous)


def run(options: DemoOptions) -> int:
    """Start the demo, print where to click, and serve until Ctrl-C or SIGTERM."""
    logging.basicConfig(
        level=logging.INFO if options.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    stopping = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    demo = Demo(options)
    with _quiet_request_logs(options.verbose):
        print(f"Setting up the demo regions in Keycloak at {options.keycloak.url} ...", flush=True)
        try:
            demo.start()
        except ValidationError as error:  # pragma: no cover - the embedded settings are valid
            fields = sorted({str(e["loc"][0]) for e in error.errors() if e["loc"]})
            raise DemoError(f"the demo's settings are invalid: {', '.join(fields)}") from None
        try:
            print(demo.banner(), flush=True)
            signal.signal(signal.SIGTERM, stop)
            with contextlib.suppress(KeyboardInterrupt):
                while not stopping.wait(0.5):
                    pass
            print("\nStopping the demo ...", flush=True)
        finally:
            demo.stop()
    return 0
