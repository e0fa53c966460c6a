"""OpenAPI: the service routes read their bodies with orjson (one parse, our own 400s), so the
request models are added to the generated schema here for /docs and API fuzzers.

The generated description is also corrected where FastAPI's defaults do not match what the
service answers: request validation errors are 400 OperationOutcomes (not FastAPI's 422), every
error body is an OperationOutcome, bodies over the limit get 413, and ``service_id`` is one of
the registered service ids (so fuzzers reach the services instead of only the 404 path)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from cds.api.docs_examples import example_requests
from cds.api.problem import ERROR_CODE_SYSTEM, operation_outcome
from cds.config import Settings
from cds.examples import examples_dir
from cds.hooks.models import CdsRequest, FeedbackRequest
from cds.hooks.registry import SERVICES
from cds.security.auth import OPEN_PATHS

_REF = "#/components/schemas/{model}"
_BODY_MODELS: tuple[type[BaseModel], ...] = (CdsRequest, FeedbackRequest)


def _component_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in _BODY_MODELS:
        schema = model.model_json_schema(ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


_OUTCOME = "OperationOutcome"
_OUTCOME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "FHIR OperationOutcome; issue[0].details.coding[0] is the kap-cds error code "
    "(system urn:kap-cds:error), details.text what is wrong, expression the offending fields",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"const": "OperationOutcome"},
        "issue": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["severity", "code", "details"],
                "properties": {
                    "severity": {"const": "error"},
                    "code": {"type": "string", "description": "FHIR issue type"},
                    "details": {
                        "type": "object",
                        "properties": {
                            "coding": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "system": {"const": ERROR_CODE_SYSTEM},
                                        "code": {"type": "string", "pattern": "^CDS-[0-9]{4}$"},
                                    },
                                },
                            },
                            "text": {"type": "string"},
                        },
                    },
                    "expression": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}
JWT_SCHEME = "cdsHooksJwt"
_JWT_SCHEME: dict[str, Any] = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "CDS Hooks 2.0 client JWT, signed by an issuer in KAP_CDS_TRUSTED_ISSUERS "
    "(iss, aud = the URL called, exp, iat, jti; optional tenant). Required on every path but "
    "/healthz, /readyz, /metrics and the documentation when trusted issuers are configured.",
}


@dataclass(frozen=True)
class ErrorDoc:
    code: str
    description: str
    detail: str
    expression: tuple[str, ...] = ()


ERRORS: dict[str, ErrorDoc] = {
    "400": ErrorDoc(
        "CDS-1400",
        "Malformed or invalid request (OperationOutcome names the field)",
        "context.patientId: Field required",
        ("context.patientId",),
    ),
    "401": ErrorDoc("CDS-1401", "Authentication failed (no detail, by design)", "unauthorized"),
    "404": ErrorDoc("CDS-1404", "Unknown service id or path", "no CDS service with id 'kap-x'"),
    "412": ErrorDoc(
        "CDS-1412",
        "Required data unavailable: the patient could be had neither from prefetch nor from "
        "fhirServer",
        "required prefetch unavailable: patient",
        ("prefetch.patient",),
    ),
    "413": ErrorDoc(
        "CDS-1413", "Request body larger than KAP_CDS_MAX_BODY_BYTES", "request body too large"
    ),
    "415": ErrorDoc(
        "CDS-1415", "Content-Type is not application/json", "Content-Type must be application/json"
    ),
    "429": ErrorDoc("CDS-1429", "Too many requests from this client", "too many requests"),
    "503": ErrorDoc(
        "CDS-1503",
        "Not ready (no rules loaded), busy (KAP_CDS_MAX_CONCURRENT_CALLS), past "
        "KAP_CDS_REQUEST_TIMEOUT_SECONDS, or the decision could not be kept in the audit trail; "
        "retry after Retry-After seconds",
        "no rules loaded",
    ),
}
_BODY_ERRORS = ("400", "413", "415", "429")
_SERVICE_ERRORS = ("404", "412")


def _error_response(status: str) -> dict[str, Any]:
    doc = ERRORS[status]
    example = operation_outcome(doc.code, doc.detail, int(status), list(doc.expression) or None)
    return {
        "description": doc.description,
        "content": {
            "application/json": {
                "schema": {"$ref": _REF.format(model=_OUTCOME)},
                "example": example,
            }
        },
    }


def _statuses(path: str, operation: dict[str, Any], protected: bool) -> list[str]:
    statuses = ["503"]
    if protected:
        statuses.append("401")
    if "requestBody" in operation:
        statuses += _BODY_ERRORS
    if path.startswith("/cds-services/"):
        statuses.append("404")
        if not path.endswith("/feedback"):
            statuses.append("412")
    return statuses


def _correct_operation(path: str, operation: dict[str, Any], protected: bool) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    statuses = _statuses(path, operation, protected)
    if responses.pop("422", None) is not None:  # our handler answers 400, never 422
        statuses.append("400")
    for status in statuses:
        responses[status] = _error_response(status)
    for status, response in responses.items():
        if status.startswith(("4", "5")) and "content" not in response:
            response["content"] = {
                "application/json": {"schema": {"$ref": _REF.format(model=_OUTCOME)}}
            }
    for parameter in operation.get("parameters", []):
        if parameter.get("in") == "path" and parameter.get("name") == "service_id":
            parameter["schema"] = {"type": "string", "enum": [s.id for s in SERVICES]}
    if protected:
        operation["security"] = [{JWT_SCHEME: []}]


def _add_examples(schema: dict[str, Any], examples: dict[str, Any]) -> None:
    """One example request per service on ``POST /cds-services/{service_id}``."""
    operation = schema["paths"].get("/cds-services/{service_id}", {}).get("post")
    if not operation or not examples:
        return
    content = operation["requestBody"]["content"]["application/json"]
    content["examples"] = examples


def _correct(schema: dict[str, Any], protected: frozenset[str], examples: dict[str, Any]) -> None:
    """``protected``: the paths that need a JWT (none when the service runs open)."""
    for path, path_item in schema.get("paths", {}).items():
        for operation in path_item.values():
            _correct_operation(path, operation, path in protected)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas[_OUTCOME] = _OUTCOME_SCHEMA
    components.setdefault("securitySchemes", {})[JWT_SCHEME] = _JWT_SCHEME
    _add_examples(schema, examples)


def install_openapi(app: FastAPI, settings: Settings) -> None:
    auth = settings.auth_enabled
    description = (app.description or "") + (
        "\n\nAuthentication: a CDS Hooks JWT (bearer) on every call."
        if auth
        else "\n\nAuthentication: OFF (no KAP_CDS_TRUSTED_ISSUERS); the service runs open."
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=description, routes=app.routes
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                _component_schemas()
            )
            open_paths = OPEN_PATHS | ({"/governance"} if settings.governance_open else set())
            paths = frozenset(schema.get("paths", {}))
            protected = paths - open_paths if auth else frozenset()
            _correct(schema, protected, example_requests(examples_dir(settings)))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
