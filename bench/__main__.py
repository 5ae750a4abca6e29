"""``python -m bench``: the gateway and Keycloak side by side, on this machine, on loopback.

Starts Keycloak in production mode (``kc.sh start`` on its own database of the same PostgreSQL
server) and starts or reuses the ``start-dev`` Keycloak and PostgreSQL of the test harness,
creates the same bench realm in each Keycloak, starts ``tongxing serve`` on a fresh PostgreSQL
database with the production Keycloak's realm as its region, and drives all three with wrk.
Prints, per scenario, requests/s, p50, p99, errors and CPU ms per request for each side, and the
gateway's req/s per CPU over each Keycloak mode's (``ratio_vs_keycloak_production``,
``ratio_vs_keycloak_dev`` in ``last-run.json``), the machine's single-core signing limit, the
memory per SSO session, the latency the gateway adds to a login, and a py-spy profile of the
gateway's slowest scenario. Then, with those servers stopped, two gateway processes against one on
the token endpoints (:mod:`bench.ab`, ``granian:1`` against ``granian:2`` on one PostgreSQL) and
the scale part (:mod:`bench.scale`: 80 regions, 5,000 portals, 80 Region resources); ``--scale``
runs the scale part alone.

Nothing here asserts: a benchmark reports.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import requests

from bench import ab, keycloak_side, loadgen, machine, profiling, report, scale
from bench.browser import Browser, FlowError
from bench.gateway_side import (
    FederatedTiming,
    Minter,
    Registered,
    access_token,
    federated_login,
    register,
)
from bench.keycloak_side import BenchRealm
from bench.loadgen import Load, Measure, basic_auth, form_headers, percentile
from bench.machine import CpuMeter, SigningLimit
from bench.servers import Gateway, Harness, KeycloakServer, fresh_database, gateway, harness

SCENARIOS = (
    "refresh",
    "client_credentials",
    "code",
    "userinfo",
    "introspect",
    "login",
    "memory",
    # Run after the servers above are stopped, each with servers of its own.
    "workers",
    "scale",
)
LATER = ("workers", "scale")
# Issue 15's targets for the latency the gateway adds to a region's login.
LOGIN_ADDED_TARGETS_MS = {"p50": 8.0, "p99": 20.0}
MODES = report.MODES
# "gateway", or the mode of a Keycloak ("production", "dev").
Side = str
T = TypeVar("T")


@dataclass
class Options:
    count: int
    warmup: int
    duration: float
    connections: int
    threads: int
    workers: int
    server: str
    logins: int
    sessions: tuple[int, ...]
    keycloak_session_seconds: float
    own_keycloak: bool
    keycloak_warmup: float
    modes: tuple[str, ...]
    scenarios: tuple[str, ...]
    profile: bool
    profile_scenario: str | None
    profile_gil: bool
    output: Path | None
    scale_only: bool = False
    workers_rounds: int = 2


@dataclass
class Run:
    """Everything one run measured; printed as tables and saved as JSON."""

    started: str
    machine: str
    command: str
    options: dict[str, object]
    signing: SigningLimit | None = None
    rows: list[report.Row] = field(default_factory=list)
    login: dict[str, float] = field(default_factory=dict)
    memory: list[report.MemoryRow] = field(default_factory=list)
    profile: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Per scenario: ratio_vs_keycloak_<mode> (the gateway's req/s per CPU over Keycloak's) and
    # rps_ratio_vs_keycloak_<mode> (plain req/s), same run.
    ratios: dict[str, dict[str, float | None]] = field(default_factory=dict)
    # The latency the gateway adds to a region's login, against issue 15's targets.
    login_added: dict[str, Any] = field(default_factory=dict)
    # Two gateway processes on one PostgreSQL over one (bench.ab), per token scenario.
    workers_scaling: dict[str, Any] = field(default_factory=dict)
    # bench.scale's results (also in scale-last-run.json).
    scale: dict[str, Any] = field(default_factory=dict)


# Signatures per successful response: the gateway's access tokens are opaque (stored by hash),
# so a token response carries one signature (the ID token); Keycloak signs its JWT access token
# and the ID token with RS256 (its refresh token is HS512, an HMAC).
TITLES = {
    "refresh": "1 refresh_token (RS256 ID token)",
    "client_credentials": "2 client_credentials",
    "code": "3 authorization_code exchange",
    "userinfo": "4 userinfo (bearer)",
    "introspect": "7 introspection (RFC 7662)",
}
SIGNATURES: dict[str, tuple[int, int]] = {
    "refresh": (1, 2),
    "client_credentials": (0, 1),
    "code": (1, 2),
    "userinfo": (0, 0),
    "introspect": (0, 0),
}


@dataclass
class KeycloakSide:
    """One Keycloak of the run with its bench realm and what its CPU is measured on."""

    server: KeycloakServer
    realm: BenchRealm
    meter: CpuMeter

    @property
    def mode(self) -> str:
        return self.server.mode


class Bench:
    def __init__(
        self,
        options: Options,
        run: Run,
        servers: Harness,
        gw: Gateway,
        keycloaks: list[KeycloakSide],
    ) -> None:
        self.o = options
        self.run = run
        self.h = servers
        self.gw = gw
        self.keycloaks = keycloaks
        # The gateway's region: the first Keycloak (production mode when it runs).
        self.realm = keycloaks[0].realm
        self.portal: Registered = register(gw, self.realm)
        self.minter = Minter(gw, self.portal)
        self.gw_meter = CpuMeter(
            gw.pid, servers.postgres.url(), gw.database_url.rsplit("/", 1)[1].split("?")[0]
        )

    # --- helpers ---------------------------------------------------------------------------------

    def kc(self, side: Side) -> KeycloakSide:
        for keycloak in self.keycloaks:
            if keycloak.mode == side:
                return keycloak
        raise KeyError(side)

    def meter(self, side: Side) -> CpuMeter:
        return self.gw_meter if side == "gateway" else self.kc(side).meter

    def sides(self) -> list[Side]:
        return ["gateway", *(k.mode for k in self.keycloaks)]

    def settle(self, limit_s: float = 10.0, quiet_cores: float = 0.1) -> None:
        """Wait, at most ``limit_s``, until the servers are idle.

        A run leaves work behind (Keycloak writes its sessions in the background, PostgreSQL
        vacuums): measured against the next side, it would be charged to the wrong server.
        """
        pids = (self.gw.pid, self.h.postgres_pid, *(k.server.pid for k in self.keycloaks))
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            before = sum(machine.cpu_seconds(pid) for pid in pids)
            time.sleep(0.5)
            if (sum(machine.cpu_seconds(pid) for pid in pids) - before) / 0.5 < quiet_cores:
                return

    def measure(self, side: Side, load: Load) -> Measure:
        self.settle()
        meter = self.meter(side)
        before = meter.snapshot()
        result = loadgen.run(load)
        total, database = CpuMeter.spent(before, meter.snapshot())
        if not result.completed:
            return result
        per = 1000 / result.completed
        return replace(
            result,
            cpu_ms=total * per,
            database_cpu_ms=database * per if meter.database is not None else None,
        )

    def pair(
        self,
        name: str,
        title: str,
        loads: Callable[[Side, int], tuple[Load, Load]],
    ) -> report.Row:
        """Warm each side up, then measure the gateway and each Keycloak with the same load."""
        results: dict[Side, Measure] = {}
        for side in self.sides():
            warm, measured = loads(side, self.o.count)
            loadgen.run(warm)
            results[side] = self.measure(side, measured)
        gateway_sigs, keycloak_sigs = SIGNATURES.get(name, (0, 0))
        row = report.Row(
            name,
            title,
            results["gateway"],
            {k.mode: results[k.mode] for k in self.keycloaks},
            gateway_signatures=gateway_sigs,
            keycloak_signatures=keycloak_sigs,
        )
        self.run.rows.append(row)
        print(report.progress(row, self.run.signing), flush=True)
        return row

    def _load(
        self, side: Side, url: str, bodies: Sequence[str], *, once: bool, method: str = "POST"
    ) -> tuple[Load, Load]:
        auth = (
            basic_auth(*self.portal.credentials)
            if side == "gateway"
            else basic_auth(*self.kc(side).realm.credentials)
        )
        return self._split(url, form_headers(auth), bodies, once=once, method=method)

    def _split(
        self,
        url: str,
        headers: dict[str, str],
        bodies: Sequence[str],
        *,
        once: bool,
        method: str,
    ) -> tuple[Load, Load]:
        verb: Literal["GET", "POST"] = "GET" if method == "GET" else "POST"
        warm_bodies = bodies[: self.o.warmup] if once else bodies
        measured_bodies = bodies[self.o.warmup :] if once else bodies
        common = {"url": url, "method": verb, "headers": headers, "once": once}
        warm = Load(
            bodies=warm_bodies,
            limit=self.o.warmup,
            duration_s=self.o.duration,
            connections=self.o.connections,
            **common,  # type: ignore[arg-type]
        )
        measured = Load(
            bodies=measured_bodies,
            limit=self.o.count,
            duration_s=self.o.duration,
            connections=self.o.connections,
            **common,  # type: ignore[arg-type]
        )
        return warm, measured

    def token_url(self, side: Side) -> str:
        return f"{self.gw.issuer}/token" if side == "gateway" else self.kc(side).realm.token_url

    # --- scenarios -------------------------------------------------------------------------------

    def refresh_bodies(self, side: Side, n: int) -> list[str]:
        started = time.perf_counter()
        if side == "gateway":
            tokens = self.minter.refresh_tokens(n)
        else:
            tokens = keycloak_side.refresh_tokens(self.kc(side).realm, n)
        print(
            f"  prepared {n} {side} refresh tokens in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        return [f"grant_type=refresh_token&refresh_token={quote(t, safe='')}" for t in tokens]

    def refresh_loads(self, side: Side, n: int) -> tuple[Load, Load]:
        bodies = self.refresh_bodies(side, n + self.o.warmup)
        return self._load(side, self.token_url(side), bodies, once=True)

    def client_credentials_loads(self, side: Side, n: int) -> tuple[Load, Load]:
        return self._load(side, self.token_url(side), ["grant_type=client_credentials"], once=False)

    def code_bodies(self, side: Side, n: int) -> list[str]:
        started = time.perf_counter()
        if side == "gateway":
            codes = self.minter.codes(n)
        else:
            codes = keycloak_side.authorization_codes(self.kc(side).realm, n)
        print(f"  prepared {n} {side} codes in {time.perf_counter() - started:.1f} s", flush=True)
        redirect = quote(self.portal.redirect_uri, safe="")
        return [
            f"grant_type=authorization_code&code={quote(c, safe='')}&redirect_uri={redirect}"
            f"&code_verifier={v}"
            for c, v in codes
        ]

    def code_loads(self, side: Side, n: int) -> tuple[Load, Load]:
        bodies = self.code_bodies(side, n + self.o.warmup)
        return self._load(side, self.token_url(side), bodies, once=True)

    def userinfo_loads(self, side: Side, n: int) -> tuple[Load, Load]:
        if side == "gateway":
            token = access_token(self.gw, self.portal, self.minter.refresh_tokens(1)[0])
            url = f"{self.gw.issuer}/userinfo"
        else:
            realm = self.kc(side).realm
            token = keycloak_side.password_grant(realm, requests.Session())["access_token"]
            url = realm.userinfo_url
        headers = {"Authorization": f"Bearer {token}"}
        return self._split(url, headers, [""], once=False, method="GET")

    def introspect_loads(self, side: Side, n: int) -> tuple[Load, Load]:
        """RFC 7662 §2.1: a resource server (here the client the token was issued to, which the
        gateway requires) asks about one valid access token, with its client credentials."""
        if side == "gateway":
            token = access_token(self.gw, self.portal, self.minter.refresh_tokens(1)[0])
            url = f"{self.gw.issuer}/introspect"
        else:
            realm = self.kc(side).realm
            token = keycloak_side.password_grant(realm, requests.Session())["access_token"]
            url = realm.introspection_url
        body = f"token={quote(token, safe='')}&token_type_hint=access_token"
        warm, measured = self._load(side, url, [body], once=False)
        # A 200 answer with "active": false would pass as a success in wrk: check it once.
        answer = requests.post(url, data=body, headers=warm.headers, timeout=30)
        if answer.status_code != 200 or answer.json().get("active") is not True:
            raise FlowError(
                f"{side} introspection of a valid token: {answer.status_code} {answer.text[:200]}"
            )
        return warm, measured

    def loads(self, name: str) -> Callable[[Side, int], tuple[Load, Load]]:
        table: dict[str, Callable[[Side, int], tuple[Load, Load]]] = {
            "refresh": self.refresh_loads,
            "client_credentials": self.client_credentials_loads,
            "code": self.code_loads,
            "userinfo": self.userinfo_loads,
            "introspect": self.introspect_loads,
        }
        return table[name]

    def warm_keycloak(self) -> None:
        """Let each Keycloak started for the run JIT-compile its token paths first.

        A JVM runs interpreted code until a method has been called thousands of times; the
        warm-up run of each scenario is too short for a Keycloak started a minute ago, so a
        fresh one gets this first (a reused one has served the test suites already).
        """
        for keycloak in self.keycloaks:
            seconds = self.o.keycloak_warmup
            if seconds < 0:
                seconds = 0.0 if keycloak.server.reused else 30.0
            if seconds > 0:
                self._warm(keycloak.realm, keycloak.mode, seconds)

    def _warm(self, realm: BenchRealm, mode: str, seconds: float) -> None:
        print(f"warming Keycloak ({mode}) up for {seconds:.0f} s ...", flush=True)
        share = seconds / 3
        tokens = keycloak_side.refresh_tokens(realm, 200)
        headers = form_headers(basic_auth(*realm.credentials))
        bodies = [f"grant_type=refresh_token&refresh_token={quote(t, safe='')}" for t in tokens]
        bearer = keycloak_side.password_grant(realm, requests.Session())["access_token"]
        for url, method, body, once, extra in (
            (realm.token_url, "POST", ["grant_type=client_credentials"], False, {}),
            (realm.token_url, "POST", bodies, True, {}),
            (realm.userinfo_url, "GET", [""], False, {"Authorization": f"Bearer {bearer}"}),
        ):
            verb: Literal["GET", "POST"] = "GET" if method == "GET" else "POST"
            loadgen.run(
                Load(
                    url=url,
                    method=verb,
                    headers=extra or headers,
                    bodies=body,
                    once=once,
                    limit=len(body) if once else 1_000_000,
                    duration_s=share,
                    connections=self.o.connections,
                )
            )

    def wrk_scenario(self, name: str) -> report.Row:
        return self.pair(name, TITLES[name], self.loads(name))

    def _timed(self, side: Side, cpu: dict[str, float], action: Callable[[], T]) -> T:
        """Run ``action`` and add the CPU seconds it cost ``side`` (server + its database)."""
        meter = self.meter(side)
        before = meter.snapshot()
        try:
            return action()
        finally:
            cpu[side] = cpu.get(side, 0.0) + CpuMeter.spent(before, meter.snapshot())[0]

    def login(self) -> None:
        """Full logins, one at a time, alternating the gateway and each Keycloak (fresh browsers).

        CPU per login: the gateway's own (its processes and its database) around each of its
        logins; the region's work in them (its login page, password check and code exchange) is
        the region's, not counted. Each Keycloak's around its own logins.
        """
        for keycloak in self.keycloaks:
            keycloak.realm.set_password_hashing(keycloak_side.DEFAULT_HASHING)
        for _ in range(2):  # the first login re-hashes the password with argon2; JIT, pools
            for keycloak in self.keycloaks:
                keycloak_side.full_login(keycloak.realm)
            federated_login(self.gw, self.portal, self.realm)
        gateway_runs: list[FederatedTiming] = []
        keycloak_runs: dict[str, list[keycloak_side.LoginTiming]] = {
            k.mode: [] for k in self.keycloaks
        }
        errors = dict.fromkeys(self.sides(), 0)
        cpu: dict[str, float] = {}
        for _ in range(self.o.logins):
            try:
                timing = self._timed(
                    "gateway", cpu, lambda: federated_login(self.gw, self.portal, self.realm)
                )
                gateway_runs.append(timing)
            except Exception as error:
                errors["gateway"] += 1
                self.run.notes.append(f"gateway login failed: {error}")
            for keycloak in self.keycloaks:
                try:
                    realm = keycloak.realm
                    own = self._timed(keycloak.mode, cpu, partial(keycloak_side.full_login, realm))
                    keycloak_runs[keycloak.mode].append(own)
                except Exception as error:
                    errors[keycloak.mode] += 1
                    self.run.notes.append(f"Keycloak ({keycloak.mode}) login failed: {error}")
        for keycloak in self.keycloaks:
            keycloak.realm.set_password_hashing(keycloak_side.CHEAP_HASHING)

        def measure(side: Side, totals: list[float]) -> Measure:
            m = Measure.of_latencies(totals, sum(totals), errors[side])
            return replace(m, cpu_ms=1000 * cpu.get(side, 0.0) / m.completed) if m.completed else m

        fed = gateway_runs
        row = report.Row(
            "login",
            "5 full login (fresh browser)",
            measure("gateway", [r.total for r in fed]),
            {mode: measure(mode, [r.total for r in runs]) for mode, runs in keycloak_runs.items()},
        )
        self.run.rows.append(row)
        print(report.progress(row, self.run.signing), flush=True)
        # The region's own logins (the first Keycloak: the gateway's region) pair with the
        # gateway's, login by login.
        region_runs = keycloak_runs[self.keycloaks[0].mode]
        # The callback hop contains the gateway's own code exchange at Keycloak; Keycloak's own
        # flow measures that exchange (its /token hop), login by login.
        # The floor of one hop: the same client asking the gateway for nothing (/healthz).
        probe = Browser()
        floor = [probe.request("GET", f"{self.gw.issuer}/healthz")[1] for _ in range(30)]
        pairs = list(zip(fed, region_runs, strict=False))
        added = [g.gateway - k.token for g, k in pairs]
        # The same person's login through the gateway and at the region directly, alternating:
        # the whole difference, noise of the region's password hashing included.
        paired = [g.total - k.total for g, k in pairs]
        stats: dict[str, float] = {}
        for name, values in (
            ("gateway hops", [r.gateway for r in fed]),
            ("  /authorize", [r.authorize for r in fed]),
            ("  /callback (upstream code exchange, session, the code)", [r.callback for r in fed]),
            ("  /token", [r.token for r in fed]),
            ("region: login page + password", [r.region for r in fed]),
            ("Keycloak own (the region): /token (code exchange)", [k.token for k in region_runs]),
            ("gateway adds (hops - upstream code exchange)", added),
            ("gateway adds (login through it - login at the region)", paired),
            ("one hop's floor: GET /healthz from the same client", floor),
        ):
            stats[f"{name} p50"] = percentile(values, 50) * 1000
            stats[f"{name} p99"] = percentile(values, 99) * 1000
        self.run.login = stats
        if pairs:
            self.run.login_added = {
                "logins": len(pairs),
                "paired_difference_ms": {
                    "p50": percentile(paired, 50) * 1000,
                    "p99": percentile(paired, 99) * 1000,
                },
                "hops_minus_upstream_exchange_ms": {
                    "p50": percentile(added, 50) * 1000,
                    "p99": percentile(added, 99) * 1000,
                },
                "targets_ms": LOGIN_ADDED_TARGETS_MS,
                "region": self.keycloaks[0].mode,
            }

    def memory(self) -> None:
        targets = sorted(self.o.sessions)
        # The gateway: SSO sessions live in PostgreSQL; the process itself holds none.
        base = self.minter.stored_bytes()
        rss0 = machine.rss_bytes(self.gw.pid, with_children=True)
        made = 0
        for target in targets:
            started = time.perf_counter()
            self.minter.bulk_sessions(target - made)
            made = target
            sizes = self.minter.stored_bytes()
            stored = sum(sizes[t] - base[t] for t in ("sso_sessions", "session_participants"))
            self.run.memory.append(
                report.MemoryRow(
                    side="gateway",
                    sessions=target,
                    measured_sessions=target,
                    rss_growth=machine.rss_bytes(self.gw.pid, with_children=True) - rss0,
                    heap_growth=None,
                    stored_bytes=stored,
                    seconds=time.perf_counter() - started,
                )
            )
        for keycloak in self.keycloaks:
            self._keycloak_memory(keycloak, targets)
        for line in report.memory_table(self.run.memory):
            print(line, flush=True)

    def _keycloak_memory(self, keycloak: KeycloakSide, targets: list[int]) -> None:
        """User sessions in the JVM's heap; in production mode also in its PostgreSQL database
        (persistent sessions), whose growth is recorded beside; in ``start-dev`` that database is
        H2 in memory, i.e. in the same heap."""
        pid, realm, database = keycloak.server.pid, keycloak.realm, keycloak.server.database

        def database_size() -> int | None:
            if database is None:
                return None
            return machine.database_bytes(self.h.postgres.url(), database)

        heap0 = machine.jvm_heap_after_gc(pid)
        rss0 = machine.rss_bytes(pid)
        size0 = database_size()
        deadline = time.monotonic() + self.o.keycloak_session_seconds
        created = 0
        started = time.perf_counter()
        for target in targets:
            while created < target and time.monotonic() < deadline:
                created += keycloak_side.sessions(realm, min(500, target - created))
            heap = machine.jvm_heap_after_gc(pid)
            size = database_size()
            self.run.memory.append(
                report.MemoryRow(
                    side=f"keycloak-{keycloak.mode}",
                    sessions=target,
                    measured_sessions=created,
                    rss_growth=machine.rss_bytes(pid) - rss0,
                    heap_growth=None if heap is None or heap0 is None else heap - heap0,
                    stored_bytes=None,
                    seconds=time.perf_counter() - started,
                    database_bytes=None if size is None or size0 is None else size - size0,
                )
            )
            if created < target:
                break

    def profile_slowest(self) -> None:
        measured = [r for r in self.run.rows if r.name in SIGNATURES]
        if self.o.profile_scenario:
            measured = [r for r in measured if r.name == self.o.profile_scenario] or measured
        if not measured:
            return
        slowest = min(measured, key=lambda r: r.gateway.rps)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        raw = profiling.PROFILES / f"{stamp}-{slowest.name}.txt"
        print(f"profiling the gateway during '{slowest.title}' -> {raw}", flush=True)
        warm, measured_load = self.loads(slowest.name)("gateway", self.o.count)
        loadgen.run(warm)
        self.settle()
        seconds = min(self.o.duration, max(3.0, self.o.count / max(slowest.gateway.rps, 1)))
        try:
            recorder = profiling.start(self.gw.pid, seconds, raw, gil=self.o.profile_gil)
        except profiling.ProfilerUnavailableError as error:
            self.run.profile = [str(error)]
            return
        time.sleep(0.5)
        loadgen.run(measured_load)
        _, stderr = recorder.communicate(timeout=seconds + 60)
        if not raw.exists():
            self.run.profile = [f"py-spy wrote no profile: {stderr.decode(errors='replace')[:300]}"]
            return
        summary = profiling.summarize(raw)
        lines = [f"profile of '{slowest.title}' ({raw.relative_to(Path.cwd())}):", *summary.lines()]
        raw.with_suffix(".summary.txt").write_text("\n".join(lines) + "\n")
        self.run.profile = lines


@contextlib.contextmanager
def servers(options: Options) -> Iterator[tuple[Harness, Gateway, list[KeycloakSide]]]:
    with (
        harness(own_keycloak=options.own_keycloak, modes=options.modes) as h,
        fresh_database(h.postgres) as database_url,
        gateway(
            database_url,
            h.workdir,
            threads=options.threads,
            workers=options.workers,
            server=options.server,
        ) as gw,
    ):
        sides: list[KeycloakSide] = []
        try:
            for server in h.keycloaks:
                realm = keycloak_side.create_realm(
                    server.endpoint,
                    gateway_callback=f"{gw.issuer}/callback/bench",
                    redirect_uri="http://127.0.0.1:9/bench-portal/callback",
                )
                meter = CpuMeter(
                    server.pid,
                    h.postgres.url() if server.database else None,
                    server.database,
                )
                sides.append(KeycloakSide(server, realm, meter))
            yield h, gw, sides
        finally:
            for side in sides:
                side.realm.delete()


def parse(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--count", type=int, default=2000, help="requests per measured run")
    parser.add_argument("--warmup", type=int, default=500, help="requests per warm-up run")
    parser.add_argument("--duration", type=float, default=15, help="at most this many s a run")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections [16]")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="gateway worker processes (tongxing serve --workers) [one per core]",
    )
    parser.add_argument(
        "--threads", type=int, default=8, help="Python threads per gateway worker [8]"
    )
    parser.add_argument(
        "--server",
        choices=["granian", "waitress"],
        default="granian",
        help="the gateway's server (tongxing serve --server) [granian]",
    )
    parser.add_argument(
        "--scale",
        action="store_true",
        help="run the scale part alone (python -m bench.scale: 80 regions, 5,000 portals, "
        "80 Region resources)",
    )
    parser.add_argument(
        "--workers-rounds",
        type=int,
        default=2,
        help="interleaved rounds of the two-processes-over-one part [2]",
    )
    parser.add_argument("--logins", type=int, default=20, help="full logins per side [20]")
    parser.add_argument(
        "--sessions",
        default="10000,100000",
        help="SSO session counts for the memory scenario [10000,100000]",
    )
    parser.add_argument(
        "--keycloak-session-seconds",
        type=float,
        default=60,
        help="time bound for making Keycloak sessions; beyond it, extrapolate [60]",
    )
    parser.add_argument(
        "--own-keycloak",
        action="store_true",
        help="start a Keycloak for this run even if `tongxing-dev up` runs one",
    )
    parser.add_argument(
        "--keycloak-modes",
        default=",".join(MODES),
        help="Keycloak's modes to compare with; the first is the gateway's region "
        f"[{','.join(MODES)}]",
    )
    parser.add_argument(
        "--only", default=",".join(SCENARIOS), help=f"scenarios to run [{','.join(SCENARIOS)}]"
    )
    parser.add_argument(
        "--keycloak-warmup",
        type=float,
        default=None,
        help="seconds of JIT warm-up for Keycloak first [30 if started for the run, else 0]",
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    parser.add_argument("--profile-scenario", choices=list(SIGNATURES), default=None)
    parser.add_argument(
        "--profile-all-threads",
        action="store_true",
        help="sample every running thread, not only the one holding the GIL",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    chosen = tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    modes = tuple(m.strip() for m in args.keycloak_modes.split(",") if m.strip())
    if not modes or set(modes) - set(MODES) or len(set(modes)) != len(modes):
        parser.error(f"--keycloak-modes: one or more of {', '.join(MODES)}")
    return Options(
        count=args.count,
        warmup=args.warmup,
        duration=args.duration,
        connections=args.connections,
        threads=args.threads,
        workers=args.workers,
        server=args.server,
        logins=args.logins,
        sessions=tuple(int(x) for x in args.sessions.split(",") if x.strip()),
        keycloak_session_seconds=args.keycloak_session_seconds,
        own_keycloak=args.own_keycloak,
        keycloak_warmup=-1.0 if args.keycloak_warmup is None else args.keycloak_warmup,
        modes=modes,
        scenarios=chosen,
        profile=not args.no_profile,
        scale_only=args.scale,
        workers_rounds=args.workers_rounds,
        profile_scenario=args.profile_scenario,
        profile_gil=not args.profile_all_threads,
        output=args.json,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse(argv)
    if options.scale_only:
        return scale.main([])
    loadgen.check_wrk()
    began = time.monotonic()
    run = Run(
        started=datetime.now(UTC).isoformat(timespec="seconds"),
        machine=machine.describe(),
        command="python -m bench " + " ".join(sys.argv[1:] if argv is None else argv),
        options={k: str(v) for k, v in asdict(options).items()},
    )
    print(f"machine: {run.machine}", flush=True)
    run.signing = machine.signing_limit()
    for line in report.signing_lines(run.signing):
        print(line, flush=True)
    if set(options.scenarios) - set(LATER):
        gateway_and_keycloaks(options, run)
    if "workers" in options.scenarios:
        workers_scaling(options, run)
    if "scale" in options.scenarios:
        scale_part(run)
    run.notes.append(f"whole run: {time.monotonic() - began:.0f} s")
    print()
    for line in report.full(run.rows, run.signing, run.login, run.memory, run.notes):
        print(line)
    for line in _later_lines(run):
        print(line)
    if run.profile:
        print()
        for line in run.profile:
            print(line)
    output = options.output or profiling.PROFILES / "last-run.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    run.ratios = {row.name: row.ratios() for row in run.rows}
    recorded = asdict(run)
    for row, saved in zip(run.rows, recorded["rows"], strict=True):
        saved.update(row.ratios())
    output.write_text(json.dumps(recorded, indent=2, ensure_ascii=False, default=str))
    (output.with_suffix(".md")).write_text(
        "\n".join(
            [
                *report.markdown(
                    run.rows,
                    run.signing,
                    run.login,
                    run.memory,
                    run.started,
                    run.machine,
                    run.command,
                ),
                *_later_lines(run),
            ]
        )
        + "\n"
    )
    print(f"\nresults: {output} (and {output.with_suffix('.md').name}, the README table)")
    return 0


def workers_scaling(options: Options, run: Run) -> None:
    """Two gateway processes on one PostgreSQL over one, on the token endpoints (bench.ab)."""
    print("two gateway processes over one (granian:1, granian:2) ...", flush=True)
    configs = [ab.Config.parse(c) for c in ab.SCALING_CONFIGS.split(",")]
    try:
        lines, recorded = ab.run(
            configs,
            ab.TOKEN_SCENARIOS,
            rounds=options.workers_rounds,
            count=options.count,
            warmup=options.warmup,
            connections=options.connections,
            threads=options.threads,
        )
    except Exception as error:  # a benchmark reports, and goes on
        run.notes.append(f"workers part failed: {type(error).__name__}: {error}")
        return
    two = configs[1].name
    ratios: dict[str, float] = {}
    limits: dict[str, str] = {}
    cores = os.cpu_count() or 1
    for name, per in recorded.items():
        figures = per.get(two) if isinstance(per, dict) else None
        if not isinstance(figures, dict):
            continue
        ratios[name] = float(figures["rps_vs_first"])
        limits[name] = limit_of(figures, cores)
    run.workers_scaling = {
        "configs": [c.name for c in configs],
        "rps_ratio_2_over_1": ratios,
        "limit": limits,
        "target": 1.8,
        "table": lines,
        "results": recorded,
    }


def limit_of(figures: dict[str, Any], cores: int) -> str:
    """What limited a run of the two-process gateway: wrk (one thread: one core at most), the
    machine's cores (everything busy, the gateway's, PostgreSQL's, wrk's and other processes'),
    or neither (then the gateway's own concurrency)."""
    gateway_, postgres, wrk, busy = (
        float(figures[k]) for k in ("gateway_cores", "postgres_cores", "wrk_cores", "machine_cores")
    )
    others = max(0.0, busy - gateway_ - postgres - wrk)
    if wrk >= 0.9:
        verdict = "wrk (its one thread used a whole core)"
    elif postgres >= 0.9:
        verdict = "PostgreSQL (a whole core)"
    elif busy >= 0.85 * cores:
        verdict = f"the machine's {cores} cores (all busy)"
    else:
        verdict = "neither wrk, PostgreSQL nor the machine"
    return (
        f"{verdict}; cores busy: gateway {gateway_:.2f}, PostgreSQL {postgres:.2f}, "
        f"wrk {wrk:.2f}, other processes {others:.2f}"
    )


def scale_part(run: Run) -> None:
    """bench.scale, after the other servers are stopped; its results join last-run.json."""
    print("scale part (python -m bench.scale) ...", flush=True)
    try:
        scale.main([])
        run.scale = json.loads(scale.OUTPUT.read_text())
    except Exception as error:  # a benchmark reports, and goes on
        run.notes.append(f"scale part failed: {type(error).__name__}: {error}")


def _later_lines(run: Run) -> list[str]:
    out: list[str] = []
    if run.login_added:
        paired = run.login_added["paired_difference_ms"]
        hops = run.login_added["hops_minus_upstream_exchange_ms"]
        out += [
            "",
            f"login added latency (targets p50 <= {LOGIN_ADDED_TARGETS_MS['p50']:.0f} ms, "
            f"p99 <= {LOGIN_ADDED_TARGETS_MS['p99']:.0f} ms): paired difference p50 "
            f"{paired['p50']:.1f} ms, p99 {paired['p99']:.1f} ms; the gateway's hops minus the "
            f"region's code exchange p50 {hops['p50']:.1f} ms, p99 {hops['p99']:.1f} ms",
        ]
    if run.workers_scaling:
        table = run.workers_scaling["table"]
        ratios = run.workers_scaling["rps_ratio_2_over_1"]
        limits = run.workers_scaling["limit"]
        out += ["", "two gateway processes on one PostgreSQL over one (target >= 1.8x):", ""]
        out += [str(line) for line in table]
        out += [""]
        out += [
            f"- {name}: {ratio:.2f}x; limit: {limits.get(name)}" for name, ratio in ratios.items()
        ]
    if run.scale:
        out += ["", "scale: see bench/profiles/scale-last-run.json (printed above)"]
    return out


def gateway_and_keycloaks(options: Options, run: Run) -> None:
    """The gateway and each Keycloak mode, scenario by scenario (the first part of a run)."""
    with servers(options) as (h, gw, keycloaks):
        for keycloak in keycloaks:
            server = keycloak.server
            if server.mode == "production":
                how = (
                    "kc.sh start --optimized (production mode: PostgreSQL database of its own on "
                    "the gateway's server, --cache=local, HTTP on loopback, "
                    "--hostname-strict=false), started for this run"
                )
            else:
                origin = "reused from tongxing-dev up, shared" if server.reused else "started"
                how = f"kc.sh start-dev (H2 in memory, --cache=local), {origin}"
            run.notes.append(f"Keycloak {server.endpoint.version} {server.mode}: {how}")
        run.notes.append(
            f"the gateway's region: Keycloak {keycloaks[0].mode}; "
            f"PostgreSQL ({'reused' if h.postgres_reused else 'started for this run'}); "
            f"gateway: tongxing serve --workers {gw.workers} --threads {gw.threads} "
            f"--server {gw.server}, "
            "PostgreSQL store, rate limits off"
        )
        bench = Bench(options, run, h, gw, keycloaks)
        bench.warm_keycloak()
        try:
            for name in SCENARIOS:
                if name not in options.scenarios or name in LATER:
                    continue
                print(f"scenario {name} ...", flush=True)
                try:
                    if name in TITLES:
                        bench.wrk_scenario(name)
                    elif name == "login":
                        bench.login()
                    else:
                        bench.memory()
                except Exception as error:  # a benchmark reports, and goes on
                    run.notes.append(f"scenario {name} failed: {type(error).__name__}: {error}")
                    print(f"scenario {name} failed: {error}", flush=True)
            if options.profile:
                bench.profile_slowest()
        finally:
            bench.minter.close()


if __name__ == "__main__":
    sys.exit(main())
