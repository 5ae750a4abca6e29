"""``tongxing serve --tls-certificate F --tls-key F``: the gateway serves HTTPS itself (granian's
TLS, rustls), so that an https issuer can run on loopback (a Kubernetes API server's OIDC
authenticator, for one, accepts only an https issuer).

A certificate authority and a server certificate for 127.0.0.1 are made here with
``cryptography``; the gateway runs with two workers and an ``https://127.0.0.1:<port>`` issuer
(no ``TONGXING_INSECURE_ALLOW_HTTP``). A client that trusts the CA fetches the discovery document
and the keys; one that does not is refused, and so is plain HTTP on the same port.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tongxing_dev.process import free_port

from gateway.settings import Settings

TONGXING = Path(sys.executable).with_name("tongxing")


@dataclass(frozen=True)
class Pki:
    ca: Path
    certificate: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_pki(folder: Path) -> Pki:
    """A CA, and a certificate it signed for the IP address 127.0.0.1 (server authentication);
    the server's key in PKCS#8 PEM, the form granian reads."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("tongxing test CA"))
        .issuer_name(_name("tongxing test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(folder / "ca.pem", folder / "server.pem", folder / "server-key.pem")
    pki.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    pki.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pki.key.chmod(0o600)
    return pki


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    issuer: str
    pki: Pki


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    pki = make_pki(tmp_path)
    port = free_port()
    issuer = f"https://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TONGXING_")}
    env |= {
        "TONGXING_ISSUER": issuer,
        "TONGXING_DATA_DIR": str(tmp_path / "data"),
        "TONGXING_CREATE_KEYS": "true",
    }
    for name, field in Settings.model_fields.items():
        if field.is_required() and name != "issuer":
            env[f"TONGXING_{name.upper()}"] = secrets.token_urlsafe(32)
    stderr = tmp_path / "stderr"
    argv = [str(TONGXING), "serve", "--port", str(port), "--workers", "2", "--threads", "2"]
    with stderr.open("wb") as errors:
        process = subprocess.Popen(
            [*argv, "--tls-certificate", str(pki.certificate), "--tls-key", str(pki.key)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{issuer}/readyz", timeout=2, verify=str(pki.ca)).status_code == 200:
                break
        except requests.RequestException:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"not ready:\n{stderr.read_text()[-3000:]}")
        time.sleep(0.2)
    try:
        yield Served(process, issuer, pki)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def test_the_gateway_serves_its_https_issuer_to_a_client_that_trusts_the_ca(
    served: Served,
) -> None:
    discovery = requests.get(
        f"{served.issuer}/.well-known/openid-configuration", timeout=5, verify=str(served.pki.ca)
    )
    assert discovery.status_code == 200
    document = discovery.json()
    assert document["issuer"] == served.issuer
    assert document["jwks_uri"].startswith(f"{served.issuer}/")
    keys = requests.get(document["jwks_uri"], timeout=5, verify=str(served.pki.ca))
    assert keys.status_code == 200
    assert keys.json()["keys"]
    # The connection is TLS with the certificate made above (1.2 at least).
    context = ssl.create_default_context(cafile=str(served.pki.ca))
    port = int(served.issuer.rsplit(":", 1)[1])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        peer = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True) or b"")
        assert peer.public_bytes(serialization.Encoding.PEM) == served.pki.certificate.read_bytes()


def test_a_client_that_does_not_trust_the_ca_and_plain_http_are_refused(served: Served) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{served.issuer}/healthz", timeout=5)  # the system's CAs only
    plain = served.issuer.replace("https://", "http://")
    with pytest.raises(requests.RequestException):
        requests.get(f"{plain}/healthz", timeout=5)


def test_sigterm_stops_the_tls_workers_with_status_zero(served: Served) -> None:
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=30) == 0
