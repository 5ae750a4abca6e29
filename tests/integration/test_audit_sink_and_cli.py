"""The audit trail's sink and ``tongxing audit verify|export`` on a real store, on both engines
(GB/T 22239-2019 §8.1.4; THREAT_MODEL rows 8 and 9).

The sink hears events on a gateway's :class:`~gateway.observe.Events` as the gateway's parts
emit them; the command reads the same database as an auditor would, with no gateway secret.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from tongxing_dev.postgres import PostgresEndpoint

from gateway import cli
from gateway.audit import AuditTrail
from gateway.observe import (
    AdminChange,
    ConsentGiven,
    Events,
    FactorRemoved,
    LoggedOut,
    SignInCompleted,
    SignInFailed,
    SignInStarted,
    TokenIssued,
)
from gateway.store import SqlStore, StoreUnavailableError

NOW = datetime.datetime(2025, 3, 1, 8, 0, tzinfo=datetime.UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    postgres: PostgresEndpoint = request.getfixturevalue("postgres")
    name = f"audit_{uuid.uuid4().hex[:16]}"
    postgres.create_database(name)
    yield postgres.sqlalchemy_url(name)
    postgres.drop_database(name)


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    opened = SqlStore.from_url(store_url)
    opened.migrate()
    yield opened
    opened.close()


@pytest.fixture
def events(store: SqlStore) -> Events:
    stream = Events()
    clock = iter(NOW + datetime.timedelta(minutes=i) for i in range(10_000))
    stream.subscribe(AuditTrail(store, lambda: next(clock)), required=True)
    return stream


def _cli(capsys: pytest.CaptureFixture[str], store_url: str, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["audit", *argv, "--database-url", store_url])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- the sink -----------------------------------------------------------------------------------


def test_a_sign_in_a_consent_and_a_logout_leave_records_with_who_what_when_and_outcome(
    store: SqlStore, events: Events
) -> None:
    events.emit(SignInStarted(portal="zj-portal", region="zj"))  # not audited: metrics count it
    events.emit(
        SignInCompleted(
            subject="sub-1", portal="zj-portal", region="zj", level="loa2", amr=("pwd",)
        )
    )
    events.emit(TokenIssued(portal="zj-portal", grant_type="authorization_code"))  # not audited
    events.emit(ConsentGiven(subject="sub-1", portal="zj-portal", claims=("phone_number", "name")))
    events.emit(SignInFailed(portal="zj-portal", region="zj", reason="access_denied"))
    events.emit(LoggedOut(subject="sub-1", region="zj", initiator="person", portals=("zj-portal",)))
    records = [r.as_json() for r in store.list_audit()]
    assert [(r["kind"], r["outcome"]) for r in records] == [
        ("signin.completed", "success"),
        ("consent.given", "given"),
        ("signin.failed", "failure"),
        ("logout", "ended"),
    ]
    signin = records[0]
    assert (signin["subject"], signin["portal"], signin["region"], signin["level"]) == (
        "sub-1",
        "zj-portal",
        "zj",
        "loa2",
    )
    assert signin["time"] == NOW.isoformat()
    assert records[1]["details"] == {"claims": ["name", "phone_number"]}
    assert records[2]["details"] == {"reason": "access_denied"}
    assert records[3]["details"] == {"initiator": "person", "portals": ["zj-portal"]}
    assert store.verify_audit().intact


def test_a_help_desk_reset_and_an_admin_change_keep_the_principal_and_never_a_secret(
    store: SqlStore, events: Events
) -> None:
    events.emit(FactorRemoved(subject="sub-1", principal="helpdesk-7", reason="lost phone"))
    secret = "s3cr3t-client-secret-value-0123456789"
    events.emit(
        AdminChange(
            principal="platform",
            role="platform",
            action="put",
            target_kind="portal",
            target="zj-portal",
            before=None,
            # An emitter that forgot to redact: the sink redacts once more.
            after={"client_id": "zj-portal", "client_secret": secret, "nested": {"token": secret}},
        )
    )
    reset, change = store.list_audit()
    assert (reset.entry.outcome, reset.entry.principal) == ("reset", "helpdesk-7")
    assert reset.entry.details == {"reason": "lost phone"}
    assert change.entry.principal == "platform"
    assert change.entry.portal == "zj-portal"
    with store.engine.connect() as conn:
        dumped = json.dumps(
            [list(row) for row in conn.execute(text("SELECT * FROM audit_records"))], default=str
        )
    assert secret not in dumped
    assert "[redacted]" in dumped


def test_a_large_admin_document_is_kept_as_its_digest(store: SqlStore, events: Events) -> None:
    after = {
        "client_id": "zj-portal",
        "redirect_uris": [f"https://p{i}.example.cn/cb" for i in range(500)],
    }
    events.emit(
        AdminChange(
            principal="platform",
            role="platform",
            action="put",
            target_kind="portal",
            target="zj-portal",
            after=after,
        )
    )
    (record,) = store.list_audit()
    assert set(record.entry.details["after"]) == {"sha256", "bytes"}
    assert store.verify_audit().intact


def test_an_action_whose_record_cannot_be_written_fails_for_its_emitter(tmp_path: Path) -> None:
    broken = SqlStore.from_url(f"sqlite:///{tmp_path / 'no-such-folder' / 'store.db'}")
    stream = Events()
    stream.subscribe(AuditTrail(broken), required=True)
    try:
        with pytest.raises(StoreUnavailableError):
            stream.emit(SignInCompleted(subject="s", portal="p", region="zj", level="loa1"))
        stream.emit(TokenIssued(portal="p", grant_type="refresh_token"))  # not audited: no error
    finally:
        broken.close()


# --- the command --------------------------------------------------------------------------------


def test_audit_verify_says_intact_then_names_the_changed_record(
    store: SqlStore, store_url: str, events: Events, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _cli(capsys, store_url, "verify")
    assert code == 0
    assert "no records" in out
    for i in range(3):
        events.emit(SignInCompleted(subject=f"sub-{i}", portal="p", region="zj", level="loa1"))
    code, out, _ = _cli(capsys, store_url, "verify")
    assert code == 0
    assert "intact: 3 records, 1 days, sequences 1 to 3" in out

    postgres = store.engine.dialect.name == "postgresql"
    with store.engine.begin() as conn:  # an insider who owns the table
        if postgres:
            conn.exec_driver_sql("ALTER TABLE audit_records DISABLE TRIGGER USER")
        conn.execute(text("UPDATE audit_records SET level = 'loa3' WHERE sequence = 2"))
        if postgres:
            conn.exec_driver_sql("ALTER TABLE audit_records ENABLE TRIGGER USER")
    code, out, err = _cli(capsys, store_url, "verify")
    assert code == 1
    assert "record 2 was changed" in err
    assert out == ""


def test_audit_export_writes_json_lines_in_the_window(
    store: SqlStore, store_url: str, events: Events, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(3):
        events.emit(SignInCompleted(subject=f"sub-{i}", portal="p", region="zj", level="loa1"))
    code, out, _ = _cli(
        capsys, store_url, "export", "--since", "2025-03-01T08:01:00", "--until", "2025-03-01T08:02"
    )
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["subject"] for line in lines] == ["sub-1"]
    assert lines[0]["hash"] == store.list_audit()[1].hash
    code, out, _ = _cli(capsys, store_url, "export", "--since", "2025-03-01")
    assert len(out.splitlines()) == 3


def test_audit_export_refuses_a_bad_date_and_a_missing_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["audit", "export", "--since", "yesterday"])
    assert exit_info.value.code == 2
    assert "ISO 8601" in capsys.readouterr().err
    missing = f"sqlite:///{tmp_path / 'nothing.db'}"
    code, _, err = _cli(capsys, missing, "verify")
    assert code == 2
    assert "no store at" in err
    assert not (tmp_path / "nothing.db").exists()
