"""Each region's discovery document and signing keys, cached per region.

* OpenID Connect Discovery 1.0 §4: the document is fetched from
  ``<issuer>/.well-known/openid-configuration``; §4.3: its ``issuer`` must equal the configured
  issuer exactly, or the document is refused.
* RFC 7517 (JWK Set) from ``jwks_uri``; OIDC Core §10.1.1: a provider rotates keys by publishing
  a new one, so an ID token whose ``kid`` is not in the cached set triggers one refetch. That
  refetch is single-flight (threads waiting on the same region share one request) and happens at
  most once every ``CachePolicy.unknown_kid_interval`` seconds per region, so a flood of tokens
  with invented ``kid`` values cannot turn the gateway into an amplifier against a region.
* RFC 9111 §5.2.2.1: the lifetime of a cached document follows ``Cache-Control: max-age`` (less
  ``Age``), clamped to ``[min_lifetime, max_lifetime]``; without it, ``default_lifetime``.

A region that fails never blocks another: every region has its own lock, upstream calls are
bounded (:mod:`gateway.broker.transport`), and after a failure a region is not asked again for
``failure_backoff`` seconds. While it is down, the last good document and keys are served for
up to ``max_stale`` seconds past their expiry.

A region registered with ``metadata_from: "federation"`` (issue 17) is read through its trust
chain instead (:attr:`MetadataCache.federation`, :mod:`gateway.federation.upstream`, OpenID
Federation 1.0 §10): the resolved ``openid_provider`` metadata stands for the discovery
document, kept until the chain's ``exp`` (§10.4) and while the subordinate record is unchanged;
its keys by value (``jwks``, ``signed_jwks_uri``) live as long. A chain that fails is never
served stale: the region is refused (``region_not_trusted``) until it resolves again.
"""

from __future__ import annotations

import base64
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, Protocol, Self, TypeVar

import requests
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey, import_key

from gateway import metrics, region_health
from gateway.broker.errors import InvalidUpstreamToken, RegionMetadataInvalid, RegionUnavailable
from gateway.broker.transport import HttpLimits, new_session, request_json
from gateway.registry import Region, check_absolute_url
from gateway.settings import RegionCircuit
from tongxing_api.vocabulary import check_outbound_url

if TYPE_CHECKING:
    from gateway.federation.upstream import ResolvedRegion

__all__ = [
    "SIGNING_ALGORITHMS",
    "CachePolicy",
    "Clock",
    "FederationSource",
    "MetadataCache",
    "ProviderMetadata",
    "RegionKeys",
    "SigningKey",
    "cache_lifetime",
]

log = logging.getLogger(__name__)

Clock = Callable[[], float]
T = TypeVar("T")

# The ID-token algorithms the gateway accepts, and the key each needs (RFC 7518 §3.1). Never
# `none` and never an HMAC: an HMAC keyed with the client secret would let anyone who knows the
# secret mint tokens, and one "keyed" with public key bytes is the classic confusion attack.
SIGNING_ALGORITHMS: Mapping[str, tuple[str, str | None]] = MappingProxyType(
    {"RS256": ("RSA", None), "PS256": ("RSA", None), "ES256": ("EC", "P-256")}
)
MIN_RSA_BITS = 2048
DISCOVERY_PATH = "/.well-known/openid-configuration"

SigningKey = RSAKey | ECKey


@dataclass(frozen=True)
class CachePolicy:
    """How long documents live, how often a region is asked again. All values in seconds."""

    min_lifetime: float = 60
    max_lifetime: float = 24 * 3600
    default_lifetime: float = 3600
    unknown_kid_interval: float = 10
    failure_backoff: float = 10
    max_stale: float = 24 * 3600

    def __post_init__(self) -> None:
        if not 0 < self.min_lifetime <= self.default_lifetime <= self.max_lifetime:
            raise ValueError("need 0 < min_lifetime <= default_lifetime <= max_lifetime")
        if min(self.unknown_kid_interval, self.failure_backoff, self.max_stale) < 0:
            raise ValueError("intervals must not be negative")


def cache_lifetime(headers: Mapping[str, str], policy: CachePolicy) -> float:
    """Seconds a response may be reused: ``max-age`` less ``Age``, within the policy's bounds.

    RFC 9111 §5.2.2.1 (max-age), §5.2.2.3/§5.2.2.5 (no-cache, no-store: we still keep the
    document for ``min_lifetime``, since asking a region for every login is what the bound is
    there to prevent), §5.1 (Age).
    """
    value = _header(headers, "Cache-Control")
    lifetime: float | None = None
    if value is not None:
        for directive in value.split(","):
            name, _, argument = directive.strip().partition("=")
            name = name.strip().lower()
            if name in ("no-store", "no-cache"):
                lifetime = 0
                break
            if name == "max-age":
                argument = argument.strip().strip('"')
                if argument.isdigit():
                    lifetime = float(argument)
    if lifetime is None:
        lifetime = policy.default_lifetime
    else:
        age = _header(headers, "Age")
        if age is not None and age.strip().isdigit():
            lifetime -= float(age.strip())
    return min(max(lifetime, policy.min_lifetime), policy.max_lifetime)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


@dataclass(frozen=True)
class ProviderMetadata:
    """The parts of a region's discovery document the broker uses (OIDC Discovery §3)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    # None only for a federated region whose keys come by value (jwks, signed_jwks_uri).
    jwks_uri: str | None
    userinfo_endpoint: str | None = None
    end_session_endpoint: str | None = None
    # RFC 9207 §3: when true, every authorization response carries `iss`.
    authorization_response_iss_parameter_supported: bool = False
    code_challenge_methods_supported: tuple[str, ...] = ()
    token_endpoint_auth_methods_supported: tuple[str, ...] = ("client_secret_basic",)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_document(
        cls,
        region: str,
        issuer: str,
        document: Mapping[str, Any],
        *,
        insecure_allow_http: bool | None = None,
        keys_by_value: bool = False,
    ) -> Self:
        """Check ``document`` against the configured ``issuer`` and extract what we use.

        Raises :class:`RegionMetadataInvalid` when the issuer differs (Discovery §4.3), a
        required endpoint is missing, or an endpoint is not an absolute https URL. The endpoints
        the gateway itself calls (``token_endpoint``, ``jwks_uri``, ``userinfo_endpoint``,
        ``end_session_endpoint``) must also pass the outbound rule
        (:func:`~tongxing_api.vocabulary.check_outbound_url`: https, no loopback or link-local
        host; THREAT_MODEL row 1), so a region cannot point the gateway at its own inside
        through its discovery document. ``insecure_allow_http`` is the gateway's development
        switch; when not given it is taken as on only if the configured issuer itself fails the
        rule, which the admin API allows only under that switch: a region registered as https
        on a public host is held to the rule, one registered on loopback for a test is not.
        ``keys_by_value``: the keys came with the metadata (a federated region), so
        ``jwks_uri`` is optional.
        """
        published = document.get("issuer")
        if published != issuer:
            raise RegionMetadataInvalid(
                region, f"discovery issuer {published!r} differs from the configured {issuer!r}"
            )
        if insecure_allow_http is None:
            insecure_allow_http = not _outbound_ok(issuer)

        def url(name: str, *, required: bool, called: bool = True) -> str | None:
            value = document.get(name)
            if value is None and not required:
                return None
            if not isinstance(value, str):
                raise RegionMetadataInvalid(region, f"discovery has no usable {name}")
            try:
                if called:
                    return check_outbound_url(
                        value, what=name, insecure_allow_http=insecure_allow_http
                    )
                return check_absolute_url(value, what=name)
            except ValueError as exc:
                raise RegionMetadataInvalid(region, f"discovery {exc}") from None

        def strings(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
            value = document.get(name)
            if value is None:
                return default
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise RegionMetadataInvalid(region, f"discovery {name} is not a list of strings")
            return tuple(value)

        iss_supported = document.get("authorization_response_iss_parameter_supported", False)
        if not isinstance(iss_supported, bool):
            raise RegionMetadataInvalid(
                region, "authorization_response_iss_parameter_supported is not a boolean"
            )
        return cls(
            issuer=issuer,
            # The browser, not the gateway, goes to the authorization endpoint.
            authorization_endpoint=_required(
                url("authorization_endpoint", required=True, called=False)
            ),
            token_endpoint=_required(url("token_endpoint", required=True)),
            jwks_uri=url("jwks_uri", required=not keys_by_value),
            userinfo_endpoint=url("userinfo_endpoint", required=False),
            end_session_endpoint=url("end_session_endpoint", required=False),
            authorization_response_iss_parameter_supported=iss_supported,
            code_challenge_methods_supported=strings("code_challenge_methods_supported", ()),
            token_endpoint_auth_methods_supported=strings(
                "token_endpoint_auth_methods_supported", ("client_secret_basic",)
            ),
            raw=MappingProxyType(dict(document)),
        )


def _outbound_ok(url: str) -> bool:
    """Whether ``url`` passes the outbound rule with the development switch off."""
    try:
        check_outbound_url(url, what="issuer", insecure_allow_http=False)
    except ValueError:
        return False
    return True


def _required(value: str | None) -> str:
    assert value is not None  # noqa: S101 - url(required=True) never returns None
    return value


@dataclass(frozen=True)
class _Candidate:
    kid: str | None
    alg: str | None
    kty: str
    crv: str | None
    key: SigningKey


@dataclass(frozen=True)
class RegionKeys:
    """The usable signature-verification keys of one region's JWK Set."""

    candidates: tuple[_Candidate, ...]

    @property
    def kids(self) -> tuple[str | None, ...]:
        return tuple(c.kid for c in self.candidates)

    @classmethod
    def from_jwks(cls, region: str, document: Mapping[str, Any]) -> RegionKeys:
        """Keep the public signing keys that can verify an allowed algorithm (RFC 7517 §4, §5).

        Skipped: keys for encryption (``use`` other than ``sig``, ``key_ops`` without
        ``verify``), key types we do not accept, RSA keys under 2048 bits, and any JWK that
        carries private material (a region publishing its private key is compromised).
        """
        entries = document.get("keys")
        if not isinstance(entries, list):
            raise RegionMetadataInvalid(region, "the JWK Set has no keys array")
        candidates: list[_Candidate] = []
        for entry in entries:
            candidate = _candidate(region, entry)
            if candidate is not None:
                candidates.append(candidate)
        if not candidates:
            raise RegionMetadataInvalid(region, "the JWK Set has no usable signing key")
        return cls(tuple(candidates))

    def find(self, kid: str | None, alg: str) -> SigningKey | None:
        """The key for a JWS header's ``kid`` and ``alg``, or ``None``.

        OIDC Core §10.1: without a ``kid`` the key is unambiguous only when the set holds
        exactly one key that fits the algorithm.
        """
        kty, crv = SIGNING_ALGORITHMS[alg]
        fitting = [
            c
            for c in self.candidates
            if c.kty == kty and (crv is None or c.crv == crv) and c.alg in (None, alg)
        ]
        if kid is None:
            return fitting[0].key if len(fitting) == 1 else None
        for candidate in fitting:
            if candidate.kid == kid:
                return candidate.key
        return None


def _candidate(region: str, entry: Any) -> _Candidate | None:
    if not isinstance(entry, dict):
        return None
    kty, use, ops, kid, alg = (entry.get(k) for k in ("kty", "use", "key_ops", "kid", "alg"))
    if kty not in ("RSA", "EC") or use not in (None, "sig"):
        return None
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return None
    if kid is not None and not isinstance(kid, str):
        return None
    if alg is not None and alg not in SIGNING_ALGORITHMS:
        return None
    if any(name in entry for name in ("d", "p", "q", "dp", "dq", "qi", "oth")):
        log.warning("region %s publishes a private key (kid %r); ignoring it", region, kid)
        return None
    if kty == "RSA" and _modulus_bits(entry.get("n")) < MIN_RSA_BITS:
        log.warning(
            "region %s publishes an RSA key under %d bits (kid %r)", region, MIN_RSA_BITS, kid
        )
        return None
    try:
        key = import_key(entry)
    except (JoseError, ValueError, TypeError):
        log.warning("region %s publishes a JWK that cannot be imported (kid %r)", region, kid)
        return None
    if isinstance(key, RSAKey):
        return _Candidate(kid, alg, "RSA", None, key)
    if isinstance(key, ECKey):
        return _Candidate(kid, alg, "EC", key.curve_name, key)
    return None


def _modulus_bits(n: Any) -> int:
    # Checked before import: joserfc warns (SecurityWarning) when it imports a short key.
    if not isinstance(n, str):
        return 0
    try:
        raw = base64.urlsafe_b64decode(n + "=" * (-len(n) % 4))
    except ValueError:
        return 0
    return int.from_bytes(raw, "big").bit_length()


@dataclass(frozen=True)
class _Cached(Generic[T]):
    value: T
    fetched_at: float
    expires_at: float


class FederationSource(Protocol):
    """Resolves federated regions (:class:`gateway.federation.upstream.FederatedRegions`)."""

    def version(self, region: Region) -> datetime | None: ...

    def resolve(self, region: Region) -> ResolvedRegion: ...


class _RegionEntry:
    """The cache of one region. ``lock`` serialises its fetches (single flight)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # A federated region: the subordinate record resolved under, the last refusal.
        self.version: datetime | None = None
        self.refused: RegionUnavailable | None = None
        self.metadata: _Cached[ProviderMetadata] | None = None
        self.keys: _Cached[RegionKeys] | None = None
        self.metadata_failed_at: float | None = None
        self.keys_failed_at: float | None = None
        self.keys_attempted_at = -math.inf
        self.fetches = 0  # upstream requests made for this region (for metrics and tests)


class MetadataCache:
    """Discovery documents and JWK Sets of every region, each region cached and locked alone.

    Thread-safe. Entries are keyed by (region code, issuer), so a region whose issuer changes in
    the registry is fetched afresh. ``clock`` returns seconds since the epoch (injectable for
    tests); ``session`` defaults to one made by :func:`~gateway.broker.transport.new_session`.
    """

    def __init__(
        self,
        *,
        session: requests.Session | None = None,
        limits: HttpLimits | None = None,
        policy: CachePolicy | None = None,
        clock: Clock = time.time,
        health: region_health.RegionHealth | None = None,
    ) -> None:
        self.session = session if session is not None else new_session()
        self.limits = limits if limits is not None else HttpLimits()
        self.policy = policy if policy is not None else CachePolicy()
        self.clock = clock
        self._entries: dict[tuple[str, str], _RegionEntry] = {}
        self._entries_lock = threading.Lock()
        # Per-region circuits (gateway.region_health): a region that keeps failing is refused
        # at once, and probed (start_probe) until it answers.
        self.health = health if health is not None else region_health.RegionHealth(clock=clock)
        self._probe: region_health.RegionProbe | None = None
        # Issue 17: set when this gateway is a trust anchor; regions with metadata_from
        # "federation" are refused without it.
        self.federation: FederationSource | None = None

    def close(self) -> None:
        if self._probe is not None:
            self._probe.stop()
        self.session.close()

    def start_probe(
        self, find_region: Callable[[str], Region | None], circuit: RegionCircuit
    ) -> None:
        """Apply ``circuit`` to the regions' health and probe open regions every
        ``circuit.probe_seconds`` (:class:`~gateway.region_health.RegionProbe`) until closed."""
        self.health.policy = circuit
        if self._probe is None:
            self._probe = region_health.RegionProbe(self, find_region, circuit.probe_seconds)
            self._probe.start()

    def probe(self, region: Region) -> ProviderMetadata:
        """Fetch the region's discovery document now, past its open circuit (the probe):
        when it answers, the circuit closes, the document is cached and the back-off ends."""
        entry = self._entry(region)
        if not self._acquire(entry, wait=True):
            raise RegionUnavailable(region.code, "discovery: refresh in flight")
        try:
            value = self._load_metadata(region, entry, probe=True)
            entry.metadata_failed_at = entry.keys_failed_at = None
            return value
        finally:
            entry.lock.release()

    def forget(self, region: Region) -> None:
        """Drop what is cached for ``region`` (after it is updated or deleted)."""
        with self._entries_lock:
            self._entries.pop((region.code, region.issuer), None)
        self.health.forget(region.code)

    def fetch_count(self, region: Region) -> int:
        """How many upstream requests (discovery and JWK Set) were made for ``region``."""
        return self._entry(region).fetches

    def metadata(self, region: Region) -> ProviderMetadata:
        """The region's discovery document: cached, refreshed when expired, stale if down."""
        entry = self._entry(region)
        cached = entry.metadata
        if self._fresh(region, entry, cached, self.clock()):
            assert cached is not None  # noqa: S101 - _fresh says so
            return cached.value
        return self._refresh_metadata(region, entry)

    def keys(self, region: Region) -> RegionKeys:
        """The region's signing keys: cached, refreshed when expired, stale if down."""
        entry = self._entry(region)
        cached = entry.keys
        if cached is not None and self.clock() < cached.expires_at:
            return cached.value
        return self._refresh_keys(region, entry, unknown_kid_in=None)

    def find_key(self, region: Region, kid: str | None, alg: str) -> SigningKey:
        """The key that verifies a JWS with this ``kid`` and ``alg`` (OIDC Core §10.1.1).

        An unknown ``kid`` causes one refetch of the JWK Set, shared by all threads that wait
        on this region and at most once every ``unknown_kid_interval`` seconds. Raises
        :class:`InvalidUpstreamToken` when the key is still unknown, :class:`RegionUnavailable`
        when no keys can be had at all.
        """
        if alg not in SIGNING_ALGORITHMS:
            raise InvalidUpstreamToken(region.code, f"algorithm {alg!r} is not allowed")
        keys = self.keys(region)
        key = keys.find(kid, alg)
        if key is not None:
            return key
        refreshed = self._refresh_keys(region, self._entry(region), unknown_kid_in=keys)
        key = refreshed.find(kid, alg)
        if key is None:
            raise InvalidUpstreamToken(
                region.code, f"no {alg} key with kid {kid!r} in the region's JWK Set"
            )
        return key

    # -- internals ---------------------------------------------------------------------------

    def _entry(self, region: Region) -> _RegionEntry:
        key = (region.code, region.issuer)
        with self._entries_lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _RegionEntry()
            return entry

    def _acquire(self, entry: _RegionEntry, *, wait: bool) -> bool:
        if not wait:
            return entry.lock.acquire(blocking=False)
        # A waiter gives up after two fetch budgets: the fetch in flight is bounded by one.
        return entry.lock.acquire(timeout=2 * self.limits.total_timeout)

    def _refresh_metadata(self, region: Region, entry: _RegionEntry) -> ProviderMetadata:
        # With an expired value at hand, a request does not queue behind a refresh in flight:
        # it is served the old value at once (stale-while-revalidate, RFC 5861 §3).
        if not self._acquire(entry, wait=not self._servable(entry.metadata)):
            return self._stale(region, entry.metadata, "discovery", "refresh in flight")
        try:
            now = self.clock()
            cached = entry.metadata
            if self._fresh(region, entry, cached, now):
                assert cached is not None  # noqa: S101 - _fresh says so
                return cached.value  # another thread refreshed it while this one waited
            federated = region.metadata_from == "federation"
            if federated and cached is not None and entry.version != self._version(region):
                # The subordinate record changed or is gone: nothing of the old chain is used.
                entry.metadata = entry.keys = cached = None
            if self._backing_off(entry.metadata_failed_at, now):
                refused = entry.refused if federated and cached is None else None
                return self._stale(region, cached, "discovery", "failed recently", refused)
            try:
                value = self._load_metadata(region, entry)
            except RegionUnavailable as exc:
                entry.metadata_failed_at = now
                if federated and isinstance(exc, RegionMetadataInvalid):
                    # A chain that fails is not served stale (OpenID Federation 1.0 §10).
                    entry.metadata = entry.keys = None
                    entry.refused = exc
                    raise
                return self._stale(region, cached, "discovery", exc.detail, exc)
            entry.metadata_failed_at = None
            return value
        finally:
            entry.lock.release()

    def _refresh_keys(
        self, region: Region, entry: _RegionEntry, *, unknown_kid_in: RegionKeys | None
    ) -> RegionKeys:
        metadata = self.metadata(region)  # before the lock: it takes the same lock
        # An unknown kid waits for the refetch in flight (single flight); an expired set does not.
        wait = unknown_kid_in is not None or not self._servable(entry.keys)
        if not self._acquire(entry, wait=wait):
            return self._stale(region, entry.keys, "JWK Set", "refresh in flight")
        try:
            now = self.clock()
            cached = entry.keys
            if unknown_kid_in is None:
                if cached is not None and now < cached.expires_at:
                    return cached.value
            else:
                if cached is not None and cached.value is not unknown_kid_in:
                    return cached.value  # another thread refetched while this one waited
                if now - entry.keys_attempted_at < self.policy.unknown_kid_interval:
                    return unknown_kid_in  # refetched a moment ago: the kid is unknown
            if self._backing_off(entry.keys_failed_at, now):
                return self._stale(region, cached, "JWK Set", "failed recently")
            if metadata.jwks_uri is None:
                # Keys by value (a federated region): they change with its chain, re-resolved
                # when it expires or its record changes, never on an unknown kid.
                return self._stale(region, cached, "JWK Set", "keys by value")
            entry.keys_attempted_at = now
            try:
                body, headers = self._get(region, entry, metadata.jwks_uri, "JWK Set")
                value = RegionKeys.from_jwks(region.code, body)
            except RegionUnavailable as exc:
                entry.keys_failed_at = now
                metrics.jwks_refreshed(region.code, exc)
                return self._stale(region, cached, "JWK Set", exc.detail, exc)
            metrics.jwks_refreshed(region.code, None)
            now = self.clock()
            entry.keys = _Cached(value, now, now + cache_lifetime(headers, self.policy))
            entry.keys_failed_at = None
            log.info("region %s: JWK Set fetched, kids %s", region.code, value.kids)
            return value
        finally:
            entry.lock.release()

    def _load_metadata(
        self, region: Region, entry: _RegionEntry, *, probe: bool = False
    ) -> ProviderMetadata:
        """Fetch (discovery) or resolve (federation) the region's metadata and cache it; under
        ``entry.lock``."""
        if region.metadata_from != "federation":
            url = region.issuer + DISCOVERY_PATH
            body, headers = self._get(region, entry, url, probe=probe)
            value = ProviderMetadata.from_document(region.code, region.issuer, body)
            now = self.clock()
            entry.metadata = _Cached(value, now, now + cache_lifetime(headers, self.policy))
            return value
        if self.federation is None:
            raise RegionMetadataInvalid(
                region.code, "federation: this gateway is not a trust anchor"
            )
        with self.health.call(region.code, probe=probe):
            entry.fetches += 1  # under entry.lock
            resolved = self.federation.resolve(region)
        # §5.1.3 is checked by the resolver; from_document checks it again with the endpoints.
        value = ProviderMetadata.from_document(
            region.code, region.issuer, resolved.metadata, keys_by_value=resolved.jwks is not None
        )
        now = self.clock()
        # §10.4: not beyond the chain's expiry, nor the cache's longest lifetime.
        expires_at = min(resolved.expires_at, now + self.policy.max_lifetime)
        if resolved.jwks is not None:
            keys = RegionKeys.from_jwks(region.code, resolved.jwks)
            entry.keys = _Cached(keys, now, expires_at)
        entry.metadata = _Cached(value, now, expires_at)
        entry.version, entry.refused = resolved.version, None
        return value

    def _version(self, region: Region) -> datetime | None:
        return None if self.federation is None else self.federation.version(region)

    def _fresh(
        self, region: Region, entry: _RegionEntry, cached: _Cached[Any] | None, now: float
    ) -> bool:
        """Whether ``cached`` may be served as it is: unexpired and, for a federated region,
        resolved under the subordinate record that stands now."""
        if cached is None or now >= cached.expires_at:
            return False
        return region.metadata_from != "federation" or entry.version == self._version(region)

    def _servable(self, cached: _Cached[Any] | None) -> bool:
        return cached is not None and self.clock() - cached.expires_at <= self.policy.max_stale

    def _backing_off(self, failed_at: float | None, now: float) -> bool:
        return failed_at is not None and now - failed_at < self.policy.failure_backoff

    def _stale(
        self,
        region: Region,
        cached: _Cached[T] | None,
        what: str,
        why: str,
        error: RegionUnavailable | None = None,
    ) -> T:
        """Serve the last good value while the region is down, or raise."""
        if cached is not None and self._servable(cached):
            # A refresh in flight is routine; a failure is worth an operator's attention.
            level = logging.DEBUG if why == "refresh in flight" else logging.WARNING
            log.log(level, "region %s: serving cached %s (%s)", region.code, what, why)
            return cached.value
        if error is not None:
            raise error
        raise RegionUnavailable(region.code, f"{what}: {why}, nothing cached")

    def _get(
        self,
        region: Region,
        entry: _RegionEntry,
        url: str,
        what: str = "discovery",
        *,
        probe: bool = False,
    ) -> tuple[dict[str, Any], Mapping[str, str]]:
        # An open circuit refuses here, before any network; the call's outcome is recorded.
        with self.health.call(region.code, probe=probe):
            entry.fetches += 1  # under entry.lock
            response = request_json(
                self.session, "GET", url, region=region.code, what=what, limits=self.limits
            )
        if response.status != 200:
            raise RegionUnavailable(region.code, f"{what}: HTTP {response.status}")
        return response.body, response.headers
