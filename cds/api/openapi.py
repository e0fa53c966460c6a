"""OpenAPI: the service routes read their bodies with orjson (one parse, our own 400s), so the
request models are added to the generated schema here for /docs and API fuzzers."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from cds.hooks.models import CdsRequest, FeedbackRequest

_REF = "#/components/schemas/{model}"
_BODY_MODELS: tuple[type[BaseModel], ...] = (CdsRequest, FeedbackRequest)


def _component_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in _BODY_MODELS:
        schema = model.model_json_schema(ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                _component_schemas()
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
