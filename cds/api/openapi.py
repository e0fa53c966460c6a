"""OpenAPI: the service routes read their bodies with orjson (one parse, our own 400s), so the
request models are added to the generated schema here for /docs and API fuzzers.

The generated description is also corrected where FastAPI's defaults do not match what the
service answers: request validation errors are 400 OperationOutcomes (not FastAPI's 422), every
error body is an OperationOutcome, bodies over the limit get 413, and ``service_id`` is one of
the registered service ids (so fuzzers reach the services instead of only the 404 path)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from cds.hooks.models import CdsRequest, FeedbackRequest
from cds.hooks.registry import SERVICES

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
    "description": "FHIR OperationOutcome; details.coding[0] is the kap-cds error code",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"const": "OperationOutcome"},
        "issue": {"type": "array", "minItems": 1, "items": {"type": "object"}},
    },
}
_INVALID = "Malformed or invalid request (OperationOutcome names the field)"
_TOO_LARGE = "Request body larger than KAP_CDS_MAX_BODY_BYTES"
_NOT_JSON = "Content-Type is not application/json"
_BUSY = "Busy, or past the request deadline: retry after Retry-After seconds"


def _outcome_content() -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(model=_OUTCOME)}}}


def _correct_operation(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    if responses.pop("422", None) is not None:  # our handler answers 400, never 422
        responses.setdefault("400", {"description": _INVALID})
    if "requestBody" in operation:
        responses.setdefault("400", {"description": _INVALID})
        responses.setdefault("413", {"description": _TOO_LARGE})
        responses.setdefault("415", {"description": _NOT_JSON})
        responses.setdefault("503", {"description": _BUSY})
    for status, response in responses.items():
        if status.startswith(("4", "5")):
            response["content"] = _outcome_content()
    for parameter in operation.get("parameters", []):
        if parameter.get("in") == "path" and parameter.get("name") == "service_id":
            parameter["schema"] = {"type": "string", "enum": [s.id for s in SERVICES]}


def _correct(schema: dict[str, Any]) -> None:
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            _correct_operation(operation)
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas[_OUTCOME] = _OUTCOME_SCHEMA


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                _component_schemas()
            )
            _correct(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
