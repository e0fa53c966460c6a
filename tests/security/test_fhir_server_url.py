"""fhirServer is contacted only over https: the service sends the patient's access token there."""

from __future__ import annotations

import pytest
from security_helpers import make_settings

from cds.security.fhir_server import may_contact


def test_https_may_be_contacted() -> None:
    assert may_contact("https://ehr.example.org/fhir", make_settings())
    assert may_contact("HTTPS://ehr.example.org/fhir", make_settings())


@pytest.mark.parametrize(
    "url",
    [
        "http://ehr.example.org/fhir",
        "ftp://ehr.example.org",
        "ehr.example.org/fhir",
        "https:///fhir",
        "",
    ],
)
def test_anything_else_is_not_contacted(url: str) -> None:
    assert not may_contact(url, make_settings())


def test_http_contacted_only_when_configured_for_development() -> None:
    insecure_ok = make_settings(allow_insecure_fhir_server=True)
    assert may_contact("http://localhost:8080/fhir", insecure_ok)
    assert not may_contact("http://localhost:8080/fhir", make_settings())
    assert not may_contact("file:///etc/passwd", insecure_ok)
