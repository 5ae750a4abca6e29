"""The harness's own logic: caching, checksums, errors, certificates, the dev CLI."""

from __future__ import annotations

import hashlib
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from tongxing_dev import ComponentError, kube, stack
from tongxing_dev import cli as dev_cli
from tongxing_dev.cache import Timings, download


def test_component_error_names_the_component_and_shows_its_log() -> None:
    error = ComponentError("keycloak", "not ready after 240 s", "line 1\nline 2")
    assert str(error).startswith("keycloak: not ready after 240 s")
    assert "line 2" in str(error)


def test_download_refuses_a_file_whose_checksum_differs(tmp_path: Path) -> None:
    source = tmp_path / "artifact.zip"
    source.write_bytes(b"the real bytes")
    checksum = tmp_path / "artifact.zip.sha1"
    checksum.write_text(hashlib.sha1(b"other bytes", usedforsecurity=False).hexdigest())
    dest = tmp_path / "cache" / "artifact.zip"
    with pytest.raises(ComponentError, match="checksum mismatch"):
        download("demo", source.as_uri(), dest, sha1_url=checksum.as_uri())
    assert not dest.exists()
    assert not dest.with_name("artifact.zip.part").exists()


def test_download_keeps_a_verified_file_and_does_not_fetch_it_again(tmp_path: Path) -> None:
    source = tmp_path / "artifact.zip"
    source.write_bytes(b"the real bytes")
    checksum = tmp_path / "artifact.zip.sha1"
    checksum.write_text(hashlib.sha1(b"the real bytes", usedforsecurity=False).hexdigest() + "\n")
    dest = tmp_path / "cache" / "artifact.zip"
    assert download("demo", source.as_uri(), dest, sha1_url=checksum.as_uri()) == dest
    source.unlink()  # a second call must be served from the cache
    assert download("demo", source.as_uri(), dest).read_bytes() == b"the real bytes"


def test_download_of_a_missing_artifact_names_the_component(tmp_path: Path) -> None:
    with pytest.raises(ComponentError, match=r"^keycloak: cannot download"):
        download("keycloak", (tmp_path / "absent.zip").as_uri(), tmp_path / "out.zip")


def test_timings_report_one_line_per_component() -> None:
    timings = Timings()
    with timings.measure("obtain", "keycloak"):
        pass
    with timings.measure("start", "keycloak"):
        pass
    timings.reused.add("postgresql")
    lines = timings.report()
    assert len(lines) == 2
    assert lines[0].startswith("keycloak")
    assert "obtain" in lines[0]
    assert "start" in lines[0]
    assert lines[1].startswith("postgresql")
    assert "reused" in lines[1]


def test_apiserver_certificate_is_for_loopback_and_signed_by_the_test_ca(tmp_path: Path) -> None:
    files = kube._certificates(tmp_path)
    ca = x509.load_pem_x509_certificate(Path(files["ca"]).read_bytes())
    serving = x509.load_pem_x509_certificate(Path(files["cert"]).read_bytes())
    names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert serving.issuer == ca.subject
    public_key = ca.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    serving.verify_directly_issued_by(ca)
    assert oct(Path(files["sa_key"]).stat().st_mode & 0o777) == "0o600"


def test_pinned_versions_come_from_the_wrapper_modules() -> None:
    assert kube.KUBERNETES_VERSION.startswith("v1.32.")
    assert kube.ETCD_VERSION.startswith("v3.5.")


def test_dev_cli_rejects_an_unknown_component(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        dev_cli.main(["up", "mysql"])
    assert exit_info.value.code == 2
    assert "unknown component(s) mysql" in capsys.readouterr().err


def test_every_component_is_known_to_the_stack() -> None:
    assert set(stack.COMPONENTS) == {
        "postgresql",
        "keycloak",
        "kube",
        "node-peers",
        "chromium",
        "helm",
        "buildah",
    }
