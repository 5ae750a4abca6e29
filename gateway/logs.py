"""Log lines an operations team can read: one JSON object per line, tied together by a request id.

Issue 14 ("Structured logs") and THREAT_MODEL row 8 (an insider with read access to the logs):

* :class:`JsonLineFormatter` writes each record as one JSON object (python-json-logger): ``time``
  (RFC 3339, UTC), ``level``, ``logger``, ``message``, the request's ``request_id``, ``region``
  and ``portal`` when known, then every structured field the code passed in ``extra=``.
  :class:`TextLineFormatter` says the same on one readable line, for the demo and development.
  Both replace the value of a field whose name says it holds a secret (:data:`SECRET_FIELDS`),
  a net under the rule that no log call passes one.
* :class:`RequestIds` gives every request an id: the ingress's ``X-Request-ID`` when it is a sane
  token (at most 64 characters of ``[A-Za-z0-9._-]``), else a new one. The id lives in a
  :class:`~contextvars.ContextVar` for the request, is in every line logged while it runs, is
  returned in the response's ``X-Request-ID`` and sent on the gateway's own HTTP calls
  (:class:`CorrelatedSession`: the regions' endpoints, back-channel logout deliveries), so one
  citizen's sign-in can be followed through the gateway, the region and the portal.
* :class:`EventLog`, a sink of :class:`~gateway.observe.Events`, writes one line per event: the
  event's kind as ``event`` and its fields, at INFO, failures at WARNING; a broker failure
  (mix-up, bad signature, state mismatch) appears with its stable code as ``reason``.

Formatting reads the context of the thread that logs, so a handler must format where the record
is made (the stream handlers ``tongxing serve`` installs do), not in a queue's thread.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar

import requests
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from gateway.observe import REDACTED, Event

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from flask import Flask

__all__ = [
    "REQUEST_ID_HEADER",
    "SECRET_FIELDS",
    "CorrelatedSession",
    "EventLog",
    "JsonLineFormatter",
    "LogContext",
    "RequestIds",
    "TextLineFormatter",
    "accepted_request_id",
    "bind",
    "current_context",
    "current_request_id",
    "in_this_context",
    "request_context",
]

REQUEST_ID_HEADER: Final = "X-Request-ID"
_SANE_TOKEN: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")

# Field names whose value is a secret wherever they appear (at any depth of an ``extra=``).
SECRET_FIELDS: Final = frozenset(
    {
        "access_token",
        "authorization",
        "client_secret",
        "client_secret_hash",
        "code_verifier",
        "id_token",
        "id_token_hint",
        "logout_token",
        "password",
        "refresh_token",
        "secret",
        "token",
    }
)

P = ParamSpec("P")
R = TypeVar("R")


# --- the request's context ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LogContext:
    """What every line logged for one request carries."""

    request_id: str
    region: str | None = None
    portal: str | None = None


_context: contextvars.ContextVar[LogContext | None] = contextvars.ContextVar(
    "tongxing_log_context", default=None
)


def current_context() -> LogContext | None:
    return _context.get()


def current_request_id() -> str | None:
    """The id of the request being handled in this context, if any."""
    context = _context.get()
    return context.request_id if context is not None else None


def accepted_request_id(value: str | None) -> str:
    """``value`` when it is a sane token (≤ 64 characters of ``[A-Za-z0-9._-]``), else a new id.

    The ingress's id is taken so its access log and the gateway's lines meet; anything else
    (too long, control characters, a JSON fragment) is not copied into every line of the request.
    """
    if value is not None and _SANE_TOKEN.fullmatch(value):
        return value
    return uuid.uuid4().hex


@contextmanager
def request_context(request_id: str | None = None) -> Iterator[LogContext]:
    """Run the block as one request (``request_id``, or a new one): for background jobs and
    tests; a request through :class:`RequestIds` gets one without asking."""
    context = LogContext(request_id or uuid.uuid4().hex)
    token = _context.set(context)
    try:
        yield context
    finally:
        _context.reset(token)


def bind(*, region: str | None = None, portal: str | None = None) -> None:
    """Name the region or portal of the current request, for its later lines; a value that is
    not a sane token is ignored (a path segment is anyone's to choose)."""
    context = _context.get()
    if context is None:
        return
    changes: dict[str, str] = {}
    if region is not None and _SANE_TOKEN.fullmatch(region):
        changes["region"] = region
    if portal is not None and _SANE_TOKEN.fullmatch(portal):
        changes["portal"] = portal
    if changes:
        _context.set(dataclasses.replace(context, **changes))


def in_this_context(function: Callable[P, R]) -> Callable[P, R]:
    """``function``, run in a copy of the caller's context whichever thread calls it.

    A thread pool's threads start with an empty context: a job submitted as
    ``pool.map(in_this_context(job), items)`` keeps the request id (each call gets its own copy,
    as one context cannot be entered by two threads at once).
    """
    captured = contextvars.copy_context()

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return captured.copy().run(function, *args, **kwargs)

    return run


# --- requests in, requests out ------------------------------------------------------------------


# Requests whose access line is DEBUG: the probes of the kubelet and the load balancer.
_QUIET_PATHS: Final = frozenset({"/healthz", "/readyz"})
_access_log = logging.getLogger("gateway.access")


class RequestIds:
    """WSGI middleware: a request id for each request (see the module), and one access line.

    The access line names the method, the path (never the query string: it carries codes,
    states and ID token hints), the status and the duration.
    """

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    @classmethod
    def install(cls, app: Flask) -> None:
        """Wrap ``app``'s WSGI application and name the region a route is about."""
        app.wsgi_app = cls(app.wsgi_app)  # type: ignore[method-assign]
        app.before_request(_bind_route)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request_id = accepted_request_id(environ.get("HTTP_X_REQUEST_ID"))
        token = _context.set(LogContext(request_id))
        started = time.monotonic()
        status: list[str] = []

        def start(
            status_line: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            status[:] = [status_line]
            kept = [(k, v) for k, v in headers if k.lower() != REQUEST_ID_HEADER.lower()]
            return start_response(status_line, [*kept, (REQUEST_ID_HEADER, request_id)], exc_info)

        try:
            return self.app(environ, start)
        finally:
            self._log_access(environ, status[0] if status else "-", time.monotonic() - started)
            _context.reset(token)

    @staticmethod
    def _log_access(environ: WSGIEnvironment, status_line: str, seconds: float) -> None:
        path = str(environ.get("PATH_INFO", ""))[:200]
        code = status_line.split(" ", 1)[0]
        _access_log.log(
            logging.DEBUG if path in _QUIET_PATHS else logging.INFO,
            "%s %s %s",
            environ.get("REQUEST_METHOD", "-"),
            path,
            code,
            extra={
                "event": "http.request",
                "method": environ.get("REQUEST_METHOD"),
                "path": path,
                "status": int(code) if code.isdigit() else None,
                "duration_ms": round(seconds * 1000, 1),
            },
        )


# The routes whose path names a region (the callback's ``code`` is the region's code).
_REGION_ARGUMENTS: Final = {"authorize.callback": "code"}


def _bind_route() -> None:
    from flask import request  # here: the sign-in and token side must not import Flask

    arguments = request.view_args or {}
    name = _REGION_ARGUMENTS.get(request.endpoint or "", "region")
    region = arguments.get(name, arguments.get("region_code"))
    if isinstance(region, str):
        bind(region=region)


class CorrelatedSession(requests.Session):
    """A :class:`requests.Session` that sends the current request's id as ``X-Request-ID``
    (unless the call sets its own), so a region's or a portal's logs can be joined to ours."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        request_id = current_request_id()
        if request_id is not None and REQUEST_ID_HEADER not in request.headers:
            request.headers[REQUEST_ID_HEADER] = request_id
        return super().send(request, **kwargs)


# --- formatting -----------------------------------------------------------------------------------


def rfc3339(created: float) -> str:
    """``created`` (seconds since the epoch) as an RFC 3339 §5.6 UTC time, to the millisecond."""
    moment = datetime.fromtimestamp(created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# LogRecord's own attributes: not structured fields (python-json-logger's list, plus what the
# formatters set on the record).
_RECORD_ATTRIBUTES: Final = frozenset({*RESERVED_ATTRS, "message", "asctime", "color_message"})


def _without_secrets(key: str, value: Any) -> Any:
    if key.lower() in SECRET_FIELDS:
        return REDACTED
    if isinstance(value, Mapping):
        return {str(k): _without_secrets(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_without_secrets("", v) for v in value]
    return value


def structured_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The request's context, then the fields the code passed in ``extra=``, secrets replaced."""
    fields: dict[str, Any] = {}
    context = _context.get()
    if context is not None:
        fields["request_id"] = context.request_id
        if context.region is not None:
            fields["region"] = context.region
        if context.portal is not None:
            fields["portal"] = context.portal
    for key, value in record.__dict__.items():
        if key in _RECORD_ATTRIBUTES or key.startswith("_"):
            continue
        if value is None and key in fields:  # an event that does not know what the request does
            continue
        fields[key] = _without_secrets(key, value)
    return fields


class JsonLineFormatter(JsonFormatter):
    """One JSON object per record: ``time``, ``level``, ``logger``, ``message``, the request's
    context, the structured fields, and ``exc_info`` (the traceback) when there is one."""

    def __init__(self) -> None:
        super().__init__(json_ensure_ascii=False)

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["time"] = rfc3339(record.created)
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = record.message
        for key, value in structured_fields(record).items():
            log_data.setdefault(key, value)
        for key, value in message_dict.items():  # exc_info, stack_info
            log_data.setdefault(key, value)


class TextLineFormatter(logging.Formatter):
    """The same on one readable line: ``time level logger [request id]: message key=value ...``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = structured_fields(record)
        request_id = fields.pop("request_id", "-")
        pairs = " ".join(f"{key}={value}" for key, value in fields.items())
        line = (
            f"{rfc3339(record.created)} {record.levelname} {record.name} [{request_id}]: "
            f"{record.getMessage()}{' ' + pairs if pairs else ''}"
        )
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return line


# --- the event stream's log sink ------------------------------------------------------------------

# Events that say something failed, and the outcomes that do: WARNING instead of INFO.
_FAILURE_KINDS: Final = frozenset({"signin.failed", "mfa.locked_out"})
_FAILED_OUTCOMES: Final = frozenset({"failed", "given_up", "refused", "wrong", "locked_out"})
# An event field named like a log line's own key is renamed (``level`` is the log level).
_RENAMED: Final = {"level": "assurance_level"}
_LINE_KEYS: Final = frozenset({"time", "level", "logger", "message", "request_id", "event"})


class EventLog:
    """A sink of :class:`~gateway.observe.Events`: one log line per event (see the module).

    A sign-in's event names its portal and region: they are bound to the request's context, so
    the lines that follow in the same request carry them too.
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or logging.getLogger("gateway.events")

    def __call__(self, event: Event) -> None:
        fields = event_fields(event)
        portal, region = fields.get("portal"), fields.get("region")
        bind(
            region=region if isinstance(region, str) else None,
            portal=portal if isinstance(portal, str) else None,
        )
        failed = event.kind in _FAILURE_KINDS or fields.get("outcome") in _FAILED_OUTCOMES
        self.log.log(
            logging.WARNING if failed else logging.INFO,
            "%s",
            event.kind,
            extra={"event": event.kind, **fields},
        )


def event_fields(event: Event) -> dict[str, Any]:
    """``event``'s fields as JSON-ready values, renamed where a name is a log line's own."""
    fields: dict[str, Any] = {}
    for item in dataclasses.fields(event):
        name = _RENAMED.get(item.name, item.name)
        if name in _LINE_KEYS or name in _RECORD_ATTRIBUTES:
            name = f"event_{name}"
        fields[name] = _without_secrets(item.name, getattr(event, item.name))
    return fields
