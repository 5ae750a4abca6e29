"""The operator under test, as the process a cluster would run, and what it needs around it.

The operator runs as ``python -m realm_operator`` (what ``tongxing operator`` starts) against the
harness's kube-apiserver, a real Keycloak and a real gateway on loopback. Each test module gets
its own namespace; everything the operator made there is deleted through the operator itself
(so its finalizer runs), and only what is left after that is removed by force.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from gateway_fixtures import PERSON_ID, Portal, PortalSite
from keycloak import KeycloakAdmin, KeycloakOpenIDConnection
from playwright.sync_api import Browser
from playwright.sync_api import Error as PlaywrightError
from tongxing_dev.keycloak import KeycloakEndpoint
from tongxing_dev.kube import KubeEndpoint
from tongxing_dev.process import LOOPBACK, free_port, tail

REPO = Path(__file__).resolve().parent.parent
CRDS = REPO / "operator" / "crds"
EXAMPLES = REPO / "operator" / "examples"
GROUP = "tongxing.io"
PHONE = "+8613800138000"


def kubectl(
    kube: KubeEndpoint, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["kubectl", f"--kubeconfig={kube.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check:
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done


def install_crds(kube: KubeEndpoint) -> None:
    kubectl(kube, "apply", "-f", str(CRDS))
    for name in ("regions", "portals", "kopfpeerings"):
        group = "kopf.dev" if name.startswith("kopf") else GROUP
        kubectl(kube, "wait", "--for=condition=Established", f"crd/{name}.{group}", "--timeout=30s")


def keycloak_admin(keycloak: KeycloakEndpoint, realm: str = "master") -> KeycloakAdmin:
    return KeycloakAdmin(
        connection=KeycloakOpenIDConnection(
            server_url=keycloak.url,
            username=keycloak.admin_user,
            password=keycloak.admin_password,
            realm_name=realm,
            user_realm_name="master",
            timeout=10,
        )
    )


def realm_names(keycloak: KeycloakEndpoint) -> set[str]:
    return {r["realm"] for r in keycloak_admin(keycloak).get_realms()}


def wait_until(
    check: Callable[[], Any],
    timeout: float = 60,
    what: str = "",
    operators: tuple[OperatorProcess, ...] = (),
) -> Any:
    """Poll ``check`` until it returns something truthy (the operators' logs if it does not)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            logs = "\n".join(operator_logs(*operators))
            raise AssertionError(f"timed out after {timeout} s waiting for {what or check}\n{logs}")
        time.sleep(0.25)


@dataclass
class OperatorProcess:
    """``python -m realm_operator`` with its log in a file."""

    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def logged(self, text: str) -> bool:
        return text in self.output()

    def tail(self, lines: int = 60) -> str:
        return tail(self.log, lines)

    def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye to the peers, as when a node dies."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def keycloak_grant(
    url: str,
    secret_namespace: str,
    *,
    public_url: str | None = None,
    secret_name: str = "keycloak-admin",  # noqa: S107 - a Secret's name
    namespaces: tuple[str, ...] = ("*",),
) -> dict[str, Any]:
    """One Keycloak the platform grants the operator (``TONGXING_OPERATOR_KEYCLOAKS``)."""
    return {
        "url": url,
        "public_url": public_url,
        "admin_realm": "master",
        "credentials_secret": {"namespace": secret_namespace, "name": secret_name},
        "namespaces": list(namespaces),
    }


def start_operator(
    kube: KubeEndpoint,
    namespace: str,
    log: Path,
    *,
    gateway_url: str,
    admin_token: str,
    keycloaks: list[dict[str, Any]],
    gateway_issuer: str | None = None,
    kubeconfig: Path | None = None,
    peering: str | None = None,
    priority: int | None = None,
    drift_interval: float = 4,
    level_ceiling: str | None = None,
    region_level_ceilings: dict[str, str] | None = None,
    also_watch: tuple[str, ...] = (),
) -> OperatorProcess:
    """The operator with the platform's settings: the Keycloaks it may use (``keycloaks``, see
    :func:`keycloak_grant`), its own admin API credential and the level ceilings."""
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig or kube.kubeconfig),
        "PYTHONUNBUFFERED": "1",
        "TONGXING_OPERATOR_GATEWAY_URL": gateway_url,
        "TONGXING_OPERATOR_ADMIN_TOKEN": admin_token,
        "TONGXING_OPERATOR_KEYCLOAKS": json.dumps(keycloaks),
        "TONGXING_OPERATOR_TIMEOUT": "3",
        "TONGXING_OPERATOR_RETRY_DELAY": "1",
        "TONGXING_OPERATOR_CREDENTIALS_RETRY_DELAY": "3",
        "TONGXING_OPERATOR_DRIFT_INTERVAL": str(drift_interval),
    }
    if level_ceiling is not None:
        env["TONGXING_OPERATOR_LEVEL_CEILING"] = level_ceiling
    if region_level_ceilings is not None:
        env["TONGXING_OPERATOR_REGION_LEVEL_CEILINGS"] = json.dumps(region_level_ceilings)
    if gateway_issuer is not None:
        env["TONGXING_OPERATOR_GATEWAY_ISSUER"] = gateway_issuer
    argv = [sys.executable, "-m", "realm_operator", f"--namespace={namespace}"]
    argv += [f"--namespace={name}" for name in also_watch]
    argv += [f"--peering={peering}"] if peering else ["--standalone"]
    if priority is not None:
        argv.append(f"--priority={priority}")
    out = log.open("ab")
    try:
        process = subprocess.Popen(
            argv,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: kill() reaches every thread
            cwd=REPO,
        )
    finally:
        out.close()
    return OperatorProcess(process, log)


@dataclass
class Namespace:
    """A namespace of the test cluster; it also holds the Keycloak admin Secret the platform
    grants the operator (:meth:`grant`), as a platform namespace would."""

    kube: KubeEndpoint
    name: str
    keycloak: KeycloakEndpoint
    codes: list[str] = field(default_factory=list)
    bindings: list[str] = field(default_factory=list)

    def code(self, prefix: str) -> str:
        """A region code no other test (or earlier run) uses: each names a Keycloak realm."""
        code = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.codes.append(code)
        return code

    def apply(self, *documents: dict[str, Any]) -> None:
        for document in documents:
            document.setdefault("metadata", {})["namespace"] = self.name
        text = yaml.safe_dump_all(documents, allow_unicode=True)
        kubectl(self.kube, "apply", "-f", "-", stdin=text)

    def try_apply(self, document: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        document.setdefault("metadata", {})["namespace"] = self.name
        text = yaml.safe_dump(document, allow_unicode=True)
        return kubectl(self.kube, "apply", "-f", "-", stdin=text, check=False)

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        done = kubectl(self.kube, "get", kind, name, "-n", self.name, "-o", "json", check=False)
        if done.returncode != 0:
            assert "NotFound" in done.stderr, done.stderr
            return None
        found: dict[str, Any] = json.loads(done.stdout)
        return found

    def wait(self, condition: str, *objects: str, timeout: int = 60) -> None:
        kubectl(
            self.kube,
            "wait",
            f"--for={condition}",
            *objects,
            "-n",
            self.name,
            f"--timeout={timeout}s",
        )

    def condition(self, kind: str, name: str, type_: str) -> dict[str, Any] | None:
        found = self.get(kind, name) or {}
        for item in found.get("status", {}).get("conditions", []):
            if item["type"] == type_:
                return dict(item)
        return None

    def events(self, name: str) -> list[dict[str, Any]]:
        done = kubectl(
            self.kube,
            "get",
            "events",
            "-n",
            self.name,
            f"--field-selector=involvedObject.name={name}",
            "-o",
            "json",
        )
        items: list[dict[str, Any]] = json.loads(done.stdout)["items"]
        return items

    def admin_secret(self, name: str = "keycloak-admin") -> None:
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name},
                "stringData": {
                    "username": self.keycloak.admin_user,
                    "password": self.keycloak.admin_password,
                },
            }
        )

    def grant(self, url: str | None = None) -> dict[str, Any]:
        """The platform's grant of the shared Keycloak (reached at ``url``, e.g. a proxy)."""
        return keycloak_grant(
            url or self.keycloak.url,
            self.name,
            public_url=self.keycloak.url if url is not None else None,
        )

    def region(
        self, name: str, code: str, keycloak_url: str | None = None, **spec: Any
    ) -> dict[str, Any]:
        """A Region manifest for ``code`` in the shared Keycloak (reached at ``keycloak_url``)."""
        keycloak = {"url": keycloak_url or self.keycloak.url}
        return {
            "apiVersion": f"{GROUP}/v1alpha1",
            "kind": "Region",
            "metadata": {"name": name, "namespace": self.name},
            "spec": {
                "code": code,
                "names": {"zh": "浙江省", "en": "Zhejiang"},
                "kind": "province",
                "keycloak": keycloak,
                **spec,
            },
        }

    def clean_up(self) -> None:
        """Delete every Region and Portal (the operator, if running, cleans behind them)."""
        kubectl(
            self.kube,
            "delete",
            "regions,portals",
            "--all",
            "-n",
            self.name,
            "--wait=true",
            "--timeout=60s",
            check=False,
        )

    def force_clean_up(self) -> None:
        """Drop finalizers of whatever the operator could not clean, then the namespace."""
        for kind in ("regions", "portals"):
            done = kubectl(self.kube, "get", kind, "-n", self.name, "-o", "name", check=False)
            for name in done.stdout.split():
                kubectl(
                    self.kube,
                    "patch",
                    name,
                    "-n",
                    self.name,
                    "--type=merge",
                    "-p",
                    '{"metadata":{"finalizers":null}}',
                    check=False,
                )
        for binding in self.bindings:
            kubectl(self.kube, "delete", "clusterrolebinding", binding, check=False)
        remove_namespace(self.kube, self.name)
        admin = keycloak_admin(self.keycloak)
        existing = {r["realm"] for r in admin.get_realms()}
        for code in self.codes:
            if code in existing:
                admin.delete_realm(code)


def service_account_kubeconfig(
    namespace: Namespace,
    path: Path,
    platform_namespace: str | None = None,
    also_watched: tuple[str, ...] = (),
) -> Path:
    """A kubeconfig for the ServiceAccount of ``operator/rbac.yaml``, made in ``namespace``.

    The operator run with it has exactly the permissions the manifest grants, no more: the
    Portal-Secret Role in each watched namespace (``namespace`` and ``also_watched``) and the
    Role that reads the granted Keycloak credentials in ``platform_namespace`` (default
    ``namespace``).
    """
    source = list(yaml.safe_load_all((REPO / "operator" / "rbac.yaml").read_text()))
    binding = f"tongxing-operator-{namespace.name}"
    documents: list[dict[str, Any]] = []
    for document in source:
        kind = document["kind"]
        for subject in document.get("subjects", []):
            subject["namespace"] = namespace.name
        if kind == "ServiceAccount":
            document["metadata"]["namespace"] = namespace.name
        elif kind == "ClusterRoleBinding":
            document["metadata"]["name"] = binding
        elif kind in ("Role", "RoleBinding") and "credentials" in document["metadata"]["name"]:
            document["metadata"]["namespace"] = platform_namespace or namespace.name
        elif kind in ("Role", "RoleBinding"):
            for watched in (namespace.name, *also_watched):
                copy = json.loads(json.dumps(document))
                copy["metadata"]["namespace"] = watched
                documents.append(copy)
            continue
        documents.append(document)
    kubectl(namespace.kube, "apply", "-f", "-", stdin=yaml.safe_dump_all(documents))
    namespace.bindings.append(binding)
    token = kubectl(
        namespace.kube,
        "create",
        "token",
        "tongxing-operator",
        "-n",
        namespace.name,
        "--duration=2h",
    ).stdout.strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "test",
                "cluster": {
                    "server": namespace.kube.server,
                    "certificate-authority": namespace.kube.ca_file,
                },
            }
        ],
        "users": [{"name": "tongxing-operator", "user": {"token": token}}],
        "contexts": [
            {
                "name": "operator",
                "context": {
                    "cluster": "test",
                    "user": "tongxing-operator",
                    "namespace": namespace.name,
                },
            }
        ],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def remove_namespace(kube: KubeEndpoint, name: str) -> None:
    """Delete what is left in the namespace, then the namespace.

    The harness runs no kube-controller-manager, so nothing empties a deleted namespace or
    removes its ``kubernetes`` finalizer: the test does both, as the namespace controller would.
    """
    kinds = "regions,portals,secrets,serviceaccounts,configmaps,events,kopfpeerings"
    kubectl(kube, "delete", kinds, "--all", "-n", name, "--wait=false", check=False)
    kubectl(kube, "delete", "namespace", name, "--wait=false", check=False)
    found = kubectl(kube, "get", "namespace", name, "-o", "json", check=False)
    if found.returncode != 0:
        return
    namespace = json.loads(found.stdout)
    namespace["spec"]["finalizers"] = []
    kubectl(
        kube,
        "replace",
        "--raw",
        f"/api/v1/namespaces/{name}/finalize",
        "-f",
        "-",
        stdin=json.dumps(namespace),
        check=False,
    )


def create_namespace(kube: KubeEndpoint, keycloak: KeycloakEndpoint, prefix: str) -> Namespace:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    kubectl(kube, "create", "namespace", name)
    namespace = Namespace(kube, name, keycloak)
    namespace.admin_secret()
    return namespace


class TcpProxy:
    """A TCP relay on a fixed loopback port that can be taken down and brought back.

    It stands between the operator and Keycloak, so a test can make Keycloak unreachable for
    the operator (connection refused, as when it is stopped) without stopping the Keycloak
    other tests share.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, self.port))
        listener.listen(32)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for conn in (source, sink):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            source.close()  # each socket is the source of one pump: closed once


def strong_password() -> str:
    """A password the realm templates' policy accepts (length, cases, digits)."""
    return "Zs-9a" + secrets.token_urlsafe(12)


def operator_logs(*operators: OperatorProcess) -> Iterator[str]:
    for operator in operators:
        yield f"--- {operator.log.name} ---\n{operator.tail()}"


def run_operator(args: list[str], env: dict[str, str], log: Path) -> OperatorProcess:
    """``tongxing ARGS`` (the image's entry point) with ``env`` over ours, output in ``log``.

    For a test that runs the operator exactly as a manifest says: its arguments, and the
    environment its ConfigMap and Secrets give it.
    """
    out = log.open("ab")
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", *args],
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: kill() reaches every thread
            cwd=REPO,
        )
    finally:
        out.close()
    return OperatorProcess(process, log)


def token_kubeconfig(
    kube: KubeEndpoint, namespace: str, service_account: str, path: Path, context_namespace: str
) -> Path:
    """A kubeconfig that authenticates as ``namespace/service_account`` with a minted token.

    The token comes from the TokenRequest API (``kubectl create token``), as a pod's would; the
    ServiceAccount and its RBAC must exist already.
    """
    token = kubectl(
        kube, "create", "token", service_account, "-n", namespace, "--duration=2h"
    ).stdout.strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "test",
                "cluster": {"server": kube.server, "certificate-authority": kube.ca_file},
            }
        ],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [
            {
                "name": "sa",
                "context": {
                    "cluster": "test",
                    "user": service_account,
                    "namespace": context_namespace,
                },
            }
        ],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def add_citizen(keycloak: KeycloakEndpoint, realm: str) -> str:
    """张三, with his identity number and phone, in the realm; returns his password."""
    password = strong_password()
    keycloak_admin(keycloak, realm).create_user(
        {
            "username": "zhangsan",
            "firstName": "三",
            "lastName": "张",
            "enabled": True,
            "attributes": {"id_number": [PERSON_ID], "phone_number": [PHONE]},
            "credentials": [{"type": "password", "value": password, "temporary": False}],
        }
    )
    return password


def sign_in(
    browser: Browser, portal: Portal, site: PortalSite, code: str, password: str
) -> dict[str, Any]:
    """A sign-in at ``portal``: the gateway's chooser, the region's Keycloak, back with a code.

    Returns openid-client's result, and the chooser's text as ``chooser``.
    """
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    try:
        started = portal.start("openid profile phone")
        page.goto(started["url"])
        chooser = page.locator("body").inner_text()
        page.check(f"input[value={code}]")
        page.click("button[type=submit]")
        page.fill("#username", "zhangsan")
        page.fill("#password", password)
        page.click("#kc-login")
        try:
            page.wait_for_url(f"{portal.redirect_uri}**", timeout=15000)
        except PlaywrightError as exc:
            text = page.locator("body").inner_text()
            raise AssertionError(f"sign-in stopped at {page.url}:\n{text}") from exc
        tokens: dict[str, Any] = portal.finish(site.last_visit(portal.redirect_uri), started)
    finally:
        context.close()
    return {**tokens, "chooser": chooser}
