"""``tongxing demo``: the gateway with a small federation, on loopback, from embedded defaults.

Four regions are real OpenID Providers: Keycloak realms (浙江 a province, 上海 a municipality,
公安部 a department, 电子营业执照 the e-business-licence system, a region of kind ``enterprise``)
in the Keycloak the demo is given, built from the product's realm templates
(:mod:`tongxing_demo.realms`), with demo people (:mod:`tongxing_demo.federation`). A fifth realm
is the proofing provider, configured as ``proofing_providers`` (``TONGXING_PROOFING_PROVIDERS``).
Four demo portals (:mod:`tongxing_demo.portal`) are relying parties of the gateway with pairwise
subjects: two for people, an enterprise portal (people and enterprises) and one that needs
``loa3`` (a verified real name).
Everything listens on 127.0.0.1; the gateway reaches the realms over HTTP exactly as it would
reach a province's IdP. Regions and portals are registered through the gateway's registry
in-process (the admin API works too: its token is in the secrets file).

State lives in the data folder: the SQLite store, the signing keys (generated on first start)
and ``secrets.json`` (:mod:`tongxing_demo.secrets_file`), so a restart keeps every login working.
Provisioning is idempotent: realms, clients and users are created or brought back to what the
demo expects.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from pydantic import SecretStr, ValidationError
from realm_operator.keycloak import KeycloakAdminError, KeycloakUnauthorizedError
from realm_operator.models import OverrideError
from realm_operator.templates import GATEWAY_CLIENT_ID, TemplateError
from sqlalchemy.exc import SQLAlchemyError

from gateway.app import create_app
from gateway.keys import KeyFileError
from gateway.registry import ClaimMapping, Level, Names, Portal, Region, hash_secret
from gateway.services import Services, build_services
from gateway.settings import Settings
from gateway.wsgi import ServerUnavailableError, exit_on_sigterm
from tongxing_demo.errors import DemoError
from tongxing_demo.federation import (
    AGENT,
    CITIZENS,
    ENTERPRISE,
    ENTERPRISE_REGION,
    PORTAL_HOSTS,
    PORTALS,
    PROOFED_CLAIMS,
    PROOFING,
    PROOFING_ID,
    REGIONS,
    REPRESENTATIVE,
    TRUST_FRAMEWORK,
    Citizen,
)
from tongxing_demo.portal import PortalConfig, PortalLink, create_portal_app
from tongxing_demo.realms import (
    CLAIMS,
    KeycloakAccess,
    ProofingRealm,
    RealmProvisioner,
    RegionRealm,
    citizen_password,
    fits_password_policy,
)
from tongxing_demo.secrets_file import SECRETS_FILE, DemoSecrets, required_secrets
from tongxing_demo.server import BackgroundServer

log = logging.getLogger(__name__)

LOOPBACK: Final = "127.0.0.1"
#: Who is proofed in the walkthrough: the citizen of the region that vouches loa2.
PROOFED_PERSON: Final = next(c for c in CITIZENS if "mps" in c.regions)
PORTAL_FLAGS: Final = (
    "--portal-a-port",
    "--portal-b-port",
    "--enterprise-portal-port",
    "--loa3-portal-port",
)


@dataclass(frozen=True)
class DemoOptions:
    keycloak: KeycloakAccess
    data_dir: Path
    gateway_port: int
    #: Portal A, portal B, the enterprise portal and the loa3 portal (:data:`PORTALS`' order).
    portal_ports: tuple[int, int, int, int]
    #: Realm names are ``<prefix><region code>``; tests use a prefix of their own.
    realm_prefix: str = "tongxing-demo-"
    verbose: bool = False


#: The acr values Keycloak answers a password sign-in with: the templates' name for level 1
#: (``acr.loa.map``), and Keycloak's own "1" when no level condition ran in the flow.
PASSWORD_ACRS: Final = ("pwd", "1")


def demo_acr_mapping(mapping: dict[str, Level], sign_in_level: Level) -> dict[str, Level]:
    """The realm's acr mapping, with a password sign-in worth ``sign_in_level`` (a region
    vouching two factors for it, as the MPS network identity app does)."""
    if sign_in_level == "loa1":
        return mapping
    return {**mapping, **dict.fromkeys(PASSWORD_ACRS, sign_in_level)}


def proofing_provider(realm: ProofingRealm) -> dict[str, object]:
    """The demo's proofing provider as one entry of ``TONGXING_PROOFING_PROVIDERS``: where it
    is, and what the platform lets it vouch for (the trust framework, the claims, the
    evidence: OpenID Connect for Identity Assurance 1.0 §5.1)."""
    return {
        "id": PROOFING_ID,
        "names": {"zh": f"{PROOFING.zh}（演示）", "en": f"{PROOFING.en} (demo)"},
        "issuer": realm.issuer,
        "client_id": realm.client_id,
        "client_secret": realm.client_secret,
        "trust_frameworks": [TRUST_FRAMEWORK],
        "claims": list(PROOFED_CLAIMS),
        "evidence": ["document"],
        "documents": ["idcard"],
    }


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
        self.proofing: ProofingRealm | None = None

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
            for port, flag in zip(options.portal_ports, PORTAL_FLAGS, strict=True)
        ]

        self.admin_token = store.get("admin_token")
        self.citizens = [
            (c, store.get(f"password:{c.username}", citizen_password, fits_password_policy))
            for c in CITIZENS
        ]
        portal_secrets = {p.client_id: store.get(f"portal:{p.client_id}") for p in PORTALS}
        gateway_secrets = {name: store.get(name) for name in required_secrets()}
        store.save()

        # The realms first: the proofing provider's client secret is part of the settings.
        realms, proofing = self._provision()
        settings = Settings.model_validate(
            {
                "issuer": self.gateway_url,
                "data_dir": data_dir,
                "create_keys": True,
                "insecure_allow_http": True,
                # As TONGXING_PROOFING_PROVIDERS configures a deployment's (JSON).
                "proofing_providers": [proofing_provider(proofing)],
                **gateway_secrets,
            }
        )
        self.services = services = self._open(settings)
        now = datetime.now(UTC)
        self._register_regions(services, realms, now)
        self._register_portals(services, portal_servers, portal_secrets, now)
        gateway.attach(create_app(services=services))
        for server in self._servers:
            server.start()

    def _register_regions(
        self, services: Services, realms: dict[str, RegionRealm], now: datetime
    ) -> None:
        for region in REGIONS:
            realm = realms[region.code]
            services.registry.put_region(
                Region(
                    code=region.code,
                    names=Names(zh=region.zh, en=region.en),
                    kind=region.kind,
                    issuer=realm.issuer,
                    client_id=GATEWAY_CLIENT_ID,
                    client_secret=SecretStr(realm.client_secret),
                    scopes=["openid", "profile"],
                    # A new region is data: these realms name the person's claims their own way.
                    claims=ClaimMapping(**CLAIMS),
                    acr_mapping=demo_acr_mapping(realm.acr_mapping, region.sign_in_level),
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
            others = [(other, bases[i]) for i, other in enumerate(PORTALS) if i != index]
            config = PortalConfig(
                client_id=portal.client_id,
                client_secret=portal_secrets[portal.client_id],
                issuer=self.gateway_url,
                base_url=bases[index],
                name_zh=portal.name_zh,
                name_en=portal.name_en,
                scope=" ".join(portal.scopes),
                accent=portal.accent,
                links=tuple(PortalLink(o.name_zh, f"{base}/") for o, base in others),
                claims=portal.claims,
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
                    subject_kinds=portal.subject_kinds,
                    minimum_level=portal.minimum_level,
                    sector=portal.sector,
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

    def _provision(self) -> tuple[dict[str, RegionRealm], ProofingRealm]:
        access = self.options.keycloak
        provisioner = RealmProvisioner(access)
        realms: dict[str, RegionRealm] = {}
        try:
            for region in REGIONS:
                residents = [(c, p) for c, p in self.citizens if region.code in c.regions]
                realms[region.code] = provisioner.provision(
                    self.realm(region.code), region, self.gateway_url, residents
                )
                self.realms[region.code] = self.realm(region.code)
            # Everyone can be proofed, with the password of their region's account.
            proofing = provisioner.provision_proofing(
                self.realm(PROOFING.code), PROOFING, self.gateway_url, self.citizens
            )
            self.realms[PROOFING.code] = proofing.realm
            self.proofing = proofing
        except KeycloakUnauthorizedError:
            raise DemoError(
                f"Keycloak at {access.url} refused the administrator {access.admin_user!r} "
                "(check --keycloak-admin and --keycloak-password)"
            ) from None
        except KeycloakAdminError as error:
            raise DemoError(
                f"cannot set up the demo realms in Keycloak at {access.url} "
                f"({error.message}); is it running?"
            ) from None
        except (TemplateError, OverrideError) as error:  # pragma: no cover - the templates' own
            raise DemoError(f"the realm templates do not render the demo: {error}") from None
        return realms, proofing

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

    def _store_url(self) -> str:
        """The demo store's URL, for the audit commands (SQLite: no password in it)."""
        return self.services.settings.sqlalchemy_url if self.services is not None else "?"

    def banner(self) -> str:
        """What to open and who to sign in as."""
        portal_a, portal_b, business, tax = self.portals
        today = datetime.now(UTC).date().isoformat()
        mandates = f"{self.gateway_url}/account/mandates"
        ebl = next(r for r in REGIONS if r.code == ENTERPRISE_REGION)
        lines = [
            "通行 Tongxing demo federation is running on loopback (Ctrl-C stops it).",
            "",
            f"  Gateway (OpenID Provider)  {self.gateway_url}/.well-known/openid-configuration",
            f"  Portal A  {portal_a.url}  {portal_a.config.name_zh}",
            f"  Portal B  {portal_b.url}  {portal_b.config.name_zh}",
            f"  Portal C  {business.url}  {business.config.name_zh}  (people and enterprises)",
            f"  Portal D  {tax.url}  {tax.config.name_zh}  (needs loa3)",
            "",
            "  Regions: Keycloak realms the gateway brokers to over HTTP",
        ]
        for region in REGIONS:
            lines.append(f"    {region.code:<4} {region.zh:<6}\t{self._issuer(region.code)}")
        lines += [
            "  Proofing provider (TONGXING_PROOFING_PROVIDERS): a Keycloak realm asserting "
            "verified_claims",
            f"    {PROOFING_ID} {PROOFING.zh}\t{self._issuer(PROOFING.code)}  "
            f"(trust framework {TRUST_FRAMEWORK}: {', '.join(PROOFED_CLAIMS)})",
            "",
            "  Demo people (username / password, regions; everyone also has an account at the "
            "proofing provider, same password):",
        ]
        for citizen, password in self.citizens:
            regions = ",".join(citizen.regions)
            lines.append(
                f"    {citizen.username:<9} {password:<17} {citizen.full_name}  {regions:<6} "
                f"{citizen.story_en}"
            )
        lines += [
            "",
            f"  Enterprise: {ENTERPRISE.name} ({ENTERPRISE.name_en}), {ENTERPRISE.type},",
            f"    unified social credit code {ENTERPRISE.credit_code} (GB 32100-2015), asserted "
            f"by {ebl.zh} ({ebl.code})",
            f"    legal representative {REPRESENTATIVE.username} ({REPRESENTATIVE.full_name}); "
            f"agent {AGENT.username} ({AGENT.full_name}, resident identity number "
            f"{AGENT.identity_number})",
            "",
            "  Try it:",
            f"    1. Open portal A, click 登录 Sign in, choose 浙江 and sign in as "
            f"{CITIZENS[0].username}.",
            "    2. Open portal B and click Sign in: no chooser, no password (single sign-on);",
            "       its sub differs from portal A's (pairwise subjects).",
            "    3. Sign out at portal B: portal A's session ends too (back-channel logout).",
            f"    4. Sign in at portal A again through 上海 as {CITIZENS[0].username}:",
            "       the same sub as through 浙江 (register once, roam everywhere).",
            f"    5. In a new private window, open portal C, Sign in, choose {ebl.zh} and sign in "
            f"as {REPRESENTATIVE.username};",
            "       pick the enterprise: acting_for names it, its credit code and her role "
            "(legal_representative).",
            f"    6. Open {mandates} (still {REPRESENTATIVE.username}): grant a mandate to the "
            f"agent's identity number {AGENT.identity_number}",
            "       for portal C until a date; give the invitation code it shows to the agent.",
            f"    7. In another private window, sign in at portal C through 浙江 as "
            f"{AGENT.username} (as himself: no mandate yet);",
            f"       open {mandates}, enter the invitation code, then Sign in at portal C again:",
            "       act for the enterprise (acting_for: role agent, the mandate). When the "
            "representative",
            "       revokes the mandate, his next sign-in for the enterprise is refused.",
            f"    8. Open portal D and sign in through 公安部 as {PROOFED_PERSON.username}: "
            "that sign-in is worth loa2 (the MPS",
            "       network identity app is two factors), the portal needs loa3 (a verified real "
            "name), so the gateway",
            f"       sends you to the proofing provider: sign in there as "
            f"{PROOFED_PERSON.username} (same password). Agree to release",
            "       the verified name and date of birth: the portal sees acr loa3 and "
            f"verified_claims ({TRUST_FRAMEWORK}).",
            "       Through 浙江 (a password, loa1) the gateway first asks for a second factor "
            "you can only bind after",
            "       a sign-in worth loa2 (NIST SP 800-63B §6.1.2.1): the portal is told "
            "unmet_authentication_requirements.",
            "",
            f"  Admin API: {self.gateway_url}/admin/v1 (bearer token: admin_token in "
            f"{self.options.data_dir / SECRETS_FILE})",
            "",
            "  Operations:",
            f"    Your account (sign-ins, linked regions, consents, factor)  "
            f"{self.gateway_url}/consents",
            f"    Mandates (grant, accept, revoke)  {mandates}",
            f"    Metrics (Prometheus)  {self.gateway_url}/metrics",
            f"    Audit trail  tongxing audit verify --database-url {self._store_url()}",
            f"                 tongxing audit export --since {today} "
            f"--database-url {self._store_url()}",
        ]
        return "\n".join(lines)


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
    """Start the demo, print where to click, and serve until Ctrl-C or SIGTERM.

    SIGTERM unwinds like Ctrl-C, as ``tongxing serve`` stops (:func:`gateway.wsgi.exit_on_sigterm`):
    its handler only raises, so it cannot deadlock with the main thread it interrupts, and the
    servers are stopped and the store closed on the way out. It is handled from the start, so a
    SIGTERM while the realms are being set up stops what was started too. A second SIGTERM while
    stopping ends the process at once.
    """
    logging.basicConfig(
        level=logging.INFO if options.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    demo = Demo(options)
    previous = signal.getsignal(signal.SIGTERM)
    with _quiet_request_logs(options.verbose):
        print(f"Setting up the demo regions in Keycloak at {options.keycloak.url} ...", flush=True)
        exit_on_sigterm()
        try:
            try:
                demo.start()
            except ValidationError as error:  # pragma: no cover - the embedded settings are valid
                fields = sorted({str(e["loc"][0]) for e in error.errors() if e["loc"]})
                raise DemoError(f"the demo's settings are invalid: {', '.join(fields)}") from None
            print(demo.banner(), flush=True)
            while True:
                time.sleep(3600)
        except (KeyboardInterrupt, SystemExit):
            print("\nStopping the demo ...", flush=True)
        finally:
            signal.signal(signal.SIGTERM, previous)
            demo.stop()
    return 0
