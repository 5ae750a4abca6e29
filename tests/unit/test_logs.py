"""Structured log lines and the request id (gateway/logs.py; issue 14, THREAT_MODEL row 8)."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from gateway.app import create_app
from gateway.cli.serve import configure_logging
from gateway.logs import (
    EventLog,
    JsonLineFormatter,
    TextLineFormatter,
    accepted_request_id,
    bind,
    current_request_id,
    in_this_context,
    request_context,
)
from gateway.observe import AdminChange, Events, SignInCompleted, SignInFailed, redact
from gateway.services import Services, build_services
from gateway.settings import Settings

TOKEN = secrets.token_urlsafe(32)


class Lines(logging.Handler):
    """Every record the root logger sees, formatted as ``tongxing serve --log-format json``."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonLineFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def objects(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def _record(message: str, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("gateway.test", logging.WARNING, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    return record


# --- formatting ---------------------------------------------------------------------------------


def test_a_json_line_has_the_time_level_logger_message_and_every_structured_field() -> None:
    record = _record("refused", event="request.refused", error_code="mix_up", status=400)
    with request_context("ingress-1.a_b") as context:
        bind(region="zj", portal="portal-a")
        line = JsonLineFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert list(data)[:4] == ["time", "level", "logger", "message"]
    assert data["time"].endswith("Z")  # RFC 3339, UTC
    assert datetime.fromisoformat(data["time"]).utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert data["level"] == "WARNING"
    assert data["logger"] == "gateway.test"
    assert data["message"] == "refused"
    assert data["request_id"] == context.request_id == "ingress-1.a_b"
    assert data["region"] == "zj"
    assert data["portal"] == "portal-a"
    assert data["event"] == "request.refused"
    assert data["error_code"] == "mix_up"
    assert data["status"] == 400


def test_a_field_named_for_a_secret_is_replaced_at_any_depth() -> None:
    secret = secrets.token_urlsafe(16)
    record = _record(
        "oops",
        client_secret=secret,
        refresh_token=secret,
        document={"nested": {"password": secret, "kept": "visible"}},
        tokens=[{"access_token": secret}],
    )
    for formatter in (JsonLineFormatter(), TextLineFormatter()):
        line = formatter.format(record)
        assert secret not in line
        assert "visible" in line


def test_a_text_line_says_the_same_readably() -> None:
    record = _record("refused", event="request.refused", error_code="mix_up")
    with request_context("abc"):
        line = TextLineFormatter().format(record)
    assert " WARNING gateway.test [abc]: refused " in line
    assert "event=request.refused" in line
    assert "error_code=mix_up" in line


def test_configure_logging_writes_json_lines_on_standard_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers = []
    try:
        configure_logging("INFO", "json")
        logging.getLogger("gateway.test").info("hello", extra={"subject": "s-1"})
        for handler in root.handlers:
            handler.flush()
    finally:
        root.handlers, level = saved
        root.setLevel(level)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert json.loads(line)["subject"] == "s-1"


# --- request ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "offered",
    ["x" * 65, "", "a b", "abc\ndef", '{"a":1}', "idé", "a/b", "a;b=c"],
)
def test_an_unsafe_request_id_from_the_ingress_is_replaced(offered: str) -> None:
    made = accepted_request_id(offered)
    assert made != offered
    assert len(made) == 32


@pytest.mark.parametrize("offered", ["x" * 64, "0f0c-9a.b_c", "A"])
def test_a_sane_request_id_from_the_ingress_is_kept(offered: str) -> None:
    assert accepted_request_id(offered) == offered


def _request_id_of_job(_: int) -> str | None:
    return current_request_id()


def test_a_thread_pool_job_keeps_the_request_id_when_wrapped() -> None:
    with request_context("rid-1"), ThreadPoolExecutor(2) as pool:
        bare = list(pool.map(_request_id_of_job, range(2)))
        wrapped = list(pool.map(in_this_context(_request_id_of_job), range(4)))
    assert bare == [None, None]
    assert wrapped == ["rid-1"] * 4


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    settings = Settings.model_validate(
        {
            "issuer": "https://tongxing.example.cn",
            "data_dir": tmp_path,
            "create_keys": True,
            "national_secret": secrets.token_urlsafe(32),
            "pairwise_secret": secrets.token_urlsafe(32),
            "admin_token": TOKEN,
            "session_secret": secrets.token_urlsafe(32),
            "mfa_secret": secrets.token_urlsafe(32),
        }
    )
    built = build_services(settings)
    yield built
    built.close()


@pytest.fixture
def client(services: Services) -> FlaskClient:
    return create_app(services=services).test_client()


def test_the_ingress_request_id_is_returned_and_in_every_line_of_the_request(
    client: FlaskClient, lines: Lines
) -> None:
    response = client.get(
        "/authorize", query_string={"client_id": "nobody"}, headers={"X-Request-ID": "ing-42"}
    )
    assert response.status_code == 400
    assert response.headers["X-Request-ID"] == "ing-42"
    logged = lines.objects()
    assert {line["event"] for line in logged} >= {"request.refused", "http.request"}
    assert all(line.get("request_id") == "ing-42" for line in logged)
    access = next(line for line in logged if line["event"] == "http.request")
    assert access["path"] == "/authorize"
    assert access["status"] == 400
    assert "nobody" not in access["message"]  # the query string is not logged


def test_each_request_without_a_sane_id_gets_a_new_one(client: FlaskClient, lines: Lines) -> None:
    first = client.get("/healthz").headers["X-Request-ID"]
    second = client.get("/healthz", headers={"X-Request-ID": "bad id\u2028"}).headers[
        "X-Request-ID"
    ]
    assert first != second
    assert "bad" not in second
    assert current_request_id() is None  # nothing left behind in the serving thread


def test_the_callback_route_names_its_region_in_the_lines(
    client: FlaskClient, lines: Lines
) -> None:
    client.get("/callback/zj", query_string={"state": "x", "code": "y"})
    logged = lines.objects()
    assert logged
    assert all(line.get("region") == "zj" for line in logged)


# --- the event sink -------------------------------------------------------------------------------


def test_each_event_is_one_line_with_its_fields_failures_at_warning(lines: Lines) -> None:
    events = Events()
    events.subscribe(EventLog())
    with request_context("rid-7"):
        events.emit(SignInFailed(portal="portal-a", region="zj", reason="mix_up"))
        events.emit(
            SignInCompleted(
                subject="s-1", portal="portal-a", region="zj", level="loa2", amr=("pwd",)
            )
        )
        logging.getLogger("gateway.later").info("after the sign-in")
    failed, completed, later = lines.objects()
    assert failed["level"] == "WARNING"
    assert failed["event"] == "signin.failed"
    assert failed["reason"] == "mix_up"
    assert failed["portal"] == "portal-a"
    assert completed["level"] == "INFO"
    assert completed["event"] == "signin.completed"
    assert completed["assurance_level"] == "loa2"  # ``level`` is the line's own
    assert completed["amr"] == ["pwd"]
    assert completed["request_id"] == "rid-7"
    # The lines that follow in the request carry the portal and the region the events named.
    assert (later["portal"], later["region"], later["request_id"]) == ("portal-a", "zj", "rid-7")


def test_an_admin_change_line_carries_no_secret(lines: Lines) -> None:
    secret = secrets.token_urlsafe(24)
    events = Events()
    events.subscribe(EventLog())
    events.emit(
        AdminChange(
            principal="platform",
            role="platform",
            action="put",
            target_kind="region",
            target="zj",
            before=None,
            after={"client_id": "tongxing", "client_secret": secret},  # not redacted by mistake
        )
    )
    events.emit(
        AdminChange(
            principal="platform",
            role="platform",
            action="put",
            target_kind="region",
            target="zj",
            after=redact({"client_secret": secret}),
        )
    )
    assert lines.lines
    assert all(secret not in line for line in lines.lines)
    assert lines.objects()[0]["after"]["client_id"] == "tongxing"
