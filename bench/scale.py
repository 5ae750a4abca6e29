"""Scale: 80 regions and 5,000 portals beside 3 regions and 2 portals (issue 15, "Scale").

``python -m bench.scale`` registers, through the admin API of a real gateway (``tongxing
serve`` on a fresh PostgreSQL database), 34 province-like regions (provinces, municipalities,
autonomous regions, SARs, the XPCC) and 46 national departments, and 5,000 portals; then, side
by side with a gateway of 3 regions and 2 portals, it measures over a bounded number of
sequential requests:

* the chooser page (``/authorize`` without a region) and ``/authorize`` to a region (the
  redirect to its Keycloak realm), p50 and p99;
* the admin API: every page of the portal listing (``limit`` 100, :mod:`gateway.admin.api`)
  and ``GET`` of one portal, p50 and p99 (target p99 ≤ 50 ms);
* the code exchange at ``/token`` and the gateway's share of a federated login (its three hops).

Then 80 Region resources are applied through the operator (``python -m realm_operator``) on the
harness's kube-apiserver and Keycloak, and timed until all are Ready (target ≤ 120 s); one drift
pass over all of them is timed as the repair of 80 registrations deleted at the gateway. The
operator uses the gateway's platform token (the benchmark's gateway has no operator token).

Everything runs on 127.0.0.1 and every loop is bounded in count and time. It prints a table
and writes ``bench/profiles/scale-last-run.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import random
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
import yaml
from keycloak import KeycloakAdmin, KeycloakOpenIDConnection
from tongxing_dev import stack
from tongxing_dev.keycloak import KeycloakEndpoint
from tongxing_dev.kube import KubeEndpoint

from bench import keycloak_side
from bench.gateway_side import REGION, Minter, Registered, federated_login, register
from bench.keycloak_side import pkce_pair
from bench.servers import BenchSetupError, Gateway, fresh_database, gateway, harness

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "bench" / "profiles" / "scale-last-run.json"
CRDS = REPO / "operator" / "crds"
PORTAL_REDIRECT = "http://127.0.0.1:9/bench-portal/callback"
ADMIN_P99_TARGET_MS = 50.0
OPERATOR_READY_TARGET_S = 120.0
# 34 province-like regions, by kind (China's 23 provinces, 4 municipalities, 5 autonomous
# regions, 2 SARs; the XPCC stands in for one of the provinces' seats: 34 in all), and 46
# departments.
PROVINCE_KINDS = (
    ["province"] * 22 + ["municipality"] * 4 + ["autonomous-region"] * 5 + ["sar"] * 2 + ["corps"]
)
DEPARTMENTS = 46


@dataclass(frozen=True)
class Setup:
    name: str
    regions: int  # the bench region (a real Keycloak realm) included
    portals: int  # the bench portal included


SMALL = Setup("small", 3, 2)
LARGE = Setup("large", len(PROVINCE_KINDS) + DEPARTMENTS, 5000)


@dataclass(frozen=True)
class Options:
    requests: int  # per latency scenario
    logins: int
    portals: int
    operator: bool
    operator_timeout: float
    drift_interval: float
    output: Path


def _ms(samples: list[float]) -> dict[str, float]:
    """p50, p99 and max of ``samples`` (seconds), in milliseconds."""
    ordered = sorted(samples)
    if not ordered:
        return {"n": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"n": len(ordered), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0)}


def _timed(
    call: Callable[[], requests.Response], expect: Callable[[requests.Response], bool]
) -> float:
    started = time.perf_counter()
    response = call()
    elapsed = time.perf_counter() - started
    if not expect(response):
        raise BenchSetupError(
            f"{response.request.method} {response.request.path_url[:80]} answered "
            f"{response.status_code}: {response.text[:200]}"
        )
    return elapsed


# --- registering at scale -------------------------------------------------------------------------


def _region_kind(index: int) -> str:
    return PROVINCE_KINDS[index] if index < len(PROVINCE_KINDS) else "department"


def populate(gw: Gateway, setup: Setup, workers: int = 8) -> dict[str, float]:
    """The setup's other regions and portals, through the admin API (PUT), ``workers`` at once.

    The other regions' issuers are never called in this benchmark (nobody signs in there): only
    the bench region is a real realm.
    """
    session = requests.Session()
    headers = {"Authorization": f"Bearer {gw.admin_token}"}

    def put(path: str, body: dict[str, Any]) -> None:
        response = session.put(
            f"{gw.issuer}/admin/v1{path}", json=body, headers=headers, timeout=30
        )
        if response.status_code not in (200, 201):
            raise BenchSetupError(f"PUT {path}: {response.status_code} {response.text[:200]}")

    def region(index: int) -> None:
        code = f"r{index:02d}"
        put(
            f"/regions/{code}",
            {
                "names": {"zh": f"地区{index}", "en": f"Region {index}"},
                "kind": _region_kind(index),
                "issuer": f"https://idp-{code}.example.cn/realms/{code}",
                "client_id": "tongxing",
                "client_secret": secrets.token_urlsafe(24),
            },
        )

    def portal(index: int) -> None:
        put(
            f"/portals/portal-{index:05d}",
            {
                "names": {"zh": f"门户{index}", "en": f"Portal {index}"},
                "owner": f"r{index % max(1, setup.regions - 1):02d}",
                "redirect_uris": [f"https://portal-{index}.example.cn/callback"],
            },
        )

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(region, range(setup.regions - 1)))
    regions_s = time.perf_counter() - started
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(portal, range(setup.portals - 1)))
    return {"regions_s": round(regions_s, 2), "portals_s": round(time.perf_counter() - started, 2)}


# --- the measured requests ------------------------------------------------------------------------


def _authorize_params(portal: Registered, region: str | None) -> dict[str, str]:
    _, challenge = pkce_pair()
    params = {
        "client_id": portal.client_id,
        "response_type": "code",
        "redirect_uri": portal.redirect_uri,
        "scope": "openid profile",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if region is not None:
        params["region"] = region
    return params


def measure(
    gw: Gateway,
    portal: Registered,
    realm: keycloak_side.BenchRealm,
    setup: Setup,
    options: Options,
) -> dict[str, Any]:
    """Every latency of one setup; sequential requests on one keep-alive connection."""
    http = requests.Session()
    admin = {"Authorization": f"Bearer {gw.admin_token}"}
    n = options.requests
    out: dict[str, Any] = {}

    def authorize(region: str | None) -> requests.Response:
        return http.get(
            f"{gw.issuer}/authorize",
            params=_authorize_params(portal, region),
            allow_redirects=False,
            timeout=30,
        )

    # Warm each path once (region metadata and keys are fetched on first use).
    authorize(None)
    authorize(REGION)
    chooser = [
        _timed(lambda: authorize(None), lambda r: r.status_code == 200 and "<form" in r.text)
        for _ in range(n)
    ]
    out["chooser"] = _ms(chooser)
    to_region = [
        _timed(
            lambda: authorize(REGION),
            lambda r: (
                r.status_code in (302, 303)
                and r.headers.get("Location", "").startswith(realm.issuer)
            ),
        )
        for _ in range(n)
    ]
    out["authorize"] = _ms(to_region)

    pages: list[float] = []
    listed = 0
    url: str | None = f"{gw.issuer}/admin/v1/portals"
    started = time.perf_counter()
    while url is not None and len(pages) < 1000:
        response = http.get(url, headers=admin, timeout=30)
        pages.append(response.elapsed.total_seconds())
        if response.status_code != 200:
            raise BenchSetupError(f"admin list: {response.status_code} {response.text[:200]}")
        listed += len(response.json())
        following = response.links.get("next", {}).get("url")
        url = None if following is None else requests.compat.urljoin(response.url, following)
    out["admin_list_page"] = {
        **_ms(pages),
        "portals": listed,
        "pages": len(pages),
        "all_pages_s": round(time.perf_counter() - started, 3),
    }
    keys = [f"portal-{i:05d}" for i in range(setup.portals - 1)] or [portal.client_id]
    picks = random.Random(15).choices(keys, k=n)  # noqa: S311 - which portal, not a secret
    gets = [
        _timed(
            functools.partial(
                http.get, f"{gw.issuer}/admin/v1/portals/{key}", headers=admin, timeout=30
            ),
            lambda r: r.status_code == 200,
        )
        for key in picks
    ]
    out["admin_get"] = _ms(gets)

    minter = Minter(gw, portal)
    try:
        codes = minter.codes(n)
    finally:
        minter.close()
    exchanges = [
        _timed(
            functools.partial(
                http.post,
                f"{gw.issuer}/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": portal.redirect_uri,
                    "code_verifier": verifier,
                },
                auth=portal.credentials,
                timeout=30,
            ),
            lambda r: r.status_code == 200 and "id_token" in r.json(),
        )
        for code, verifier in codes
    ]
    out["code_exchange"] = _ms(exchanges)
    logins = [federated_login(gw, portal, realm).gateway for _ in range(options.logins)]
    out["login_gateway_share"] = _ms(logins)
    return out


def one_setup(h: Any, setup: Setup, options: Options) -> dict[str, Any]:
    keycloak: KeycloakEndpoint = h.keycloaks[0].endpoint
    with (
        fresh_database(h.postgres) as database_url,
        gateway(database_url, h.workdir / setup.name, threads=8, workers=1) as gw,
    ):
        realm = keycloak_side.create_realm(
            keycloak,
            gateway_callback=f"{gw.issuer}/callback/{REGION}",
            redirect_uri=PORTAL_REDIRECT,
        )
        try:
            portal = register(gw, realm)
            print(f"[{setup.name}] registering {setup.regions} regions, {setup.portals} portals")
            registered = populate(gw, setup)
            print(f"[{setup.name}] measuring ...", flush=True)
            measured = measure(gw, portal, realm, setup, options)
            measured["registration"] = registered
            return measured
        finally:
            realm.delete()


# --- the operator ---------------------------------------------------------------------------------


def _kubectl(kube: KubeEndpoint, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(  # noqa: S603 - kubectl of the harness
        ["kubectl", f"--kubeconfig={kube.kubeconfig}", *args],  # noqa: S607
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise BenchSetupError(f"kubectl {' '.join(args[:3])}: {done.stderr[-400:]}")
    return done.stdout


def _ready_count(kube: KubeEndpoint, namespace: str) -> tuple[int, list[dict[str, Any]]]:
    items: list[dict[str, Any]] = json.loads(
        _kubectl(kube, "get", "regions", "-n", namespace, "-o", "json")
    )["items"]
    ready = 0
    for item in items:
        conditions = (item.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            ready += 1
    return ready, items


@contextlib.contextmanager
def _operator(
    kube: KubeEndpoint,
    namespace: str,
    gw: Gateway,
    keycloak: KeycloakEndpoint,
    log: Path,
    drift_interval: float,
) -> Iterator[subprocess.Popen[bytes]]:
    grant = {
        "url": keycloak.url,
        "public_url": None,
        "admin_realm": "master",
        "credentials_secret": {"namespace": namespace, "name": "keycloak-admin"},
        "namespaces": ["*"],
    }
    env = {
        **os.environ,
        "KUBECONFIG": kube.kubeconfig,
        "PYTHONUNBUFFERED": "1",
        "TONGXING_OPERATOR_GATEWAY_URL": gw.issuer,
        "TONGXING_OPERATOR_ADMIN_TOKEN": gw.admin_token,
        "TONGXING_OPERATOR_KEYCLOAKS": json.dumps([grant]),
        "TONGXING_OPERATOR_TIMEOUT": "10",
        "TONGXING_OPERATOR_RETRY_DELAY": "2",
        "TONGXING_OPERATOR_DRIFT_INTERVAL": str(drift_interval),
    }
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 - our own operator
            [sys.executable, "-m", "realm_operator", f"--namespace={namespace}", "--standalone"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=REPO,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def operator_run(h: Any, options: Options) -> dict[str, Any]:
    """80 Regions through the operator to all Ready, then one drift pass over all of them."""
    kube: KubeEndpoint | None = stack.running("kube")
    if kube is None:
        return {"skipped": "no kube-apiserver running (tongxing-dev up)"}
    keycloak: KeycloakEndpoint = h.keycloaks[0].endpoint
    namespace = f"tx-scale-{uuid.uuid4().hex[:6]}"
    prefix = f"s{uuid.uuid4().hex[:4]}"
    codes = [f"{prefix}-{i:02d}" for i in range(LARGE.regions)]
    result: dict[str, Any] = {"regions": len(codes), "drift_interval_s": options.drift_interval}
    _kubectl(kube, "apply", "-f", str(CRDS))
    _kubectl(
        kube, "wait", "--for=condition=Established", "crd/regions.tongxing.io", "--timeout=30s"
    )
    _kubectl(kube, "create", "namespace", namespace)
    try:
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "keycloak-admin", "namespace": namespace},
            "stringData": {"username": keycloak.admin_user, "password": keycloak.admin_password},
        }
        _kubectl(kube, "apply", "-f", "-", stdin=json.dumps(secret))
        documents = [
            {
                "apiVersion": "tongxing.io/v1alpha1",
                "kind": "Region",
                "metadata": {"name": code, "namespace": namespace},
                "spec": {
                    "code": code,
                    "names": {"zh": f"地区{i}", "en": f"Region {i}"},
                    "kind": _region_kind(i),
                    "keycloak": {"url": keycloak.url},
                },
            }
            for i, code in enumerate(codes)
        ]
        with (
            fresh_database(h.postgres) as database_url,
            gateway(database_url, h.workdir / "operator", threads=8, workers=1) as gw,
            _operator(
                kube, namespace, gw, keycloak, h.workdir / "operator.log", options.drift_interval
            ) as process,
        ):
            started = time.monotonic()
            _kubectl(
                kube, "apply", "-f", "-", stdin=yaml.safe_dump_all(documents, allow_unicode=True)
            )
            ready = 0
            deadline = started + options.operator_timeout
            while time.monotonic() < deadline and process.poll() is None:
                ready, _ = _ready_count(kube, namespace)
                if ready == len(codes):
                    break
                time.sleep(1)
            result["ready"] = ready
            result["all_ready_s"] = (
                round(time.monotonic() - started, 1) if ready == len(codes) else None
            )
            if ready == len(codes):
                result["drift_pass_s"] = _drift_pass(gw, codes, options)
            result["operator_log_tail"] = (h.workdir / "operator.log").read_text(errors="replace")[
                -800:
            ]
            # Delete through the operator, so its finalizer removes each realm.
            with contextlib.suppress(BenchSetupError):
                _kubectl(
                    kube,
                    "delete",
                    "regions",
                    "--all",
                    "-n",
                    namespace,
                    "--wait=true",
                    "--timeout=240s",
                )
    finally:
        _clean(kube, keycloak, namespace, codes)
    return result


def _drift_pass(gw: Gateway, codes: list[str], options: Options) -> float | None:
    """Delete every operator region's registration at the gateway (the platform's break-glass)
    and time until the operator's drift timer has registered all of them again."""
    http = requests.Session()
    admin = {"Authorization": f"Bearer {gw.admin_token}"}
    for code in codes:
        http.delete(f"{gw.issuer}/admin/v1/regions/{code}", headers=admin, timeout=30)
    started = time.monotonic()
    deadline = started + options.drift_interval + options.operator_timeout
    wanted = set(codes)
    while time.monotonic() < deadline:
        listed = http.get(f"{gw.issuer}/admin/v1/regions?limit=1000", headers=admin, timeout=30)
        if wanted <= {r["code"] for r in listed.json()}:
            return round(time.monotonic() - started, 1)
        time.sleep(0.5)
    return None


def _clean(
    kube: KubeEndpoint, keycloak: KeycloakEndpoint, namespace: str, codes: list[str]
) -> None:
    """Whatever the operator left: finalizers, the namespace, and realms of our codes."""
    with contextlib.suppress(BenchSetupError):
        for name in _kubectl(kube, "get", "regions", "-n", namespace, "-o", "name").split():
            _kubectl(
                kube,
                "patch",
                name,
                "-n",
                namespace,
                "--type=merge",
                "-p",
                '{"metadata":{"finalizers":null}}',
            )
    with contextlib.suppress(BenchSetupError):
        _kubectl(kube, "delete", "regions,secrets,events", "--all", "-n", namespace, "--wait=false")
    with contextlib.suppress(BenchSetupError):
        _kubectl(kube, "delete", "namespace", namespace, "--wait=false")
    with contextlib.suppress(BenchSetupError, ValueError):
        found = json.loads(_kubectl(kube, "get", "namespace", namespace, "-o", "json"))
        found["spec"]["finalizers"] = []
        _kubectl(
            kube,
            "replace",
            "--raw",
            f"/api/v1/namespaces/{namespace}/finalize",
            "-f",
            "-",
            stdin=json.dumps(found),
        )
    admin = KeycloakAdmin(
        connection=KeycloakOpenIDConnection(
            server_url=keycloak.url,
            username=keycloak.admin_user,
            password=keycloak.admin_password,
            realm_name="master",
            user_realm_name="master",
            timeout=60,
        )
    )
    existing = {r["realm"] for r in admin.get_realms()}
    for code in codes:
        if code in existing:
            with contextlib.suppress(Exception):
                admin.delete_realm(code)


# --- the report -----------------------------------------------------------------------------------


def table(results: dict[str, Any]) -> str:
    small, large = results["small"], results["large"]
    lines = [
        f"{'scenario':<24}{'3 regions/2 portals':>24}"
        f"{'80 regions/5000 portals':>28}{'ratio p50':>11}",
    ]
    for name in (
        "chooser",
        "authorize",
        "admin_list_page",
        "admin_get",
        "code_exchange",
        "login_gateway_share",
    ):
        a, b = small[name], large[name]
        ratio = b["p50_ms"] / a["p50_ms"] if a["p50_ms"] else 0.0
        lines.append(
            f"{name:<24}{a['p50_ms']:>10.2f} / {a['p99_ms']:>7.2f} ms"
            f"{b['p50_ms']:>14.2f} / {b['p99_ms']:>7.2f} ms{ratio:>10.2f}x"
        )
    lines.append("(p50 / p99; sequential requests on one keep-alive connection)")
    page = large["admin_list_page"]
    lines.append(
        f"admin list: {page['portals']} portals in {page['pages']} pages, {page['all_pages_s']} s; "
        f"admin p99 target <= {ADMIN_P99_TARGET_MS:.0f} ms: list "
        f"{'met' if page['p99_ms'] <= ADMIN_P99_TARGET_MS else 'MISSED'}, get "
        f"{'met' if large['admin_get']['p99_ms'] <= ADMIN_P99_TARGET_MS else 'MISSED'}"
    )
    op = results.get("operator", {})
    if "skipped" in op:
        lines.append(f"operator: skipped ({op['skipped']})")
    elif op:
        ready = op.get("all_ready_s")
        if ready is None:
            ready = f">{results['options']['operator_timeout']}"
        lines.append(
            f"operator: {op['ready']}/{op['regions']} Regions Ready in "
            f"{ready} s "
            f"(target <= {OPERATOR_READY_TARGET_S:.0f} s); one drift pass (80 registrations "
            f"repaired, timer every {op['drift_interval_s']} s): {op.get('drift_pass_s')} s"
        )
    return "\n".join(lines)


def parse(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--requests", type=int, default=200, help="requests per latency scenario")
    parser.add_argument("--logins", type=int, default=5, help="federated logins per setup")
    parser.add_argument("--portals", type=int, default=LARGE.portals, help="portals, large setup")
    parser.add_argument("--no-operator", action="store_true", help="skip the operator part")
    parser.add_argument("--operator-timeout", type=float, default=300, help="s to wait for Ready")
    parser.add_argument("--drift-interval", type=float, default=20, help="operator drift timer s")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    if not (1 <= args.requests <= 5000 and 0 <= args.logins <= 100 and 2 <= args.portals <= 20000):
        parser.error("--requests 1..5000, --logins 0..100, --portals 2..20000")
    return Options(
        requests=args.requests,
        logins=args.logins,
        portals=args.portals,
        operator=not args.no_operator,
        operator_timeout=min(args.operator_timeout, 900),
        drift_interval=args.drift_interval,
        output=args.output,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse(argv)
    large = Setup(LARGE.name, LARGE.regions, options.portals)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "command": "python -m bench.scale " + " ".join(sys.argv[1:] if argv is None else argv),
        "options": {
            "requests": options.requests,
            "logins": options.logins,
            "portals": options.portals,
            "operator_timeout": options.operator_timeout,
        },
    }
    started = time.monotonic()
    with harness(own_keycloak=False, modes=("dev",)) as h:
        results["small"] = one_setup(h, SMALL, options)
        results["large"] = one_setup(h, large, options)
        if options.operator:
            print("[operator] applying 80 Regions ...", flush=True)
            results["operator"] = operator_run(h, options)
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    print(table(results))
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"written to {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
