"""Tables: one line per scenario with both sides and their ratio, for a terminal and for README."""

from __future__ import annotations

from dataclasses import dataclass

from bench.loadgen import Measure
from bench.machine import SigningLimit

MODES = ("production", "dev")  # Keycloak's modes, in the order the tables show them


@dataclass(frozen=True)
class Row:
    """One scenario: the gateway and each Keycloak mode (``production``, ``dev``) that ran."""

    name: str
    title: str
    gateway: Measure
    keycloak: dict[str, Measure]
    gateway_signatures: int = 0  # RS256 signatures per response
    keycloak_signatures: int = 0

    def rps_ratio(self, mode: str) -> float | None:
        """The gateway's req/s over Keycloak's (``mode``), same run."""
        other = self.keycloak.get(mode)
        return None if other is None else _ratio(self.gateway.rps, other.rps)

    def cpu_ratio(self, mode: str) -> float | None:
        """The gateway's req/s per CPU over Keycloak's (``mode``): requests per CPU second, i.e.
        Keycloak's CPU ms per request over the gateway's (server processes plus PostgreSQL)."""
        other = self.keycloak.get(mode)
        if other is None or other.cpu_ms is None or self.gateway.cpu_ms is None:
            return None
        return _ratio(other.cpu_ms, self.gateway.cpu_ms)

    def ratios(self) -> dict[str, float | None]:
        """The keys ``last-run.json`` records per scenario (issue 15)."""
        out: dict[str, float | None] = {}
        for mode in MODES:
            out[f"ratio_vs_keycloak_{mode}"] = self.cpu_ratio(mode)
            out[f"rps_ratio_vs_keycloak_{mode}"] = self.rps_ratio(mode)
        return out


@dataclass(frozen=True)
class MemoryRow:
    side: str
    sessions: int  # the count the figure is for
    measured_sessions: int  # how many were really made (fewer: the figure is extrapolated)
    rss_growth: int
    heap_growth: int | None  # JVM heap after a full GC (Keycloak)
    stored_bytes: int | None  # PostgreSQL bytes (the gateway)
    seconds: float
    database_bytes: int | None = None  # Keycloak production: growth of its PostgreSQL database

    @property
    def database_per_session(self) -> float | None:
        if self.database_bytes is None or self.measured_sessions == 0:
            return None
        return self.database_bytes / self.measured_sessions

    @property
    def per_session(self) -> float | None:
        grown = self.stored_bytes if self.stored_bytes is not None else self.heap_growth
        if grown is None or self.measured_sessions == 0:
            return None
        return grown / self.measured_sessions

    @property
    def extrapolated(self) -> bool:
        return self.measured_sessions < self.sessions


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f} MiB"


def _kb(value: float | None) -> str:
    return "-" if value is None else f"{value / 1024:.2f} KiB"


def signing_lines(limit: SigningLimit) -> list[str]:
    return [
        "single-core signing limit (cryptography, one thread):",
        f"  RS256 (RSA-2048) {limit.rs256:8.0f} signs/s   ES256 (P-256) {limit.es256:8.0f} signs/s",
        f"  whole JWTs through the gateway's KeyRing (joserfc): RS256 {limit.rs256_jwt:.0f}/s, "
        f"ES256 {limit.es256_jwt:.0f}/s",
    ]


HEADER = (
    f"{'scenario':<34}{'side':<20}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
    f"{'cpu ms/req':>11}{'RS256 load':>11}{'gw/this req/s':>14}{'gw/this per CPU':>16}"
)


def side_name(mode: str) -> str:
    return f"keycloak {mode}"


def _side_line(
    title: str, side: str, m: Measure, signatures: int, limit: SigningLimit | None
) -> str:
    load = "-"
    if signatures and limit is not None and limit.rs256 > 0:
        load = f"{100 * m.rps * signatures / limit.rs256:.0f}%"
    return (
        f"{title:<34}{side:<20}{m.rps:>9.1f}{m.p50_ms:>9.1f}{m.p99_ms:>9.1f}{m.errors:>8d}"
        f"{_fmt(m.cpu_ms):>11}{load:>11}"
    )


def progress(row: Row, limit: SigningLimit | None = None) -> str:
    return "\n".join(_row_lines(row, limit))


def _modes(row: Row) -> list[str]:
    return [m for m in MODES if m in row.keycloak] + [m for m in row.keycloak if m not in MODES]


def _row_lines(row: Row, limit: SigningLimit | None) -> list[str]:
    lines = [_side_line(row.title, "gateway", row.gateway, row.gateway_signatures, limit)]
    for mode in _modes(row):
        line = _side_line("", side_name(mode), row.keycloak[mode], row.keycloak_signatures, limit)
        line += f"{_fmt(row.rps_ratio(mode)):>14}{_fmt(row.cpu_ratio(mode)):>16}"
        lines.append(line)
    if row.gateway.database_cpu_ms is not None and row.gateway.cpu_ms is not None:
        own = row.gateway.cpu_ms - row.gateway.database_cpu_ms
        lines.append(
            f"{'':<34}  gateway cpu ms/req: {own:.2f} in its processes, "
            f"{row.gateway.database_cpu_ms:.2f} in PostgreSQL"
        )
    production = row.keycloak.get("production")
    if (
        production is not None
        and production.database_cpu_ms is not None
        and production.cpu_ms is not None
    ):
        own = production.cpu_ms - production.database_cpu_ms
        lines.append(
            f"{'':<34}  keycloak production cpu ms/req: {own:.2f} in the JVM, "
            f"{production.database_cpu_ms:.2f} in PostgreSQL"
        )
    for side, m in (
        ("gateway", row.gateway),
        *((side_name(k), v) for k, v in row.keycloak.items()),
    ):
        for sample in m.samples[:1]:
            lines.append(f"    first {side} error: {sample[:160]}")
    return lines


def memory_table(rows: list[MemoryRow]) -> list[str]:
    out = [
        f"{'memory per SSO session':<34}{'side':<20}{'sessions':>10}{'made':>9}{'per session':>14}"
        f"{'total':>13}{'RSS growth':>13}{'its database':>16}",
    ]
    for r in rows:
        per = r.per_session
        total = None if per is None else per * r.sessions
        what = "stored in PostgreSQL" if r.side == "gateway" else "JVM heap after GC"
        label = what + (" (extrapolated)" if r.extrapolated else "")
        out.append(
            f"{label:<34}{r.side:<20}{r.sessions:>10d}{r.measured_sessions:>9d}{_kb(per):>14}"
            f"{_mb(total):>13}{_mb(r.rss_growth):>13}{_kb(r.database_per_session):>16}"
        )
    return out


def login_lines(stats: dict[str, float]) -> list[str]:
    names = list(dict.fromkeys(key.rsplit(" ", 1)[0] for key in stats))
    out = [f"{'login latency (ms)':<50}{'p50':>8}{'p99':>8}"]
    for name in names:
        out.append(f"{name:<50}{stats[name + ' p50']:>8.1f}{stats[name + ' p99']:>8.1f}")
    return out


def full(
    rows: list[Row],
    limit: SigningLimit | None,
    login: dict[str, float],
    memory: list[MemoryRow],
    notes: list[str],
) -> list[str]:
    out: list[str] = []
    if limit is not None:
        out += signing_lines(limit)
        out.append("")
    out.append(HEADER)
    for row in rows:
        out += _row_lines(row, limit)
    out.append(
        "cpu ms/req: server CPU per request (the server's process tree + the PostgreSQL backends "
        "of its own database). gw/this per CPU: the gateway's req/s per CPU over that Keycloak's "
        "(ratio_vs_keycloak_<mode> in last-run.json). RS256 load: RS256 signatures/s as a share "
        "of one core's limit."
    )
    if login:
        out.append("")
        out += login_lines(login)
    if memory:
        out.append("")
        out += memory_table(memory)
    if notes:
        out.append("")
        out += [f"note: {n}" for n in notes]
    return out


def markdown(
    rows: list[Row],
    limit: SigningLimit | None,
    login: dict[str, float],
    memory: list[MemoryRow],
    started: str,
    machine: str,
    command: str,
) -> list[str]:
    out = [
        f"Measured {started} on {machine}; `{command}`.",
        "",
        "| scenario | side | req/s | p50 ms | p99 ms | err | CPU ms/req "
        "| gw/this req/s per CPU | gw/this req/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        g = r.gateway
        out.append(
            f"| {r.title} | gateway | {g.rps:.0f} | {g.p50_ms:.1f} | {g.p99_ms:.1f} | {g.errors} "
            f"| {_fmt(g.cpu_ms)} | | |"
        )
        for mode in _modes(r):
            k = r.keycloak[mode]
            out.append(
                f"| | Keycloak {mode} | {k.rps:.0f} | {k.p50_ms:.1f} | {k.p99_ms:.1f} "
                f"| {k.errors} | {_fmt(k.cpu_ms)} | **{_fmt(r.cpu_ratio(mode))}** "
                f"| {_fmt(r.rps_ratio(mode))} |"
            )
    if login:
        key = "gateway adds (hops - upstream code exchange)"
        if f"{key} p50" in login:
            out += [
                "",
                f"Gateway-added login latency: p50 {login[key + ' p50']:.1f} ms, "
                f"p99 {login[key + ' p99']:.1f} ms.",
            ]
    if memory:
        out += [
            "",
            "| memory per SSO session | sessions | per session | total | in its database |",
            "|---|---:|---:|---:|---:|",
        ]
        for m in memory:
            per = m.per_session
            total = None if per is None else per * m.sessions
            what = (
                "gateway (PostgreSQL)" if m.side == "gateway" else f"{m.side} (JVM heap after GC)"
            )
            extra = f" (extrapolated from {m.measured_sessions})" if m.extrapolated else ""
            out.append(
                f"| {what}{extra} | {m.sessions} | {_kb(per)} | {_mb(total)} "
                f"| {_kb(m.database_per_session)} |"
            )
    if limit is not None:
        out += [
            "",
            f"Single-core signing limit: RS256 {limit.rs256:.0f}/s, ES256 {limit.es256:.0f}/s "
            f"(whole JWTs via joserfc: RS256 {limit.rs256_jwt:.0f}/s, "
            f"ES256 {limit.es256_jwt:.0f}/s).",
        ]
    return out
