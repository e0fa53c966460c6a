"""Harmless deviations from FHIR R4 JSON, repaired where the request is read.

EHRs and their simulators send JSON that is FHIR in all but shape: the CDS Hooks sandbox's draft
order carries ``category`` as one object where R4 has a list. Left alone, the strict R4 model
sets the whole resource aside and every check that reads it reports "could not run". Where the
intent is unambiguous the shape is repaired in place, before any check reads it:

- a single value where R4 has a list (``"category": {...}``) becomes a one-item list;
- a one-item list where R4 has a single value (``"code": [{...}]``) becomes that item.

Nothing else is guessed: a list of several items where one is allowed, a wrong type, or a bad
value is left as sent, and the data card names the malformed element. The element paths come
from the ``fhir.resources.R4B`` models (the R4 structure), learnt once per type.
"""

from __future__ import annotations

import importlib
import logging
import types
import typing
from collections.abc import Iterable
from functools import cache
from typing import Any

from pydantic import BaseModel

logger = logging.getLogger(__name__)

Json = dict[str, Any]


class _Element(typing.NamedTuple):
    many: bool  # R4 cardinality 0..* / 1..*
    model: type[BaseModel] | None  # the complex type to descend into; None for primitives


Shape = dict[str, _Element]


def tolerate(resource: Json) -> list[str]:
    """Repair ``resource`` in place; the repaired element paths (for the log: no values)."""
    resource_type = resource.get("resourceType")
    model = _resource_model(resource_type) if isinstance(resource_type, str) else None
    if model is None:
        return []
    repaired: list[str] = []
    _repair(resource, _shape(model), resource_type or "", repaired)
    if repaired:
        logger.info("tolerated FHIR shape deviations: %s", ", ".join(repaired))
    return repaired


def tolerate_all(resources: Iterable[Json]) -> int:
    """Repair each resource in place; how many were changed."""
    return sum(1 for resource in resources if isinstance(resource, dict) and tolerate(resource))


def _repair(obj: Json, shape: Shape, path: str, repaired: list[str]) -> None:
    # The hot loop of every request (each element of each resource): paths are built only for
    # descents and repairs, and a primitive with the right cardinality costs two lookups.
    for name, value in obj.items():
        element = shape.get(name)
        if element is None or value is None:
            continue
        many, model = element
        if many:
            if not isinstance(value, list):
                value = obj[name] = [value]
                repaired.append(f"{path}.{name}")
        elif value.__class__ is list and len(value) == 1:
            value = obj[name] = value[0]
            repaired.append(f"{path}.{name}")
        if model is not None:
            _descend(value, _shape(model), f"{path}.{name}", repaired)


def _descend(value: Any, shape: Shape, path: str, repaired: list[str]) -> None:
    if isinstance(value, dict):
        _repair(value, shape, path, repaired)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                _repair(item, shape, path, repaired)


@cache
def _resource_model(resource_type: str) -> type[BaseModel] | None:
    if not resource_type.isalpha():
        return None
    try:
        module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    except ImportError:
        return None
    model = getattr(module, resource_type, None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


@cache
def _shape(model: type[BaseModel]) -> Shape:
    """JSON element name -> cardinality and complex type, from the model's field annotations."""
    shape: Shape = {}
    for name, field in model.model_fields.items():
        many, inner = _unwrap(field.annotation)
        shape[field.alias or name] = _Element(many, _complex_model(inner))
    return shape


def _unwrap(annotation: Any) -> tuple[bool, Any]:
    """``Optional[List[X]]`` -> (True, X); ``Optional[X]`` -> (False, X)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _unwrap(args[0])
    if origin is list and args:
        return True, args[0]
    return False, annotation


def _complex_model(annotation: Any) -> type[BaseModel] | None:
    # fhir.resources types complex elements as abstract ``XType`` classes that name their model.
    # Contained resources (``ResourceType``) are polymorphic: not descended into.
    get_model = getattr(annotation, "get_model_klass", None)
    if get_model is None or getattr(annotation, "__name__", "") == "ResourceType":
        return None
    try:
        model = get_model()
    except (ImportError, AttributeError, TypeError):
        return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None
