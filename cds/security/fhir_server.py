"""The ``fhirServer`` a request names must be https: we send it the patient's access token."""

from __future__ import annotations

from urllib.parse import urlsplit

from cds.config import Settings
from cds.errors import RequestInvalid


def check_fhir_server_url(url: str, settings: Settings) -> None:
    """Raise ``RequestInvalid`` unless ``url`` is https (http allowed only when the settings say
    so, for development against a local FHIR server)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    allowed = scheme == "https" or (scheme == "http" and settings.allow_insecure_fhir_server)
    if allowed and parts.hostname:
        return
    raise RequestInvalid("fhirServer must use https")
