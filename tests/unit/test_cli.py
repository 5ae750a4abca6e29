from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import sys
import types
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import requests.adapters
from flask import Flask
from requests.structures import CaseInsensitiveDict

from gateway import cli
from gateway.app import create_app
from gateway.cli import admin as cli_admin
from gateway.services import build_services
from gateway.settings import Settings
from tongxing_demo.secrets_file import required_secrets


def test_version_names_the_distribution(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("tongxing ")


def test_no_subcommand_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "usage: tongxing" in capsys.readouterr().out


def test_unknown_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["no-such-command"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


# --- keys --------------------------------------------------------------------------------------


def _keys(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["keys", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _show(capsys: pytest.CaptureFixture[str], path: Path) -> list[dict[str, Any]]:
    code, out, _ = _keys(capsys, "show", "--file", str(path), "--json")
    assert code == 0
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


def _kid(rows: list[dict[str, Any]], alg: str, state: str) -> str:
    (kid,) = [row["kid"] for row in rows if row["alg"] == alg and row["state"] == state]
    return str(kid)


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A key ring file made once by `keys generate` (RSA generation takes a moment)."""
    path = tmp_path_factory.mktemp("keys") / "keys.json"
    assert cli.main(["keys", "generate", "--file", str(path)]) == 0
    return path


def test_keys_generate_writes_a_private_file_and_refuses_to_overwrite(
    key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    code, _, err = _keys(capsys, "generate", "--file", str(key_file))
    assert code == 1
    assert "exists already" in err


def test_keys_show_prints_kids_and_states_but_no_key_material(
    key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _keys(capsys, "show", "--file", str(key_file))
    assert code == 0
    assert out.splitlines()[0].split() == [
        "ALG",
        "STATE",
        "KID",
        "CREATED",
        "AT",
        "RETIRE",
        "UNTIL",
    ]
    private = [entry["jwk"] for entry in json.loads(key_file.read_text())["keys"]]
    for jwk in private:
        assert jwk["kid"] in out
        assert jwk["d"] not in out
    rows = _show(capsys, key_file)
    assert sorted((r["alg"], r["state"]) for r in rows) == [
        ("ES256", "active"),
        ("ES256", "next"),
        ("RS256", "active"),
        ("RS256", "next"),
    ]


def test_keys_rotate_activates_the_published_key_and_keeps_the_old_one_published(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.json"
    shutil.copy(key_file, path)
    path.chmod(0o600)
    before = _show(capsys, path)
    started = datetime.now(UTC)

    code, out, _ = _keys(capsys, "rotate", "--file", str(path), "--max-token-lifetime", "600")

    assert code == 0
    assert "rotated" in out
    after = _show(capsys, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for alg in ("RS256", "ES256"):
        # publish before sign: the key that signs now was already in the JWKS before
        assert _kid(after, alg, "active") == _kid(before, alg, "next")
        retired = [r for r in after if r["alg"] == alg and r["state"] == "retired"]
        assert [r["kid"] for r in retired] == [_kid(before, alg, "active")]
        retire_until = datetime.fromisoformat(retired[0]["retire_until"])
        assert timedelta(seconds=595) < retire_until - started < timedelta(seconds=610)
        assert _kid(after, alg, "next") not in {r["kid"] for r in before}
    assert not list(tmp_path.glob(".keys.json.*"))  # the temporary file was renamed into place


def test_keys_rotate_names_a_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _keys(capsys, "rotate", "--file", str(tmp_path / "nope.json"))
    assert code == 1
    assert f"{tmp_path / 'nope.json'}: does not exist" in err
    assert "Traceback" not in err


def test_keys_rotate_refuses_a_file_that_is_not_a_key_ring(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.json"
    path.write_text('{"version": 1, "keys": []}')
    code, _, err = _keys(capsys, "rotate", "--file", str(path))
    assert code == 1
    assert "is invalid: 'keys' must be a non-empty list" in err
    assert path.read_text() == '{"version": 1, "keys": []}'


def test_keys_commands_need_a_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TONGXING_KEYS_FILE", raising=False)
    code, _, err = _keys(capsys, "show")
    assert code == 2
    assert "--file" in err
    assert "TONGXING_KEYS_FILE" in err


def test_keys_rotate_wants_a_positive_lifetime(
    key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["keys", "rotate", "--file", str(key_file), "--max-token-lifetime", "0"])
    assert exit_info.value.code == 2
    assert "positive" in capsys.readouterr().err


# --- serve -------------------------------------------------------------------------------------


class FakeWaitress(types.ModuleType):
    """Stands in for waitress: records what it was asked to serve instead of listening."""

    def __init__(self) -> None:
        super().__init__("waitress")
        self.calls: list[dict[str, Any]] = []

    def serve(self, app: Any, **kwargs: Any) -> None:
        self.calls.append({"app": app, **kwargs})


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("TONGXING_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def waitress(monkeypatch: pytest.MonkeyPatch) -> FakeWaitress:
    fake = FakeWaitress()
    monkeypatch.setitem(sys.modules, "waitress", fake)
    return fake


def test_serve_lists_every_missing_setting(
    clean_env: pytest.MonkeyPatch, waitress: FakeWaitress, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err
    required = [name for name, spec in Settings.model_fields.items() if spec.is_required()]
    assert {"issuer", "national_secret", "admin_token"} <= set(required)
    expected = ", ".join(sorted(f"TONGXING_{name.upper()}" for name in required))
    assert err.strip() == f"tongxing: missing settings: {expected}"
    assert waitress.calls == []


def test_serve_names_an_invalid_secret_without_printing_it(
    clean_env: pytest.MonkeyPatch, waitress: FakeWaitress, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("TONGXING_ISSUER", "http://gateway.example.cn")
    clean_env.setenv("TONGXING_NATIONAL_SECRET", "too-short-national-secret")
    for name in required_secrets():
        if name != "national_secret":
            clean_env.setenv(f"TONGXING_{name.upper()}", "s" * 40)
    clean_env.setenv("TONGXING_UPSTREAM_TIMEOUT", "not-a-number")
    assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "invalid setting TONGXING_NATIONAL_SECRET: " in err
    assert "at least 32 characters" in err
    assert "invalid setting TONGXING_UPSTREAM_TIMEOUT: " in err
    for secret in ("too-short-national-secret", "s" * 40, "not-a-number"):
        assert secret not in err
    assert "Traceback" not in err


def test_serve_explains_a_rule_across_settings(
    clean_env: pytest.MonkeyPatch,
    waitress: FakeWaitress,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _valid_settings(clean_env, tmp_path)
    clean_env.setenv("TONGXING_ISSUER", "http://gateway.example.cn")
    assert cli.main(["serve"]) == 2
    assert capsys.readouterr().err.startswith(
        "tongxing: invalid settings: Value error, issuer must use https "
        "(set TONGXING_INSECURE_ALLOW_HTTP=true for loopback tests)"
    )


def test_serve_without_waitress_says_what_to_install(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setitem(sys.modules, "waitress", None)  # makes `import waitress` fail
    assert cli.main(["serve", "--server", "waitress"]) == 1
    err = capsys.readouterr().err
    assert "waitress is not installed" in err
    assert "--insecure-dev-server" in err


def test_serve_without_granian_says_what_to_install_and_what_else_runs(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setitem(sys.modules, "granian._granian", None)  # makes the import fail
    assert cli.main(["serve"]) == 1
    err = capsys.readouterr().err
    assert "granian is not installed (pip install 'granian==2.8.7')" in err
    assert "--server waitress" in err
    assert "--insecure-dev-server" in err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--tls-certificate", "c.pem"], "--tls-certificate and --tls-key go together"),
        (["--tls-key", "k.pem"], "--tls-certificate and --tls-key go together"),
        (
            ["--tls-certificate", "c.pem", "--tls-key", "k.pem", "--server", "waitress"],
            "served by granian only",
        ),
        (
            ["--tls-certificate", "c.pem", "--tls-key", "k.pem", "--insecure-dev-server"],
            "served by granian only",
        ),
    ],
)
def test_serve_refuses_tls_options_it_cannot_honour(
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    arguments: list[str],
    message: str,
) -> None:
    assert cli.main(["serve", *arguments]) == 2
    assert message in capsys.readouterr().err


def test_serve_names_a_missing_tls_file_before_opening_the_store(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _valid_settings(clean_env, tmp_path)
    missing = tmp_path / "nowhere.pem"
    key = tmp_path / "key.pem"
    key.write_text("not a key")
    assert cli.main(["serve", "--tls-certificate", str(missing), "--tls-key", str(key)]) == 1
    assert f"TLS file {missing}: does not exist" in capsys.readouterr().err
    assert not (tmp_path / "keys.json").exists()  # nothing was opened


def test_serve_names_an_unusable_tls_pair(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _valid_settings(clean_env, tmp_path)
    certificate, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    certificate.write_text("not a certificate")
    key.write_text("not a key")
    assert cli.main(["serve", "--tls-certificate", str(certificate), "--tls-key", str(key)]) == 1
    err = capsys.readouterr().err
    assert f"cannot use the TLS certificate {certificate} with the key {key}" in err
    assert "Traceback" not in err


def test_the_dev_server_refuses_to_listen_beyond_loopback(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _valid_settings(clean_env, tmp_path)
    assert cli.main(["serve", "--insecure-dev-server", "--host", "0.0.0.0"]) == 1  # noqa: S104
    assert "loopback only" in capsys.readouterr().err


def _valid_settings(env: pytest.MonkeyPatch, data_dir: Path) -> None:
    env.setenv("TONGXING_ISSUER", "https://tongxing.example.cn")
    env.setenv("TONGXING_DATA_DIR", str(data_dir))
    env.setenv("TONGXING_CREATE_KEYS", "true")
    for name in required_secrets():
        env.setenv(f"TONGXING_{name.upper()}", secrets.token_urlsafe(32))


def test_serve_runs_the_gateway_with_waitress(
    clean_env: pytest.MonkeyPatch, waitress: FakeWaitress, tmp_path: Path
) -> None:
    _valid_settings(clean_env, tmp_path)
    argv = ["serve", "--server", "waitress", "--host", "0.0.0.0", "--port", "9000"]  # noqa: S104
    assert cli.main([*argv, "--threads", "4"]) == 0
    (call,) = waitress.calls
    assert call["host"] == "0.0.0.0"  # noqa: S104
    assert (call["port"], call["threads"]) == (9000, 4)
    assert call["max_request_body_size"] == 1024 * 1024
    client = call["app"].test_client()
    discovery = client.get("/.well-known/openid-configuration").get_json()
    assert discovery["issuer"] == "https://tongxing.example.cn"
    assert (tmp_path / "keys.json").exists()
    # The same limit in the application, for any server: a body read past it is 413.
    too_big = client.post("/token", data={"grant_type": "x" * (1024 * 1024 + 1)})
    assert too_big.status_code == 413


@pytest.mark.parametrize("option", ["--workers", "--threads"])
def test_serve_needs_at_least_one_worker_and_thread(
    clean_env: pytest.MonkeyPatch,
    waitress: FakeWaitress,
    capsys: pytest.CaptureFixture[str],
    option: str,
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve", option, "0"])
    assert exit_info.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
    assert waitress.calls == []


def test_serve_reports_a_missing_key_file(
    clean_env: pytest.MonkeyPatch,
    waitress: FakeWaitress,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _valid_settings(clean_env, tmp_path)
    clean_env.setenv("TONGXING_CREATE_KEYS", "false")
    assert cli.main(["serve"]) == 1
    err = capsys.readouterr().err
    assert f"signing key file {tmp_path / 'keys.json'}: does not exist" in err
    assert waitress.calls == []


# --- admin -------------------------------------------------------------------------------------


class WsgiAdapter(requests.adapters.BaseAdapter):
    """requests -> a Flask app in-process: the admin CLI end to end without a socket."""

    def __init__(self, app: Flask) -> None:
        super().__init__()
        self.client = app.test_client()

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        url = urlsplit(request.url or "")
        answer = self.client.open(
            url.path,
            method=request.method or "GET",
            query_string=url.query,
            headers=dict(request.headers),
            data=request.body,
        )
        response = requests.Response()
        response.status_code = answer.status_code
        response._content = answer.get_data()
        response.headers = CaseInsensitiveDict(dict(answer.headers))
        response.url = request.url or ""
        response.reason = answer.status.partition(" ")[2]
        response.request = request
        return response

    def close(self) -> None:
        pass


ADMIN_TOKEN = secrets.token_urlsafe(32)
GATEWAY = "https://tongxing.example.cn"


@pytest.fixture(scope="module")
def gateway_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    settings = Settings.model_validate(
        {
            "issuer": GATEWAY,
            "data_dir": tmp_path_factory.mktemp("gateway"),
            "create_keys": True,
            **{name: secrets.token_urlsafe(32) for name in required_secrets()},
            "admin_token": ADMIN_TOKEN,
        }
    )
    services = build_services(settings)
    yield create_app(services=services)
    services.close()


@pytest.fixture
def admin(
    gateway_app: Flask, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    def session() -> requests.Session:
        http = requests.Session()
        http.mount("https://", WsgiAdapter(gateway_app))
        return http

    clean_env.setattr(cli_admin, "admin_session", session)
    clean_env.setenv("TONGXING_ADMIN_URL", GATEWAY)
    clean_env.setenv("TONGXING_ADMIN_TOKEN", ADMIN_TOKEN)

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(["admin", *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


REGION_YAML = """\
code: zj
names: {zh: 浙江, en: Zhejiang}
kind: province
issuer: https://idp.zj.example.cn/realms/zj
client_id: tongxing
client_secret: upstream-secret-value
"""


def test_admin_puts_lists_gets_and_deletes_a_region(
    admin: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    document = tmp_path / "zj.yaml"
    document.write_text(REGION_YAML, encoding="utf-8")

    assert admin("regions", "put", str(document)) == (0, "created region zj\n", "")
    assert admin("regions", "put", str(document)) == (0, "replaced region zj\n", "")

    code, out, _ = admin("regions", "list")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["CODE", "KIND", "ZH", "EN", "ENABLED", "ISSUER"]
    assert row.split() == [
        "zj",
        "province",
        "浙江",
        "Zhejiang",
        "yes",
        "https://idp.zj.example.cn/realms/zj",
    ]

    code, out, _ = admin("regions", "get", "zj")
    assert code == 0
    shown = json.loads(out)
    assert shown["names"] == {"zh": "浙江", "en": "Zhejiang"}
    assert "浙江" in out  # not \\u escapes
    assert "client_secret" not in shown
    assert "upstream-secret-value" not in out

    assert admin("regions", "delete", "zj") == (0, "deleted region zj\n", "")
    code, _, err = admin("regions", "delete", "zj")
    assert (code, err) == (1, "tongxing: no region zj\n")


def test_admin_prints_the_fields_the_api_refused(
    admin: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    document = tmp_path / "bad.json"
    document.write_text(
        json.dumps(
            {
                "code": "sh",
                "names": {"zh": "上海"},
                "kind": "city",
                "issuer": "http://idp.sh.example.cn",
                "client_id": "tongxing",
                "client_secret": "x",
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    code, out, err = admin("regions", "put", str(document))
    assert code == 1
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == "tongxing: the gateway refused the region sh:"
    assert "  names.en: Field required" in lines
    assert any(line.startswith("  kind: Input should be") for line in lines)
    assert any(line.startswith("  issuer: ") and "https" in line for line in lines)


def test_admin_put_portal_shows_the_generated_secret_once(
    admin: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    document = tmp_path / "portal.yaml"
    document.write_text(
        "client_id: zj-services\n"
        "names: {zh: 浙江政务服务网, en: Zhejiang services}\n"
        "owner: zj\n"
        "redirect_uris: [https://portal.zj.example.cn/callback]\n",
        encoding="utf-8",
    )
    code, out, _ = admin("portals", "put", str(document))
    assert code == 0
    first, second = out.splitlines()
    assert first == "created portal zj-services"
    assert second.startswith("client secret (shown this once, store it now): ")
    code, out, _ = admin("portals", "put", str(document))
    assert (code, out) == (0, "replaced portal zj-services\n")  # the secret is kept, not shown
    code, out, _ = admin("portals", "list")
    assert out.splitlines()[1].split()[:3] == ["zj-services", "zj", "浙江政务服务网"]


def test_admin_explains_a_refused_token(
    admin: Callable[..., tuple[int, str, str]], clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("TONGXING_ADMIN_TOKEN", "not-the-token")
    code, _, err = admin("regions", "list")
    assert code == 1
    assert "admin token was refused" in err
    assert "not-the-token" not in err


def test_admin_needs_a_url_and_a_readable_document(
    admin: Callable[..., tuple[int, str, str]], clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code, _, err = admin("regions", "put", str(tmp_path / "missing.yaml"))
    assert code == 2
    assert "cannot read" in err
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    code, _, err = admin("regions", "put", str(tmp_path / "list.yaml"))
    assert (code, "must hold one JSON or YAML object" in err) == (2, True)
    (tmp_path / "nokey.yaml").write_text("kind: province\n")
    code, _, err = admin("regions", "put", str(tmp_path / "nokey.yaml"))
    assert (code, "has no 'code'" in err) == (2, True)
    clean_env.delenv("TONGXING_ADMIN_URL")
    code, _, err = admin("regions", "list")
    assert (code, "--url" in err) == (2, True)


class RefusingAdapter(requests.adapters.BaseAdapter):
    """What requests does when nothing listens: a ConnectionError."""

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        raise requests.ConnectionError("Connection refused", request=request)

    def close(self) -> None:
        pass


def test_admin_reports_an_unreachable_gateway(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def session() -> requests.Session:
        http = requests.Session()
        http.mount("http://", RefusingAdapter())
        return http

    clean_env.setattr(cli_admin, "admin_session", session)
    clean_env.setenv("TONGXING_ADMIN_TOKEN", ADMIN_TOKEN)
    code = cli.main(["admin", "regions", "list", "--url", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 1
    assert err == (
        "tongxing: cannot reach the admin API at http://127.0.0.1:9/admin/v1 (ConnectionError)\n"
    )


# --- demo --------------------------------------------------------------------------------------


def test_demo_asks_for_a_keycloak(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "--keycloak-url, --keycloak-admin, --keycloak-password" in err
    assert "make demo" in err


@pytest.mark.parametrize("prefix", ["Demo-", "-demo", "demo_", "d" * 49])
def test_demo_refuses_a_realm_prefix_keycloak_names_would_not_take(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], prefix: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["demo", "--realm-prefix", prefix])
    assert exit_info.value.code == 2
    assert "--realm-prefix" in capsys.readouterr().err


def test_the_operator_subcommand_hands_over_to_the_operator(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["operator", "--help"])
    assert exit_info.value.code == 0
    assert "usage: tongxing operator" in capsys.readouterr().out
