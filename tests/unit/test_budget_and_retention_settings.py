"""The verification budget and the mandate retention are settings (issue 16, issue 18), read
from the environment (``TONGXING_VERIFICATION_MISSES``, ``TONGXING_VERIFICATION_HOLD``,
``TONGXING_MANDATE_RETENTION``), with validated ranges and the former constants as defaults."""

from __future__ import annotations

import datetime
import secrets
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.housekeeping import MANDATE_RETENTION, ExpiredRecordPurge
from gateway.proofing import VERIFICATION_HOLD, VERIFICATION_MISSES
from gateway.services import build_services
from gateway.settings import Settings

DAY = datetime.timedelta(days=1)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in ("NATIONAL_SECRET", "PAIRWISE_SECRET", "ADMIN_TOKEN", "SESSION_SECRET"):
        monkeypatch.setenv(f"TONGXING_{name}", secrets.token_urlsafe(32))
    monkeypatch.setenv("TONGXING_MFA_SECRET", secrets.token_urlsafe(32))
    monkeypatch.setenv("TONGXING_ISSUER", "https://tongxing.example.cn")
    monkeypatch.setenv("TONGXING_DATA_DIR", str(tmp_path))
    return monkeypatch


def test_the_defaults_are_five_misses_in_a_day_and_thirty_days(env: pytest.MonkeyPatch) -> None:
    settings = Settings()  # type: ignore[call-arg]
    assert (settings.verification_misses, settings.verification_hold) == (5, DAY)
    assert (VERIFICATION_MISSES, VERIFICATION_HOLD) == (5, DAY)
    assert settings.mandate_retention == MANDATE_RETENTION == 30 * DAY


def test_the_environment_sets_them(env: pytest.MonkeyPatch) -> None:
    env.setenv("TONGXING_VERIFICATION_MISSES", "3")
    env.setenv("TONGXING_VERIFICATION_HOLD", "PT12H")
    env.setenv("TONGXING_MANDATE_RETENTION", "P90D")
    settings = Settings()  # type: ignore[call-arg]
    assert settings.verification_misses == 3
    assert settings.verification_hold == datetime.timedelta(hours=12)
    assert settings.mandate_retention == 90 * DAY


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VERIFICATION_MISSES", "0"),
        ("VERIFICATION_MISSES", "101"),
        ("VERIFICATION_HOLD", "PT30S"),
        ("VERIFICATION_HOLD", "P31D"),
        ("MANDATE_RETENTION", "PT1H"),
        ("MANDATE_RETENTION", "P3651D"),
    ],
)
def test_values_out_of_range_stop_the_start(env: pytest.MonkeyPatch, name: str, value: str) -> None:
    env.setenv(f"TONGXING_{name}", value)
    with pytest.raises(ValidationError, match=name.lower()):
        Settings()  # type: ignore[call-arg]


def test_the_purge_keeps_ended_mandates_as_long_as_the_setting_says(
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("TONGXING_MANDATE_RETENTION", "P7D")
    env.setenv("TONGXING_CREATE_KEYS", "true")
    services = build_services(Settings())  # type: ignore[call-arg]
    try:
        assert isinstance(services.purge, ExpiredRecordPurge)
        assert services.purge.mandate_retention == 7 * DAY
    finally:
        services.close()
