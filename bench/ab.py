"""``python -m bench.ab``: gateways side by side, same load, interleaved rounds: an A/B driver.

Each configuration (``SERVER:WORKERS``, e.g. ``granian:2``) is its own ``tongxing serve`` on its
own fresh PostgreSQL database of the same server, with the same region (a bench realm of the
harness's Keycloak) and portal. Every round runs every scenario against every configuration in
turn, so that the machine's load moves all of them alike; the medians over the rounds are
printed, and the ratios of each configuration to the first.

Per run it records requests/s, p50, p99, errors, the gateway's CPU ms per request (its process
tree plus its database's backends, :class:`bench.machine.CpuMeter`), and what the other parties
spent meanwhile: wrk (the load generator, this process's reaped children) and the whole
PostgreSQL server (its postmaster's tree), each as cores busy over the run, to say which one was
the limit (a two-core machine has 2.0).

Used for two questions of issue 15: is granian cheaper than waitress (``granian:2,waitress:2``),
and do two worker processes on one PostgreSQL scale over one (``--scaling``: ``granian:1,
granian:2`` on the token endpoints). Nothing here asserts: a benchmark reports.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from bench import keycloak_side, loadgen, machine, profiling
from bench.gateway_side import Minter, Registered, access_token, register
from bench.loadgen import Load, basic_auth, form_headers
from bench.machine import CpuMeter
from bench.servers import Gateway, Harness, fresh_database, gateway, harness

SCENARIOS = ("refresh", "client_credentials", "code", "userinfo", "introspect")
TOKEN_SCENARIOS = ("refresh", "client_credentials", "code")
SCALING_CONFIGS = "granian:1,granian:2"


@dataclass(frozen=True)
class Config:
    server: str
    workers: int

    @property
    def name(self) -> str:
        return f"{self.server}:{self.workers}"

    @classmethod
    def parse(cls, text: str) -> Config:
        server, _, workers = text.partition(":")
        return cls(server, int(workers or "1"))


@dataclass
class Sample:
    """One measured run of one scenario against one configuration."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_ms: float
    database_cpu_ms: float
    wrk_cores: float
    postgres_cores: float
    gateway_cores: float
    machine_cores: float  # every process of the machine (/proc/stat), the above included


@dataclass
class Side:
    config: Config
    gw: Gateway
    portal: Registered
    minter: Minter
    meter: CpuMeter
    samples: dict[str, list[Sample]] = field(default_factory=dict)


def _machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (not idle, not waiting for I/O)."""
    # cpu: user nice system idle iowait irq softirq steal ...; steal is the hypervisor's.
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6]
    return busy / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class AB:
    def __init__(
        self, h: Harness, sides: list[Side], count: int, warmup: int, connections: int
    ) -> None:
        self.h = h
        self.sides = sides
        self.count = count
        self.warmup = warmup
        self.connections = connections

    def load(self, side: Side, name: str, n: int) -> Load:
        gw, portal = side.gw, side.portal
        headers = form_headers(basic_auth(*portal.credentials))
        once = name in ("refresh", "code")
        url, method = f"{gw.issuer}/token", "POST"
        if name == "refresh":
            bodies = [
                f"grant_type=refresh_token&refresh_token={quote(t, safe='')}"
                for t in side.minter.refresh_tokens(n)
            ]
        elif name == "code":
            redirect = quote(portal.redirect_uri, safe="")
            bodies = [
                f"grant_type=authorization_code&code={quote(c, safe='')}"
                f"&redirect_uri={redirect}&code_verifier={v}"
                for c, v in side.minter.codes(n)
            ]
        elif name == "client_credentials":
            bodies = ["grant_type=client_credentials"]
        else:
            token = access_token(gw, portal, side.minter.refresh_tokens(1)[0])
            if name == "userinfo":
                url, method, bodies = f"{gw.issuer}/userinfo", "GET", [""]
                headers = {"Authorization": f"Bearer {token}"}
            else:
                url = f"{gw.issuer}/introspect"
                bodies = [f"token={quote(token, safe='')}&token_type_hint=access_token"]
        return Load(
            url=url,
            method="GET" if method == "GET" else "POST",
            headers=headers,
            bodies=bodies,
            once=once,
            limit=n if once else self.count,
            duration_s=20,
            connections=self.connections,
        )

    def settle(self, limit_s: float = 10.0) -> None:
        pids = (self.h.postgres_pid, *(s.gw.pid for s in self.sides))
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            before = sum(machine.cpu_seconds(pid) for pid in pids)
            time.sleep(0.5)
            if (sum(machine.cpu_seconds(pid) for pid in pids) - before) / 0.5 < 0.1:
                return

    def measure(self, side: Side, name: str) -> Sample:
        warm = self.load(side, name, self.warmup)
        measured = self.load(side, name, self.count)
        loadgen.run(warm)
        self.settle()
        before = side.meter.snapshot()
        postgres0, wrk0 = machine.cpu_seconds(self.h.postgres_pid), _children_cpu()
        busy0 = _machine_busy()
        wall0 = time.monotonic()
        result = loadgen.run(measured)
        # The cheap readings first, at the end of the same interval as the wall clock's.
        busy = _machine_busy() - busy0
        wall = time.monotonic() - wall0
        wrk = _children_cpu() - wrk0
        postgres = machine.cpu_seconds(self.h.postgres_pid) - postgres0
        total, database = CpuMeter.spent(before, side.meter.snapshot())
        per = 1000 / max(result.completed, 1)
        return Sample(
            rps=result.rps,
            p50_ms=result.p50_ms,
            p99_ms=result.p99_ms,
            errors=result.errors,
            cpu_ms=total * per,
            database_cpu_ms=database * per,
            wrk_cores=wrk / wall,
            postgres_cores=postgres / wall,
            gateway_cores=(total - database) / wall,
            machine_cores=busy / wall,
        )

    def round(self, scenarios: Sequence[str], index: int) -> None:
        for name in scenarios:
            order = self.sides if index % 2 == 0 else list(reversed(self.sides))
            for side in order:
                sample = self.measure(side, name)
                side.samples.setdefault(name, []).append(sample)
                print(
                    f"  round {index + 1} {name:18} {side.config.name:12} {sample.rps:7.0f} req/s"
                    f"  {sample.cpu_ms:5.2f} CPU ms/req  p50 {sample.p50_ms:6.1f}  p99 "
                    f"{sample.p99_ms:6.1f}  err {sample.errors}  cores: gateway "
                    f"{sample.gateway_cores:.2f} postgres {sample.postgres_cores:.2f} wrk "
                    f"{sample.wrk_cores:.2f} machine {sample.machine_cores:.2f}",
                    flush=True,
                )


def _median(samples: list[Sample], attribute: str) -> float:
    return float(statistics.median(float(getattr(s, attribute)) for s in samples))


def summary(sides: list[Side], scenarios: Sequence[str]) -> tuple[list[str], dict[str, object]]:
    """The medians per scenario and configuration, with the ratios to the first configuration."""
    first = sides[0]
    lines = [
        "| scenario | configuration | req/s | CPU ms/req | of which PostgreSQL | p50 ms | p99 ms "
        "| err | cores: gateway / PostgreSQL / wrk / machine | req/s vs first | CPU ms vs first |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    recorded: dict[str, object] = {}
    for name in scenarios:
        per: dict[str, object] = {}
        for side in sides:
            samples = side.samples.get(name, [])
            if not samples:
                continue
            rps, cpu = _median(samples, "rps"), _median(samples, "cpu_ms")
            base_rps = _median(first.samples[name], "rps")
            base_cpu = _median(first.samples[name], "cpu_ms")
            figures: dict[str, object] = {
                k: _median(samples, k)
                for k in (
                    "rps",
                    "cpu_ms",
                    "database_cpu_ms",
                    "p50_ms",
                    "p99_ms",
                    "gateway_cores",
                    "postgres_cores",
                    "wrk_cores",
                    "machine_cores",
                )
            }
            figures["errors"] = sum(s.errors for s in samples)
            figures["rps_vs_first"] = rps / base_rps if base_rps else 0.0
            figures["cpu_vs_first"] = cpu / base_cpu if base_cpu else 0.0
            figures["rounds"] = [asdict(s) for s in samples]
            per[side.config.name] = figures
            lines.append(
                f"| {name} | {side.config.name} | {rps:.0f} | {cpu:.2f} | "
                f"{figures['database_cpu_ms']:.2f} | {figures['p50_ms']:.1f} | "
                f"{figures['p99_ms']:.1f} | {figures['errors']} | "
                f"{figures['gateway_cores']:.2f} / {figures['postgres_cores']:.2f} / "
                f"{figures['wrk_cores']:.2f} / {figures['machine_cores']:.2f} | "
                f"{figures['rps_vs_first']:.2f} | "
                f"{figures['cpu_vs_first']:.2f} |"
            )
        recorded[name] = per
    return lines, recorded


@contextlib.contextmanager
def started(configs: Sequence[Config], threads: int) -> Iterator[tuple[Harness, list[Side]]]:
    with harness(own_keycloak=False, modes=("dev",)) as h, contextlib.ExitStack() as stack:
        realm = keycloak_side.create_realm(
            h.keycloaks[0].endpoint,
            gateway_callback="http://127.0.0.1:9/unused",
            redirect_uri="http://127.0.0.1:9/bench-portal/callback",
        )
        stack.callback(realm.delete)
        sides: list[Side] = []
        for index, config in enumerate(configs):
            url = stack.enter_context(fresh_database(h.postgres))
            gw = stack.enter_context(
                gateway(
                    url,
                    h.workdir,
                    threads=threads,
                    workers=config.workers,
                    server=config.server,
                    folder_name=f"gateway-{index}",
                )
            )
            portal = register(gw, realm)
            minter = Minter(gw, portal)
            stack.callback(minter.close)
            database = url.rsplit("/", 1)[1].split("?")[0]
            sides.append(
                Side(config, gw, portal, minter, CpuMeter(gw.pid, h.postgres.url(), database))
            )
        yield h, sides


def run(
    configs: Sequence[Config],
    scenarios: Sequence[str],
    *,
    rounds: int = 3,
    count: int = 1500,
    warmup: int = 300,
    connections: int = 16,
    threads: int = 8,
) -> tuple[list[str], dict[str, object]]:
    """Start the configurations, run the rounds, stop them; the table and the medians."""
    with started(configs, threads) as (h, sides):
        ab = AB(h, sides, count, warmup, connections)
        for index in range(rounds):
            ab.round(scenarios, index)
        return summary(sides, scenarios)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    parser.add_argument(
        "--configs",
        default="granian:2,waitress:2",
        help="SERVER:WORKERS,... ; ratios are to the first [granian:2,waitress:2]",
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="two worker processes over one on the token endpoints: "
        "--configs granian:1,granian:2 --only refresh,client_credentials,code",
    )
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=1500)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.scaling:
        args.configs, args.only = SCALING_CONFIGS, ",".join(TOKEN_SCENARIOS)
    configs = [Config.parse(c) for c in args.configs.split(",") if c.strip()]
    scenarios = [s for s in args.only.split(",") if s in SCENARIOS]
    loadgen.check_wrk()
    print(f"machine: {machine.describe()}", flush=True)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    lines, recorded = run(
        configs,
        scenarios,
        rounds=args.rounds,
        count=args.count,
        warmup=args.warmup,
        connections=args.connections,
        threads=args.threads,
    )
    print()
    print("\n".join(lines))
    output = args.json or profiling.PROFILES / (
        "ab-scaling-last-run.json" if args.scaling else "ab-last-run.json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        json.dumps(
            {
                "started": stamp,
                "machine": machine.describe(),
                "command": "python -m bench.ab " + " ".join(sys.argv[1:] if argv is None else argv),
                "threads": args.threads,
                "connections": args.connections,
                "results": recorded,
                "table": lines,
            },
            indent=2,
        )
    )
    print(f"\nresults: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
