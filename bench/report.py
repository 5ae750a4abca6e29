"""Tables: one line per scenario with both sides and their ratio, for a terminal and for README."""

from __future__ import annotations

from dataclasses import dataclass

from bench.loadgen import Measure
from bench.machine import SigningLimit


@dataclass(frozen=True)
class Row:
    name: str
    title: str
    gateway: Measure
    keycloak: Measure
    gateway_signatures: int = 0  # RS256 signatures per response
    keycloak_signatures: int = 0

    @property
    def rps_ratio(self) -> float | None:
        return _ratio(self.gateway.rps, self.keycloak.rps)

    @property
    def p50_ratio(self) -> float | None:
        return _ratio(self.gateway.p50_ms, self.keycloak.p50_ms)


@dataclass(frozen=True)
class MemoryRow:
    side: str
    sessions: int  # the count the figure is for
    measured_sessions: int  # how many were really made (fewer: the figure is extrapolated)
    rss_growth: int
    heap_growth: int | None  # JVM heap after a full GC (Keycloak)
    stored_bytes: int | None  # PostgreSQL bytes (the gateway)
    seconds: float

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
    f"{'scenario':<34}{'side':<9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
    f"{'cpu ms/req':>11}{'RS256 load':>11}{'gw/kc req/s':>12}{'gw/kc p50':>10}"
)


def _side_line(
    title: str, side: str, m: Measure, signatures: int, limit: SigningLimit | None
) -> str:
    load = "-"
    if signatures and limit is not None and limit.rs256 > 0:
        load = f"{100 * m.rps * signatures / limit.rs256:.0f}%"
    return (
        f"{title:<34}{side:<9}{m.rps:>9.1f}{m.p50_ms:>9.1f}{m.p99_ms:>9.1f}{m.errors:>8d}"
        f"{_fmt(m.cpu_ms):>11}{load:>11}"
    )


def progress(row: Row, limit: SigningLimit | None = None) -> str:
    return "\n".join(_row_lines(row, limit))


def _row_lines(row: Row, limit: SigningLimit | None) -> list[str]:
    first = _side_line(row.title, "gateway", row.gateway, row.gateway_signatures, limit)
    first += f"{_fmt(row.rps_ratio):>12}{_fmt(row.p50_ratio):>10}"
    second = _side_line("", "keycloak", row.keycloak, row.keycloak_signatures, limit)
    lines = [first, second]
    if row.gateway.database_cpu_ms is not None and row.gateway.cpu_ms is not None:
        own = row.gateway.cpu_ms - row.gateway.database_cpu_ms
        lines.append(
            f"{'':<34}  gateway cpu ms/req: {own:.2f} in the gateway process, "
            f"{row.gateway.database_cpu_ms:.2f} in PostgreSQL"
        )
    for side, m in (("gateway", row.gateway), ("keycloak", row.keycloak)):
        for sample in m.samples[:1]:
            lines.append(f"    first {side} error: {sample[:160]}")
    return lines


def memory_table(rows: list[MemoryRow]) -> list[str]:
    out = [
        f"{'memory per SSO session':<34}{'side':<9}{'sessions':>10}{'made':>9}{'per session':>14}"
        f"{'total':>13}{'RSS growth':>13}",
    ]
    for r in rows:
        per = r.per_session
        total = None if per is None else per * r.sessions
        what = "stored in PostgreSQL" if r.side == "gateway" else "JVM heap after GC"
        label = what + (" (extrapolated)" if r.extrapolated else "")
        out.append(
            f"{label:<34}{r.side:<9}{r.sessions:>10d}{r.measured_sessions:>9d}{_kb(per):>14}"
            f"{_mb(total):>13}{_mb(r.rss_growth):>13}"
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
        "cpu ms/req: server CPU per request (gateway process + its PostgreSQL; Keycloak's JVM). "
        "RS256 load: RS256 signatures/s as a share of one core's limit."
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
        "| scenario | gateway req/s | p50 ms | p99 ms | err | Keycloak req/s | p50 ms | p99 ms "
        "| err | gw/kc req/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        g, k = r.gateway, r.keycloak
        out.append(
            f"| {r.title} | {g.rps:.0f} | {g.p50_ms:.1f} | {g.p99_ms:.1f} | {g.errors} "
            f"| {k.rps:.0f} | {k.p50_ms:.1f} | {k.p99_ms:.1f} | {k.errors} | {_fmt(r.rps_ratio)} |"
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
            "| memory per SSO session | sessions | per session | total |",
            "|---|---:|---:|---:|",
        ]
        for m in memory:
            per = m.per_session
            total = None if per is None else per * m.sessions
            what = "gateway (PostgreSQL)" if m.side == "gateway" else "Keycloak (JVM heap)"
            extra = f" (extrapolated from {m.measured_sessions})" if m.extrapolated else ""
            out.append(f"| {what}{extra} | {m.sessions} | {_kb(per)} | {_mb(total)} |")
    if limit is not None:
        out += [
            "",
            f"Single-core signing limit: RS256 {limit.rs256:.0f}/s, ES256 {limit.es256:.0f}/s "
            f"(whole JWTs via joserfc: RS256 {limit.rs256_jwt:.0f}/s, "
            f"ES256 {limit.es256_jwt:.0f}/s).",
        ]
    return out
