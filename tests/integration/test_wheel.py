"""The tongxing wheel, installed (not editable) into a fresh virtual environment, serves its pages.

The wheel is built from what the image's build gets (the allow-list in ``.dockerignore``) and
installed into a new venv with pip, as ``pip install .`` would; only its dependencies are borrowed
from the test venv (a ``.pth`` line naming that venv's site-packages, which adds the folder but
runs none of its own ``.pth`` files, so no editable checkout leaks in). The gateway then runs
from the venv, outside the checkout: its templates and stylesheet must have come in the wheel.
"""

from __future__ import annotations

import os
import secrets
import shutil
import site
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from tongxing_dev.process import LOOPBACK, Server, free_port

from gateway.settings import Settings

REPO = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = secrets.token_urlsafe(32)


def build_context(into: Path) -> Path:
    """A copy of what ``.dockerignore`` lets into the image build: the wheel's sources."""
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    for line in lines:
        if not line.startswith("!"):
            continue
        source = REPO / line[1:]
        target = into / line[1:]
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, target)
    return into


def run(*argv: str | Path, cwd: Path) -> str:
    done = subprocess.run(
        [str(arg) for arg in argv], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    build_output: str

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("wheel")
    source = build_context(work / "src")
    output = run(
        sys.executable,
        *("-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"),
        *("--wheel-dir", work / "wheels", source),
        cwd=work,
    )
    (wheel,) = (work / "wheels").glob("tongxing-*.whl")
    venv = work / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=work)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", wheel, cwd=work)
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=work)
    borrowed = "\n".join(site.getsitepackages()) + "\n"
    (Path(purelib.strip()) / "test-venv-dependencies.pth").write_text(borrowed)
    return Installed(wheel, venv, output)


def test_the_wheel_carries_templates_and_stylesheet_and_no_harness(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    templates = {p.name for p in (REPO / "gateway" / "templates").glob("*.html")}
    assert {f"gateway/templates/{name}" for name in templates} <= names
    assert "gateway/static/tongxing.css" in names
    assert "tongxing_demo/templates/portal.html" in names
    assert "realm_operator/realms/province.json.j2" in names
    assert not [name for name in names if name.startswith(("tongxing_dev/", "tests/"))]
    # setuptools would warn of a data folder left out of the package configuration
    assert "absent from the `packages` configuration" not in installed.build_output


def test_the_installed_packages_come_from_the_venv_not_the_checkout(
    installed: Installed, tmp_path: Path
) -> None:
    where = run(
        installed.python,
        "-I",
        "-c",
        "import importlib.util as u, gateway, realm_operator, tongxing_demo;"
        "print(gateway.__file__, realm_operator.__file__, tongxing_demo.__file__);"
        "print(u.find_spec('tongxing_dev'))",
        cwd=tmp_path,
    ).split()
    assert all(path.startswith(str(installed.venv)) for path in where[:3]), where
    assert where[3] == "None"


@pytest.fixture
def gateway(installed: Installed, tmp_path: Path) -> Iterator[str]:
    """``tongxing serve`` from the venv, outside the checkout; yields its URL."""
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TONGXING_", "PYTHON"))}
    env |= {
        "TONGXING_ISSUER": url,
        "TONGXING_INSECURE_ALLOW_HTTP": "true",
        "TONGXING_DATA_DIR": str(tmp_path / "data"),
        "TONGXING_CREATE_KEYS": "true",
    }
    for name, field in Settings.model_fields.items():
        if field.is_required() and name != "issuer":
            env[f"TONGXING_{name.upper()}"] = secrets.token_urlsafe(32)
    env["TONGXING_ADMIN_TOKEN"] = ADMIN_TOKEN
    server = Server(
        "gateway-from-wheel",
        [str(installed.venv / "bin" / "tongxing"), "serve", f"--host={LOOPBACK}", f"--port={port}"],
        log=tmp_path / "gateway.log",
        env=env,
        cwd=tmp_path,
    )
    try:
        server.wait_until(
            lambda: requests.get(f"{url}/readyz", timeout=2).status_code == 200,
            timeout=60,
            what="ready (/readyz)",
        )
        yield url
    finally:
        server.stop()


def test_the_installed_gateway_serves_the_chooser_with_its_template_and_stylesheet(
    gateway: str,
) -> None:
    # Without parameters: an error page, rendered from the packaged templates.
    bare = requests.get(f"{gateway}/authorize", timeout=10)
    assert bare.status_code == 400
    assert '<link rel="stylesheet" href="/static/tongxing.css">' in bare.text
    assert 'class="error"' in bare.text

    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    region = {
        "code": "zj",
        "names": {"zh": "浙江", "en": "Zhejiang"},
        "kind": "province",
        "issuer": "https://idp.zj.example.cn/realms/zj",
        "client_id": "tongxing-gateway",
        "client_secret": secrets.token_urlsafe(16),
    }
    portal = {
        "client_id": "zj-services",
        "names": {"zh": "浙江政务服务网", "en": "Zhejiang services"},
        "owner": "zj",
        "redirect_uris": ["https://portal.zj.example.cn/callback"],
    }
    for path, document in (("regions/zj", region), ("portals/zj-services", portal)):
        put = requests.put(f"{gateway}/admin/v1/{path}", json=document, headers=admin, timeout=10)
        assert put.status_code in (200, 201), put.text
    chooser = requests.get(
        f"{gateway}/authorize",
        params={
            "client_id": "zj-services",
            "redirect_uri": "https://portal.zj.example.cn/callback",
            "response_type": "code",
            "scope": "openid",
            "state": "af0ifjsldkj",
            "nonce": "n-0S6_WzA2Mj",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
        },
        timeout=10,
    )
    assert chooser.status_code == 200
    assert "<h1>选择您注册的地区</h1>" in chooser.text
    assert 'name="region" value="zj"' in chooser.text
    assert '<link rel="stylesheet" href="/static/tongxing.css">' in chooser.text

    stylesheet = requests.get(f"{gateway}/static/tongxing.css", timeout=10)
    assert stylesheet.status_code == 200
    assert stylesheet.headers["Content-Type"].startswith("text/css")
    assert stylesheet.content == (REPO / "gateway" / "static" / "tongxing.css").read_bytes()
