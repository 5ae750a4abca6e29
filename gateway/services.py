"""The services of one gateway process, wired once (the factory) and found by the views."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app

from gateway.assurance import Assurance
from gateway.audit import AuditTrail
from gateway.broker import RegionClient
from gateway.broker.metadata import MetadataCache
from gateway.broker.transport import HttpLimits, new_session
from gateway.clock import Clock, utc_now
from gateway.federation.anchor import TrustAnchor
from gateway.federation.explicit import ExplicitRegistration  # X19
from gateway.federation.registration import AutomaticRegistration
from gateway.federation.upstream import FederatedRegions
from gateway.housekeeping import ExpiredRecordPurge, LogoutRedelivery
from gateway.keys import KEY_FILE_CHECK_INTERVAL, KeyRing, load_or_create
from gateway.logs import EventLog
from gateway.metrics import MetricsSink
from gateway.mfa import TotpService
from gateway.observe import Events
from gateway.outbound import OutboundPolicy
from gateway.policy import PolicyEngine
from gateway.registry import Registry
from gateway.sealing import IdentitySealer, SecretCipher
from gateway.sessions import Sessions
from gateway.settings import Settings
from gateway.signin import SignIn
from gateway.store.contract import Store
from gateway.store.sql import SqlStore
from gateway.tokens import TokenService
from gateway.verified import VerifiedClaimsService


@dataclass
class Services:
    """Everything a request handler may call; built by :func:`build_services`."""

    settings: Settings
    store: Store
    keys: KeyRing
    registry: Registry
    sessions: Sessions
    regions: MetadataCache
    policy: PolicyEngine
    totp: TotpService
    sealer: IdentitySealer
    tokens: TokenService
    signin: SignIn
    clock: Clock = utc_now
    purge: ExpiredRecordPurge | None = field(default=None, repr=False)
    redelivery: LogoutRedelivery | None = field(default=None, repr=False)
    events: Events = field(default_factory=Events, repr=False)
    federation: TrustAnchor | None = field(default=None, repr=False)  # issue 17

    def close(self) -> None:
        if self.purge is not None:
            self.purge.stop()
        if self.redelivery is not None:
            self.redelivery.stop()
        self.policy.stop()
        self.regions.close()
        self.store.close()


def federation_configured(settings: Settings) -> bool:
    """Whether this gateway is the federation's trust anchor (issue 17): its federation keys
    are named (``federation_keys_file``), made on first start (``create_keys``, the demo and
    tests), already in the data folder, or needed (automatic registration). Otherwise the
    federation is off and its endpoints answer ``not_found``: a gateway deployed before the
    federation existed, with its signing keys from a Secret and no federation keys, keeps
    starting. Named but missing keys stop the start (:func:`~gateway.keys.load_or_create`)."""
    return (
        settings.federation_keys_file is not None
        or settings.create_keys
        or settings.federation_automatic_registration
        or settings.federation_explicit_registration
        or settings.federation_keys_path.exists()
    )


def build_services(settings: Settings) -> Services:
    """Open the store (migrating it), load the key ring, wire the services over them, and
    start purging expired records (every ``settings.purge_interval``).

    The ring follows its file, so a rotated key file (an updated Secret) is picked up without a
    restart; the demo's generated file is followed too, which costs nothing.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = SqlStore.from_url(settings.sqlalchemy_url)
    store.migrate()
    keys = load_or_create(
        settings.signing_keys_file,
        create=settings.create_keys,
        now=utc_now(),
        watch_every=KEY_FILE_CHECK_INTERVAL,
    )
    services = wire(settings, store, keys)
    # Before any thread starts: missing federation keys that are named stop the start cleanly.
    if federation_configured(settings):  # issue 17
        services.federation = TrustAnchor.build(settings, store, services.clock)
        services.regions.federation = FederatedRegions(services.federation)  # regions (R19)
    if services.federation is not None and settings.federation_automatic_registration:  # §12.1
        services.registry.federated = AutomaticRegistration(services.federation, services.registry)
    if services.federation is not None and settings.federation_explicit_registration:  # §12.2
        services.registry.explicit = ExplicitRegistration(
            services.federation, services.registry, store
        )
    services.purge = ExpiredRecordPurge(
        store,
        settings.purge_interval.total_seconds(),
        services.clock,
        audit=store,
        audit_retention=settings.audit_retention,
        mandates=store,  # ended mandates too (issue 18, G17)
        mandate_retention=settings.mandate_retention,
    )
    services.purge.start()
    services.redelivery = LogoutRedelivery(services.sessions, clock=services.clock)
    services.redelivery.start()
    services.policy.follow()  # every process enforces the store's newest policy set
    services.regions.start_probe(services.registry.region, settings.region_circuit)  # circuits
    return services


def wire(settings: Settings, store: Store, keys: KeyRing, clock: Clock = utc_now) -> Services:
    """The services over an open store and a loaded key ring, all on one ``clock``; every part
    that says what happened emits on the one ``events`` stream (:mod:`gateway.observe`)."""
    events = Events()
    registry = Registry.for_settings(store, settings)  # region secrets sealed at rest
    events.subscribe(AuditTrail(store, clock), required=True)  # the audit trail (gateway.audit)
    events.subscribe(MetricsSink.over(registry))  # Prometheus (gateway.metrics)
    events.subscribe(EventLog())  # one log line per event (gateway.logs)
    sessions = Sessions(
        store,
        keys,
        registry,
        settings.issuer_url,
        settings.pairwise_secret.get_secret_value().encode(),
        OutboundPolicy.from_settings(settings).session(),
        events=events,
    )
    cipher = SecretCipher.from_secrets(settings.mfa_secret)
    sealer = IdentitySealer(cipher)
    timeout = settings.upstream_timeout
    limits = HttpLimits(
        connect_timeout=min(2.0, timeout / 2), read_timeout=timeout / 2, total_timeout=timeout
    )
    regions = MetadataCache(limits=limits, session=new_session(ca_file=settings.outbound_ca_file))
    policy = PolicyEngine(settings.policy_dir, clock=clock, store=store)
    assurance = Assurance(policy, proofing=bool(settings.proofing_providers))  # loa3 reachable
    tokens = TokenService(
        settings, store, registry, keys, sealer, assurance, clock=clock, events=events
    )
    tokens.verified = VerifiedClaimsService(store, assurance, cipher, clock)  # issue 16
    signin = SignIn(
        settings=settings,
        store=store,
        registry=registry,
        sessions=sessions,
        tokens=tokens,
        assurance=assurance,
        sealer=sealer,
        broker=lambda region: RegionClient(region, regions),
        clock=clock,
        events=events,
    )
    tokens.claim_sources.append(signin.mandates.claims)  # acting for an enterprise
    return Services(
        settings=settings,
        store=store,
        keys=keys,
        registry=registry,
        sessions=sessions,
        regions=regions,
        policy=policy,
        totp=TotpService(store, cipher, events=events),
        sealer=sealer,
        tokens=tokens,
        signin=signin,
        clock=clock,
        events=events,
    )


def current_services() -> Services:
    """The services of the application handling the current request."""
    services: Services = current_app.extensions["tongxing"]
    return services
