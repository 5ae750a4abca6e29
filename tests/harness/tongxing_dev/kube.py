"""etcd + kube-apiserver, envtest style: a control plane with no nodes, on loopback.

Both servers are built with ``go build`` from their published Go modules through the wrapper
modules beside this package (``../kube`` and ``../etcd``), once per version and input digest.
The API server gets generated serving certificates, a service-account signing key and a static
token for an admin in ``system:masters``, and writes a kubeconfig that ``kubectl``, the Python
client and kopf all use.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import os
import re
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tongxing_dev.cache import cache_dir, file_digest
from tongxing_dev.errors import ComponentError
from tongxing_dev.process import LOOPBACK, Server, free_port, run

HARNESS = Path(__file__).resolve().parent.parent
ADMIN_USER = "tongxing-admin"
SERVICE_RANGE = "10.0.0.0/24"  # only configuration: no node, no proxy, no traffic there
# Audit every request that touches a Secret (metadata only: never a Secret's data), nothing else.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    resources:
      - group: ""
        resources: [secrets]
  - level: None
"""


def _module_version(module_dir: Path, module: str) -> str:
    pattern = rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)"
    match = re.search(pattern, (module_dir / "go.mod").read_text(), re.M)
    if match is None:
        raise ComponentError(module_dir.name, f"{module_dir}/go.mod does not require {module}")
    return match.group(1)


KUBERNETES_VERSION = _module_version(HARNESS / "kube", "k8s.io/kubernetes")
ETCD_VERSION = _module_version(HARNESS / "etcd", "go.etcd.io/etcd/server/v3")


@dataclass(frozen=True)
class KubeEndpoint:
    """A running control plane and the files a client needs to reach it."""

    server: str
    kubeconfig: str
    token: str = field(repr=False)  # never in a test report or log
    ca_file: str
    etcd_url: str
    version: str
    # JSON lines, one per request that touched a Secret (who, verb, namespace, name): tests read
    # it to show what a component did NOT read. Empty for an endpoint recorded before it existed.
    audit_log: str = ""


def _build(component: str, module_dir: Path, version: str, ldflags: str = "") -> Path:
    """``go build`` the wrapper module once per version and input digest."""
    digest = file_digest(module_dir / "go.mod", module_dir / "go.sum", module_dir / "main.go")
    binary = cache_dir() / "bin" / f"{component}-{version}-{digest}"
    if binary.exists():
        return binary
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if go is None:
        raise ComponentError(component, "the Go toolchain (`go`) is not installed")
    partial = binary.with_name(binary.name + ".part")
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"}
    run(
        component,
        [go, "build", "-trimpath", f"-ldflags=-s -w {ldflags}".strip(), "-o", str(partial), "."],
        cwd=module_dir,
        env=env,
        log=cache_dir() / "logs" / f"build-{component}-{version}.log",
    )
    partial.rename(binary)
    return binary


def obtain() -> tuple[Path, Path]:
    """Build (or find in the cache) the etcd and kube-apiserver binaries."""
    etcd = _build("etcd", HARNESS / "etcd", ETCD_VERSION)
    minor = KUBERNETES_VERSION.lstrip("v").split(".")[1]
    stamp = "k8s.io/component-base/version"
    apiserver = _build(
        "kube-apiserver",
        HARNESS / "kube",
        KUBERNETES_VERSION,
        (
            f"-X {stamp}.gitVersion={KUBERNETES_VERSION} -X {stamp}.gitMajor=1 "
            f"-X {stamp}.gitMinor={minor} -X {stamp}.gitTreeState=clean"
        ),
    )
    return etcd, apiserver


def _write_pem(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    path.chmod(0o600)
    return str(path)


def _certificates(certs: Path) -> dict[str, str]:
    """A throwaway CA, a serving certificate for loopback and a service-account key pair."""
    certs.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tongxing-test-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.DNSName("kubernetes.default.svc"),
        x509.IPAddress(ipaddress.ip_address(LOOPBACK)),
        x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
    ]
    serving = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    service_account = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pkcs8 = serialization.PrivateFormat.PKCS8
    pem = serialization.Encoding.PEM
    none = serialization.NoEncryption()
    return {
        "ca": _write_pem(certs / "ca.crt", ca.public_bytes(pem)),
        "cert": _write_pem(certs / "apiserver.crt", serving.public_bytes(pem)),
        "key": _write_pem(certs / "apiserver.key", key.private_bytes(pem, pkcs8, none)),
        "sa_key": _write_pem(certs / "sa.key", service_account.private_bytes(pem, pkcs8, none)),
        "sa_pub": _write_pem(
            certs / "sa.pub",
            service_account.public_key().public_bytes(
                pem, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        ),
    }


def start(workdir: Path) -> tuple[list[Server], KubeEndpoint]:
    """Start etcd, then kube-apiserver against it; return both and the endpoint."""
    etcd_bin, _ = obtain()
    workdir.mkdir(parents=True, exist_ok=True)
    client_port, peer_port = free_port(), free_port()
    etcd_url = f"http://{LOOPBACK}:{client_port}"
    peer_url = f"http://{LOOPBACK}:{peer_port}"
    etcd = Server(
        "etcd",
        [
            str(etcd_bin),
            "--name=tongxing",
            f"--data-dir={workdir / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=tongxing={peer_url}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
        log=workdir / "etcd.log",
    )
    etcd.wait_until(lambda: _etcd_healthy(etcd_url), timeout=60, what="healthy (/health)")
    try:
        apiserver, endpoint = start_apiserver(workdir, etcd_url)
    except ComponentError:
        etcd.stop()
        raise
    return [apiserver, etcd], endpoint


def start_apiserver(
    workdir: Path,
    etcd_url: str,
    *,
    etcd_prefix: str | None = None,
    extra_flags: Sequence[str] = (),
) -> tuple[Server, KubeEndpoint]:
    """Start a kube-apiserver on ``etcd_url``, with certificates, tokens and an audit log of
    its own below ``workdir``; return it once ready, and its endpoint.

    :func:`start` uses it for the shared API server (the default ``etcd_prefix``, no extra
    flags). A test that needs an API server configured differently (``--authentication-config``,
    a feature gate) starts one more with :func:`start_extra_apiserver` instead of changing the
    shared one: ``etcd_prefix`` keeps its objects apart in the same etcd.
    """
    _, apiserver_bin = obtain()
    workdir.mkdir(parents=True, exist_ok=True)
    certs = _certificates(workdir / "certs")
    token = secrets.token_urlsafe(32)
    tokens = workdir / "tokens.csv"
    tokens.write_text(f'{token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
    tokens.chmod(0o600)
    audit_policy = workdir / "audit-policy.yaml"
    audit_policy.write_text(AUDIT_POLICY)
    audit_log = workdir / "audit.log"
    port = free_port()
    server_url = f"https://{LOOPBACK}:{port}"
    prefix = [f"--etcd-prefix={etcd_prefix}"] if etcd_prefix is not None else []
    apiserver = Server(
        "kube-apiserver",
        [
            str(apiserver_bin),
            f"--etcd-servers={etcd_url}",
            *prefix,
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            f"--secure-port={port}",
            f"--tls-cert-file={certs['cert']}",
            f"--tls-private-key-file={certs['key']}",
            f"--client-ca-file={certs['ca']}",
            f"--token-auth-file={tokens}",
            f"--service-account-key-file={certs['sa_pub']}",
            f"--service-account-signing-key-file={certs['sa_key']}",
            f"--service-account-issuer={server_url}",
            "--authorization-mode=RBAC",
            f"--service-cluster-ip-range={SERVICE_RANGE}",
            "--allow-privileged=true",
            f"--cert-dir={workdir / 'certs'}",
            "--profiling=false",
            f"--audit-policy-file={audit_policy}",
            f"--audit-log-path={audit_log}",
            "--audit-log-format=json",
            "--audit-log-mode=blocking",
            "--audit-log-maxsize=50",
            "--v=1",
            *extra_flags,
        ],
        log=workdir / "kube-apiserver.log",
    )
    endpoint = KubeEndpoint(
        server=server_url,
        kubeconfig=str(workdir / "kubeconfig"),
        token=token,
        ca_file=certs["ca"],
        etcd_url=etcd_url,
        version=KUBERNETES_VERSION,
        audit_log=str(audit_log),
    )
    _write_kubeconfig(endpoint)
    apiserver.wait_until(lambda: ready(endpoint), timeout=120, what="ready (/readyz)")
    return apiserver, endpoint


@dataclass
class ExtraApiServer:
    """One more kube-apiserver beside the shared one, on the shared etcd below its own prefix."""

    server: Server
    endpoint: KubeEndpoint
    etcd_prefix: str

    def stop(self) -> None:
        """Stop the API server, then delete everything it stored below its prefix."""
        self.server.stop()
        forget_etcd_prefix(self.endpoint.etcd_url, self.etcd_prefix)


def start_extra_apiserver(
    shared: KubeEndpoint, workdir: Path, extra_flags: Sequence[str] = ()
) -> ExtraApiServer:
    """A kube-apiserver of a test's own, with ``extra_flags`` after the shared one's flags.

    It shares the etcd of ``shared`` (no second etcd to start), under a prefix of its own, so
    it sees none of the shared API server's objects and they see none of its: a namespace,
    a CRD or an RBAC binding made here exists only here. Its certificates, admin token,
    kubeconfig and audit log are its own too. :meth:`ExtraApiServer.stop` removes its data.
    """
    prefix = f"/tongxing-extra-{secrets.token_hex(4)}"
    try:
        server, endpoint = start_apiserver(
            workdir, shared.etcd_url, etcd_prefix=prefix, extra_flags=extra_flags
        )
    except ComponentError:
        forget_etcd_prefix(shared.etcd_url, prefix)
        raise
    return ExtraApiServer(server, endpoint, prefix)


def forget_etcd_prefix(etcd_url: str, prefix: str) -> None:
    """Delete every key below ``prefix`` through etcd's JSON gateway (``/v3/kv/deleterange``)."""
    start_key = prefix.rstrip("/") + "/"
    end_key = start_key[:-1] + chr(ord("/") + 1)  # the first key after every "<prefix>/..."
    body = {
        "key": base64.b64encode(start_key.encode()).decode(),
        "range_end": base64.b64encode(end_key.encode()).decode(),
    }
    with contextlib.suppress(requests.RequestException):
        requests.post(f"{etcd_url}/v3/kv/deleterange", json=body, timeout=10)


def _etcd_healthy(url: str) -> bool:
    try:
        response = requests.get(f"{url}/health", timeout=2)
    except requests.RequestException:
        return False
    return response.status_code == 200 and response.json().get("health") == "true"


def _write_kubeconfig(endpoint: KubeEndpoint) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "tongxing-test",
                "cluster": {"server": endpoint.server, "certificate-authority": endpoint.ca_file},
            }
        ],
        "users": [{"name": ADMIN_USER, "user": {"token": endpoint.token}}],
        "contexts": [
            {
                "name": "tongxing-test",
                "context": {"cluster": "tongxing-test", "user": ADMIN_USER, "namespace": "default"},
            }
        ],
        "current-context": "tongxing-test",
    }
    path = Path(endpoint.kubeconfig)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


def ready(endpoint: KubeEndpoint) -> bool:
    try:
        response = requests.get(
            f"{endpoint.server}/readyz",
            verify=endpoint.ca_file,
            timeout=3,
            headers={"Authorization": f"Bearer {endpoint.token}"},
        )
    except requests.RequestException:
        return False
    return response.status_code == 200


def check(endpoint: KubeEndpoint) -> None:
    if not ready(endpoint):
        raise ComponentError("kube-apiserver", f"{endpoint.server}/readyz is not ok")
