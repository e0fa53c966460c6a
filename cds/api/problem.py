"""Error bodies: every non-2xx answer is a FHIR OperationOutcome with our stable error code.

CDS Hooks 2.0 requires an OperationOutcome only for 412; the 3.0 ballot asks for one on every
non-2xx answer, and one shape for all errors is simpler for EHR integrators to log.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

ERROR_CODE_SYSTEM = "urn:kap-cds:error"

# FHIR issue-type codes (http://hl7.org/fhir/issue-type) for our HTTP statuses.
_ISSUE_TYPE = {
    400: "invalid",
    401: "login",
    404: "not-found",
    412: "not-found",
    413: "too-costly",
    415: "not-supported",
    429: "throttled",
    500: "exception",
    503: "timeout",
}


def operation_outcome(
    code: str, detail: str, status: int, expression: list[str] | None = None
) -> dict[str, Any]:
    issue: dict[str, Any] = {
        "severity": "error",
        "code": _ISSUE_TYPE.get(status, "processing"),
        "details": {"coding": [{"system": ERROR_CODE_SYSTEM, "code": code}], "text": detail},
    }
    if expression:
        issue["expression"] = expression
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def problem_response(
    code: str,
    detail: str,
    status: int,
    expression: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        operation_outcome(code, detail, status, expression), status_code=status, headers=headers
    )
