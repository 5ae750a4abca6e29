"""``python -m bench``: the gateway and Keycloak side by side, on this machine, on loopback.

Starts (or reuses) Keycloak and PostgreSQL from the test harness, creates a bench realm, starts
``tongxing serve`` on a fresh PostgreSQL database with that realm as its region, and drives both
with wrk. Prints, per scenario, requests/s, p50, p99 and errors for each side and the ratio
gateway/Keycloak, the machine's single-core signing limit, the memory per SSO session, the latency
the gateway adds to a login, and a py-spy profile of the gateway's slowest scenario.

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
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import requests

from bench import keycloak_side, loadgen, machine, profiling, report
from bench.browser import Browser
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
from bench.machine import SigningLimit
from bench.servers import Gateway, Harness, fresh_database, gateway, harness

SCENARIOS = ("refresh", "client_credentials", "code", "userinfo", "login", "memory")
Side = Literal["gateway", "keycloak"]


@dataclass
class Options:
    count: int
    warmup: int
    duration: float
    connections: int
    threads: int
    workers: int
    logins: int
    sessions: tuple[int, ...]
    keycloak_session_seconds: float
    own_keycloak: bool
    keycloak_warmup: float
    scenarios: tuple[str, ...]
    profile: bool
    profile_scenario: str | None
    profile_gil: bool
    output: Path | None


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


# Signatures per successful response: the gateway's access tokens are opaque (stored by hash),
# so a token response carries one signature (the ID token); Keycloak signs its JWT access token
# and the ID token with RS256 (its refresh token is HS512, an HMAC).
TITLES = {
    "refresh": "1 refresh_token (RS256 ID token)",
    "client_credentials": "2 client_credentials",
    "code": "3 authorization_code exchange",
    "userinfo": "4 userinfo (bearer)",
}
SIGNATURES: dict[str, tuple[int, int]] = {
    "refresh": (1, 2),
    "client_credentials": (0, 1),
    "code": (1, 2),
    "userinfo": (0, 0),
}


class Bench:
    def __init__(
        self, options: Options, run: Run, servers: Harness, gw: Gateway, realm: BenchRealm
    ) -> None:
        self.o = options
        self.run = run
        self.h = servers
        self.gw = gw
        self.realm = realm
        self.portal: Registered = register(gw, realm)
        self.minter = Minter(gw, self.portal)

    # --- helpers ---------------------------------------------------------------------------------

    def _cpu(self, side: Side) -> tuple[float, float]:
        """CPU seconds so far of the server (and of its database, for the gateway)."""
        if side == "gateway":
            database = machine.cpu_seconds(self.h.postgres_pid)
            return machine.cpu_seconds(self.gw.pid) + database, database
        return machine.cpu_seconds(self.h.keycloak_pid), 0.0

    def settle(self, limit_s: float = 10.0, quiet_cores: float = 0.1) -> None:
        """Wait, at most ``limit_s``, until the servers are idle.

        A run leaves work behind (Keycloak writes its sessions in the background, PostgreSQL
        vacuums): measured against the next side, it would be charged to the wrong server.
        """
        pids = (self.gw.pid, self.h.postgres_pid, self.h.keycloak_pid)
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            before = sum(machine.cpu_seconds(pid) for pid in pids)
            time.sleep(0.5)
            if (sum(machine.cpu_seconds(pid) for pid in pids) - before) / 0.5 < quiet_cores:
                return

    def measure(self, side: Side, load: Load) -> Measure:
        self.settle()
        before, database_before = self._cpu(side)
        result = loadgen.run(load)
        after, database_after = self._cpu(side)
        if not result.completed:
            return result
        per = 1000 / result.completed
        return replace(
            result,
            cpu_ms=(after - before) * per,
            database_cpu_ms=(database_after - database_before) * per if side == "gateway" else None,
        )

    def pair(
        self,
        name: str,
        title: str,
        loads: Callable[[Side, int], tuple[Load, Load]],
    ) -> report.Row:
        """Warm each side up, then measure the gateway and Keycloak with the same load."""
        results: dict[Side, Measure] = {}
        for side in ("gateway", "keycloak"):
            warm, measured = loads(side, self.o.count)
            loadgen.run(warm)
            results[side] = self.measure(side, measured)
        gateway_sigs, keycloak_sigs = SIGNATURES.get(name, (0, 0))
        row = report.Row(
            name,
            title,
            results["gateway"],
            results["keycloak"],
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
            else basic_auth(*self.realm.credentials)
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
        return f"{self.gw.issuer}/token" if side == "gateway" else self.realm.token_url

    # --- scenarios -------------------------------------------------------------------------------

    def refresh_bodies(self, side: Side, n: int) -> list[str]:
        started = time.perf_counter()
        if side == "gateway":
            tokens = self.minter.refresh_tokens(n)
        else:
            tokens = keycloak_side.refresh_tokens(self.realm, n)
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
            codes = keycloak_side.authorization_codes(self.realm, n)
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
            token = keycloak_side.password_grant(self.realm, requests.Session())["access_token"]
            url = self.realm.userinfo_url
        headers = {"Authorization": f"Bearer {token}"}
        return self._split(url, headers, [""], once=False, method="GET")

    def loads(self, name: str) -> Callable[[Side, int], tuple[Load, Load]]:
        table: dict[str, Callable[[Side, int], tuple[Load, Load]]] = {
            "refresh": self.refresh_loads,
            "client_credentials": self.client_credentials_loads,
            "code": self.code_loads,
            "userinfo": self.userinfo_loads,
        }
        return table[name]

    def warm_keycloak(self) -> None:
        """Let Keycloak's JIT compile its token paths before anything is measured.

        A JVM runs interpreted code until a method has been called thousands of times; the
        warm-up run of each scenario is too short for a Keycloak started a minute ago, so a
        fresh one gets this first (a reused one has served the test suites already).
        """
        seconds = self.o.keycloak_warmup
        if seconds <= 0:
            return
        print(f"warming Keycloak up for {seconds:.0f} s ...", flush=True)
        share = seconds / 3
        tokens = keycloak_side.refresh_tokens(self.realm, 200)
        headers = form_headers(basic_auth(*self.realm.credentials))
        bodies = [f"grant_type=refresh_token&refresh_token={quote(t, safe='')}" for t in tokens]
        bearer = keycloak_side.password_grant(self.realm, requests.Session())["access_token"]
        for url, method, body, once, extra in (
            (self.realm.token_url, "POST", ["grant_type=client_credentials"], False, {}),
            (self.realm.token_url, "POST", bodies, True, {}),
            (self.realm.userinfo_url, "GET", [""], False, {"Authorization": f"Bearer {bearer}"}),
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

    def login(self) -> None:
        """Full logins, one at a time, alternating gateway and Keycloak (fresh browsers)."""
        self.realm.set_password_hashing(keycloak_side.DEFAULT_HASHING)
        for _ in range(2):  # the first login re-hashes the password with argon2; JIT, pools
            keycloak_side.full_login(self.realm)
            federated_login(self.gw, self.portal, self.realm)
        gateway_runs: list[FederatedTiming] = []
        keycloak_runs: list[keycloak_side.LoginTiming] = []
        errors = {"gateway": 0, "keycloak": 0}
        for _ in range(self.o.logins):
            try:
                gateway_runs.append(federated_login(self.gw, self.portal, self.realm))
            except Exception as error:
                errors["gateway"] += 1
                self.run.notes.append(f"gateway login failed: {error}")
            try:
                keycloak_runs.append(keycloak_side.full_login(self.realm))
            except Exception as error:
                errors["keycloak"] += 1
                self.run.notes.append(f"Keycloak login failed: {error}")
        self.realm.set_password_hashing(keycloak_side.CHEAP_HASHING)
        fed = gateway_runs
        gw_total = [r.total for r in fed]
        kc_total = [r.total for r in keycloak_runs]
        wall_gw = sum(gw_total)
        wall_kc = sum(kc_total)
        row = report.Row(
            "login",
            "5 full login (fresh browser)",
            Measure.of_latencies(gw_total, wall_gw, errors["gateway"]),
            Measure.of_latencies(kc_total, wall_kc, errors["keycloak"]),
        )
        self.run.rows.append(row)
        print(report.progress(row, self.run.signing), flush=True)
        # The callback hop contains the gateway's own code exchange at Keycloak; Keycloak's own
        # flow measures that exchange (its /token hop), login by login.
        # The floor of one hop: the same client asking the gateway for nothing (/healthz).
        probe = Browser()
        floor = [probe.request("GET", f"{self.gw.issuer}/healthz")[1] for _ in range(30)]
        pairs = list(zip(fed, keycloak_runs, strict=False))
        added = [g.gateway - k.token for g, k in pairs]
        stats: dict[str, float] = {}
        for name, values in (
            ("gateway hops", [r.gateway for r in fed]),
            ("  /authorize", [r.authorize for r in fed]),
            ("  /callback (upstream code exchange, session, the code)", [r.callback for r in fed]),
            ("  /token", [r.token for r in fed]),
            ("region: login page + password", [r.region for r in fed]),
            ("Keycloak own: /token (code exchange)", [k.token for k in keycloak_runs]),
            ("gateway adds (hops - upstream code exchange)", added),
            ("one hop's floor: GET /healthz from the same client", floor),
        ):
            stats[f"{name} p50"] = percentile(values, 50) * 1000
            stats[f"{name} p99"] = percentile(values, 99) * 1000
        self.run.login = stats

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
        # Keycloak: user sessions in its JVM (and, with persistent sessions, in its database,
        # which in start-dev is in-memory H2, also in the JVM's heap).
        heap0 = machine.jvm_heap_after_gc(self.h.keycloak_pid)
        rss0 = machine.rss_bytes(self.h.keycloak_pid)
        deadline = time.monotonic() + self.o.keycloak_session_seconds
        created = 0
        started = time.perf_counter()
        for target in targets:
            while created < target and time.monotonic() < deadline:
                created += keycloak_side.sessions(self.realm, min(500, target - created))
            heap = machine.jvm_heap_after_gc(self.h.keycloak_pid)
            growth = None if heap is None or heap0 is None else heap - heap0
            self.run.memory.append(
                report.MemoryRow(
                    side="keycloak",
                    sessions=target,
                    measured_sessions=created,
                    rss_growth=machine.rss_bytes(self.h.keycloak_pid) - rss0,
                    heap_growth=growth,
                    stored_bytes=None,
                    seconds=time.perf_counter() - started,
                )
            )
            if created < target:
                break
        for line in report.memory_table(self.run.memory):
            print(line, flush=True)

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
def servers(options: Options) -> Iterator[tuple[Harness, Gateway, BenchRealm]]:
    with (
        harness(own_keycloak=options.own_keycloak) as h,
        fresh_database(h.postgres) as database_url,
        gateway(database_url, h.workdir, threads=options.threads, workers=options.workers) as gw,
    ):
        realm = keycloak_side.create_realm(
            h.keycloak,
            gateway_callback=f"{gw.issuer}/callback/bench",
            redirect_uri="http://127.0.0.1:9/bench-portal/callback",
        )
        try:
            yield h, gw, realm
        finally:
            realm.delete()


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
        "--threads", type=int, default=8, help="waitress threads per gateway worker [8]"
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
    return Options(
        count=args.count,
        warmup=args.warmup,
        duration=args.duration,
        connections=args.connections,
        threads=args.threads,
        workers=args.workers,
        logins=args.logins,
        sessions=tuple(int(x) for x in args.sessions.split(",") if x.strip()),
        keycloak_session_seconds=args.keycloak_session_seconds,
        own_keycloak=args.own_keycloak,
        keycloak_warmup=-1.0 if args.keycloak_warmup is None else args.keycloak_warmup,
        scenarios=chosen,
        profile=not args.no_profile,
        profile_scenario=args.profile_scenario,
        profile_gil=not args.profile_all_threads,
        output=args.json,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse(argv)
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
    with servers(options) as (h, gw, realm):
        keycloak_origin = (
            "reused from tongxing-dev up, shared" if h.keycloak_reused else "started for this run"
        )
        run.notes.append(
            f"Keycloak {h.keycloak.version} start-dev ({keycloak_origin}); "
            f"PostgreSQL ({'reused' if h.postgres_reused else 'started for this run'}); "
            f"gateway: tongxing serve --workers {gw.workers} --threads {gw.threads} (waitress), "
            "PostgreSQL store"
        )
        if options.keycloak_warmup < 0:
            options.keycloak_warmup = 0.0 if h.keycloak_reused else 30.0
        bench = Bench(options, run, h, gw, realm)
        bench.warm_keycloak()
        try:
            for name in SCENARIOS:
                if name not in options.scenarios:
                    continue
                print(f"scenario {name} ...", flush=True)
                if name in TITLES:
                    bench.wrk_scenario(name)
                elif name == "login":
                    bench.login()
                else:
                    bench.memory()
            if options.profile:
                bench.profile_slowest()
        finally:
            bench.minter.close()
    run.notes.append(f"whole run: {time.monotonic() - began:.0f} s")
    print()
    for line in report.full(run.rows, run.signing, run.login, run.memory, run.notes):
        print(line)
    if run.profile:
        print()
        for line in run.profile:
            print(line)
    output = options.output or profiling.PROFILES / "last-run.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(asdict(run), indent=2, ensure_ascii=False, default=str))
    (output.with_suffix(".md")).write_text(
        "\n".join(
            report.markdown(
                run.rows, run.signing, run.login, run.memory, run.started, run.machine, run.command
            )
        )
        + "\n"
    )
    print(f"\nresults: {output} (and {output.with_suffix('.md').name}, the README table)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
