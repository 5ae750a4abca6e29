"""Prometheus metrics (issue 14): the sink over the event stream, the request hooks, the store's
statement timing and ``/metrics``. The families are module globals shared by every gateway of
the test process, so each test compares a sample before and after."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from gateway import metrics, observe
from gateway.app import create_app
from gateway.services import Services, build_services
from gateway.settings import Settings

TOKEN = secrets.token_urlsafe(32)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


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
    client = create_app(services=services).test_client()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    portal = {"names": {"zh": "门户", "en": "Portal"}, "owner": "zj"}
    portal["redirect_uris"] = ["https://portal.example.cn/callback"]
    assert client.put("/admin/v1/portals/conf", json=portal, headers=headers).status_code == 201
    return client


def known(*names: str) -> metrics.MetricsSink:
    return metrics.MetricsSink(lambda code: code in names, lambda client_id: client_id in names)


def test_the_sink_counts_sign_ins_by_region_portal_level_and_reason() -> None:
    sink = known("zj", "tax")
    started = sample("tongxing_signins_started_total", region="none", portal="tax")
    completed = sample("tongxing_signins_completed_total", region="zj", portal="tax", level="loa2")
    failed = sample("tongxing_signins_failed_total", region="zj", portal="tax", reason="mix_up")
    denied = sample(
        "tongxing_signins_failed_total", region="zj", portal="tax", reason="access_denied"
    )
    sink(observe.SignInStarted(portal="tax", region=None))
    sink(observe.SignInCompleted(subject="s-1", portal="tax", region="zj", level="loa2"))
    sink(observe.SignInCompleted(subject="s-2", portal="tax", region="zj", level="loa2"))
    sink(observe.SignInFailed(portal="tax", region="zj", reason="access_denied"))
    assert sample("tongxing_signins_started_total", region="none", portal="tax") == started + 1
    assert (
        sample("tongxing_signins_completed_total", region="zj", portal="tax", level="loa2")
        == completed + 2
    )
    assert (
        sample("tongxing_signins_failed_total", region="zj", portal="tax", reason="access_denied")
        == denied + 1
    )
    # mix_up is no code the gateway has (its is issuer_mismatch): not a label value
    sink(observe.SignInFailed(portal="tax", region="zj", reason="mix_up"))
    assert (
        sample("tongxing_signins_failed_total", region="zj", portal="tax", reason="mix_up")
        == failed
    )


def test_names_nobody_registered_never_become_label_values() -> None:
    """A failed sign-in may carry what a request said: each invented client id, region code or
    reason would otherwise be one more time series (THREAT_MODEL row 7)."""
    sink = known("zj", "tax")
    before = sample(
        "tongxing_signins_failed_total",
        region="unregistered",
        portal="unregistered",
        reason="other",
    )
    for n in range(20):
        sink(observe.SignInFailed(portal=f"made-up-{n}", region=f"x{n}", reason=f"nonsense {n}"))
    assert (
        sample(
            "tongxing_signins_failed_total",
            region="unregistered",
            portal="unregistered",
            reason="other",
        )
        == before + 20
    )
    assert not any(
        s.labels.get("portal", "").startswith("made-up")
        for family in REGISTRY.collect()
        for s in family.samples
    )


def test_the_sink_counts_tokens_step_ups_lock_outs_logouts_and_deliveries() -> None:
    sink = known("zj", "tax")
    tokens = sample("tongxing_tokens_issued_total", portal="tax", grant_type="refresh_token")
    step_ups = sample("tongxing_step_ups_total", method="totp", outcome="wrong")
    lockouts = sample("tongxing_lockouts_total")
    logouts = sample("tongxing_logouts_total", region="zj", initiator="person")
    failed = sample("tongxing_backchannel_logout_deliveries_total", portal="tax", outcome="failed")
    sink(observe.TokenIssued(portal="tax", grant_type="refresh_token"))
    sink(observe.SteppedUp(subject="s-1", method="totp", outcome="wrong"))
    sink(observe.LockedOut(subject="s-1"))
    sink(observe.LoggedOut(subject="s-1", region="zj", initiator="person", portals=("tax",)))
    sink(observe.LogoutDelivered(portal="tax", outcome="failed", attempt=2))
    assert sample("tongxing_tokens_issued_total", portal="tax", grant_type="refresh_token") == (
        tokens + 1
    )
    assert sample("tongxing_step_ups_total", method="totp", outcome="wrong") == step_ups + 1
    assert sample("tongxing_lockouts_total") == lockouts + 1
    assert sample("tongxing_logouts_total", region="zj", initiator="person") == logouts + 1
    assert (
        sample("tongxing_backchannel_logout_deliveries_total", portal="tax", outcome="failed")
        == failed + 1
    )


def test_the_sink_hears_the_gateways_own_event_stream(services: Services) -> None:
    # A portal the registry does not know: the sink of build_services asks the registry.
    before = sample("tongxing_tokens_issued_total", portal="unregistered", grant_type="other")
    services.events.emit(observe.TokenIssued(portal="nobody", grant_type="password"))
    after = sample("tongxing_tokens_issued_total", portal="unregistered", grant_type="other")
    assert after == before + 1


def test_requests_are_counted_by_endpoint_name_never_by_path(client: FlaskClient) -> None:
    jwks = sample("tongxing_http_requests_total", endpoint="discovery.jwks", status="200")
    unmatched = sample("tongxing_http_requests_total", endpoint="unmatched", status="404")
    timed = sample("tongxing_http_request_duration_seconds_count", endpoint="discovery.jwks")
    for n in range(3):
        assert client.get("/jwks").status_code == 200
        assert client.get(f"/no/such/path/{n}").status_code == 404
    assert sample("tongxing_http_requests_total", endpoint="discovery.jwks", status="200") == (
        jwks + 3
    )
    assert sample("tongxing_http_requests_total", endpoint="unmatched", status="404") == (
        unmatched + 3
    )
    assert sample("tongxing_http_request_duration_seconds_count", endpoint="discovery.jwks") == (
        timed + 3
    )


def test_a_request_refused_by_a_hook_is_counted_and_timed(client: FlaskClient) -> None:
    # The undecodable query is refused by a before_request hook (400), before the view runs.
    labels = {"endpoint": "authorize.authorize", "status": "400"}
    before = sample("tongxing_http_requests_total", **labels)
    timed = sample("tongxing_http_request_duration_seconds_count", endpoint="authorize.authorize")
    response = client.get(
        "/authorize",
        environ_overrides={"QUERY_STRING": b"acr_values=\x80".decode("latin-1")},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 400
    assert sample("tongxing_http_requests_total", **labels) == before + 1
    assert (
        sample("tongxing_http_request_duration_seconds_count", endpoint="authorize.authorize")
        == timed + 1
    )


def test_metrics_serves_the_exposition_with_the_active_policy_set(
    client: FlaskClient, services: Services
) -> None:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.content_type.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(answer.get_data(as_text=True))}
    assert "tongxing_http_requests" in families
    policy = {s.labels["digest"]: s.value for s in families["tongxing_policy_set_info"].samples}
    assert policy[services.policy.info.digest] == 1.0


def test_a_new_policy_digest_replaces_the_old_one_in_the_gauge() -> None:
    metrics.show_policy_set("a" * 64)
    metrics.show_policy_set("b" * 64)
    assert sample("tongxing_policy_set_info", digest="a" * 64) == 0.0
    assert sample("tongxing_policy_set_info", digest="b" * 64) == 1.0


def test_store_statements_are_timed_by_kind(client: FlaskClient) -> None:
    selects = sample("tongxing_store_statement_duration_seconds_count", statement="select")
    inserts = sample("tongxing_store_statement_duration_seconds_count", statement="insert")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    portal = {"names": {"zh": "门户二", "en": "Portal 2"}, "owner": "zj"}
    portal["redirect_uris"] = ["https://portal.example.cn/callback"]
    assert client.put("/admin/v1/portals/conf2", json=portal, headers=headers).status_code == 201
    assert client.get("/admin/v1/portals", headers=headers).status_code == 200
    assert sample("tongxing_store_statement_duration_seconds_count", statement="select") > selects
    assert sample("tongxing_store_statement_duration_seconds_count", statement="insert") > inserts


@pytest.mark.parametrize(
    ("statement", "kind"),
    [
        ("SELECT 1", "select"),
        ("  insert INTO t VALUES (1)", "insert"),
        ("UPDATE t SET a = 1", "update"),
        ("DELETE FROM t", "delete"),
        ("BEGIN IMMEDIATE", "other"),
        ("WITH x AS (SELECT 1) SELECT * FROM x", "other"),
    ],
)
def test_statement_kinds(statement: str, kind: str) -> None:
    assert metrics.statement_kind(statement) == kind


def test_every_family_is_named_with_the_prefix_and_its_unit() -> None:
    for family in metrics.FAMILIES:
        (described,) = family.describe()
        assert described.name.startswith("tongxing_")
        if described.type == "histogram":
            assert described.name.endswith("_seconds")


def test_the_cli_imports_no_prometheus_client_before_serve_names_the_directory() -> None:
    """prometheus-client picks per-process or multiprocess values when first imported: the
    ``tongxing`` command must not import it before ``serve --workers`` sets the directory."""
    import subprocess
    import sys

    probe = "import sys, gateway.cli; print('prometheus_client.values' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
