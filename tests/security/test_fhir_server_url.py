"""fhirServer must be https: the service sends the patient's access token there."""

from __future__ import annotations

import pytest
from security_helpers import make_settings

from cds.errors import RequestInvalid
from cds.security.fhir_server import check_fhir_server_url


def test_https_accepted() -> None:
    check_fhir_server_url("https://ehr.example.org/fhir", make_settings())


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
def test_anything_else_refused(url: str) -> None:
    with pytest.raises(RequestInvalid, match="fhirServer must use https"):
        check_fhir_server_url(url, make_settings())


def test_http_allowed_only_when_configured_for_development() -> None:
    check_fhir_server_url(
        "http://localhost:8080/fhir", make_settings(allow_insecure_fhir_server=True)
    )
    with pytest.raises(RequestInvalid):
        check_fhir_server_url("file:///etc/passwd", make_settings(allow_insecure_fhir_server=True))
