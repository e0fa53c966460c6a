"""Whether we may *contact* a request's ``fhirServer``: we send it the patient's access token.

A non-https server is never refused as a request: what the EHR prefetched is evaluated as sent.
Only reading the keys it did not send needs the server, and over plain http the token and the
patient's data would travel in clear text, so then those keys are not read and the data card says
which checks that left unrun (http is allowed only when the settings say so, for development
against a local FHIR server).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from cds.config import Settings


def may_contact(url: str, settings: Settings) -> bool:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    secure = scheme == "https" or (scheme == "http" and settings.allow_insecure_fhir_server)
    return secure and bool(parts.hostname)
