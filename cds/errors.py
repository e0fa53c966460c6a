"""The errors kap-cds raises on purpose, each with a stable code.

The web layer maps them to HTTP statuses (see ``cds.api.errors``); the code and a short detail are
all a client ever sees.
"""

from __future__ import annotations


class CdsError(Exception):
    """Base class: ``code`` is stable and documented, ``detail`` is safe to show a client."""

    code = "CDS-1000"
    http_status = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class RequestInvalid(CdsError):
    """Malformed body, or not CDS Hooks 2.0; ``detail`` names the field."""

    code = "CDS-1400"
    http_status = 400


class ServiceNotFound(CdsError):
    code = "CDS-1404"
    http_status = 404


class PayloadTooLarge(CdsError):
    code = "CDS-1413"
    http_status = 413


class DataUnavailable(CdsError):
    """Data a service requires could not be had from prefetch or the FHIR server (HTTP 412)."""

    code = "CDS-1412"
    http_status = 412

    def __init__(self, detail: str, missing: list[str]) -> None:
        super().__init__(detail)
        self.missing = missing


class AuthenticationFailed(CdsError):
    """Any JWT failure. The reason is logged (without the token); the client gets no detail."""

    code = "CDS-1401"
    http_status = 401


class RuleLoadError(CdsError):
    """A rule set that cannot be loaded: names file, rule id, field and reason."""

    code = "CDS-2001"

    def __init__(self, file: str, rule_id: str | None, field: str | None, reason: str) -> None:
        where = file + (f" [{rule_id}]" if rule_id else "") + (f" {field}" if field else "")
        super().__init__(f"{where}: {reason}")
        self.file = file
        self.rule_id = rule_id
        self.field = field
        self.reason = reason


class EngineError(CdsError):
    """The rules engine failed while evaluating (an action raised, or state was left behind)."""

    code = "CDS-3001"


class AuditUnavailable(CdsError):
    """Neither the audit database nor the local spool could keep the record of a decision:
    the decision is not answered (HTTP 503), because an unrecorded decision must not reach the
    clinician."""

    code = "CDS-1503"
    http_status = 503
