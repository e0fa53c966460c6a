"""KAP_CDS_FACILITY_TIMEZONE: required outside development, reported by /readyz, validated."""

from __future__ import annotations

import logging

import pytest
from api_fakes import FIXED_NOW, FakeAudit, FakeEvaluator
from fastapi.testclient import TestClient
from pydantic import ValidationError

from cds.api.server import check_facility_zone
from cds.app import create_app
from cds.config import Settings, TrustedIssuer

EHR = TrustedIssuer(iss="https://ehr.example.org", jwks={"keys": []})


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def test_production_refuses_to_start_without_a_zone() -> None:
    with pytest.raises(SystemExit, match="KAP_CDS_FACILITY_TIMEZONE is not set"):
        check_facility_zone(_settings(trusted_issuers=[EHR]), "0.0.0.0")
    with pytest.raises(SystemExit, match="KAP_CDS_FACILITY_TIMEZONE is not set"):
        check_facility_zone(_settings(trusted_issuers=[EHR]), "127.0.0.1")  # JWT = not dev


def test_production_starts_with_a_zone(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cds.api.server")
    settings = _settings(trusted_issuers=[EHR], facility_timezone="America/Los_Angeles")
    check_facility_zone(settings, "0.0.0.0")
    assert "facility time zone: America/Los_Angeles" in caplog.text


def test_development_starts_in_utc_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="cds.api.server")
    check_facility_zone(_settings(), "127.0.0.1")  # open on loopback: `make run`, the tests
    assert "facility time zone not set" in caplog.text and "UTC" in caplog.text


def test_an_unknown_zone_is_a_settings_error_naming_the_variable() -> None:
    with pytest.raises(ValidationError, match="KAP_CDS_FACILITY_TIMEZONE 'Mars/Base'"):
        _settings(facility_timezone="Mars/Base")


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        (None, {"zone": "UTC", "source": "default"}),
        ("Europe/Berlin", {"zone": "Europe/Berlin", "source": "KAP_CDS_FACILITY_TIMEZONE"}),
    ],
)
def test_readyz_names_the_zone_and_where_it_comes_from(
    zone: str | None, expected: dict[str, str]
) -> None:
    app = create_app(
        _settings(facility_timezone=zone),
        evaluator=FakeEvaluator(),
        audit=FakeAudit(),
        clock=lambda: FIXED_NOW,
    )
    with TestClient(app) as client:
        reported = client.get("/readyz").json()["facility_timezone"]
    assert {k: reported[k] for k in ("zone", "source")} == expected
    assert ("warning" in reported) is (zone is None)


def test_the_evaluator_judges_days_in_the_configured_zone() -> None:
    from cds.evaluator import build_evaluator

    evaluator = build_evaluator(_settings(facility_timezone="America/Los_Angeles"))
    assert str(evaluator.tz) == "America/Los_Angeles"
