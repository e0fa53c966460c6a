"""When raw FHIR JSON is malformed: set invalid resources aside instead of failing.

Fact builders read raw JSON for speed and validate (fhir.resources.R4B) only what they use. A
resource with a wrong-typed field (a list where FHIR has an object, a number for a date) can
still trip a builder before validation. Then the evaluation is repeated without the resources
that are not valid FHIR R4; those resources are named on the data card (KAP-DATA-001), so the
checks that needed them are visibly missing, never silently passed.

Which resources to set aside: first the ones the failing builder was reading when it raised
(found in the frames of the traceback, and validated), a few rounds at most; only if that does
not clear it, every resource of the request is validated. Validating all of a 50,000-resource
chart takes seconds; the resource that tripped a builder is nearly always in its frames.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from cds.errors import RequestInvalid
from cds.facts.fhir import ref, validate_r4b
from cds.facts.triage import bundle_resources
from cds.pipeline_types import PatientData

# What a builder raises when JSON does not have the shape FHIR R4 promises.
MALFORMED_DATA = (TypeError, AttributeError, ValueError, KeyError, IndexError)
CONTEXT_BUNDLES = ("draftOrders", "appointments")
# Rounds of "set aside what the builder was reading" before validating everything.
TARGETED_ROUNDS = 3
_FACTS_PACKAGE = "/cds/facts/"

T = TypeVar("T")
Removed = list[tuple[str, str]]


def check_context_resources(context: dict[str, Any]) -> None:
    """The hook's own resources (the draft orders, the appointment being booked) must be valid
    FHIR R4: a malformed order is the EHR's error to fix, answered with HTTP 400."""
    for key in CONTEXT_BUNDLES:
        for index, resource in enumerate(bundle_resources(context.get(key))):
            problem = validate_r4b(resource)
            if problem is not None:
                raise RequestInvalid(
                    f"context.{key}.entry[{index}].resource is not valid FHIR R4 ({problem})"
                )


def without_invalid(data: PatientData) -> tuple[PatientData, list[tuple[str, str]]]:
    """The data with every resource that is not valid FHIR R4 removed, and what was removed."""
    kept: dict[str, list[dict[str, Any]]] = {}
    removed: list[tuple[str, str]] = []
    for resource_type, resources in data.resources.items():
        for resource in resources:
            problem = validate_r4b(resource) if isinstance(resource, dict) else "not an object"
            if problem is None:
                kept.setdefault(resource_type, []).append(resource)
            else:
                removed.append(
                    (ref(resource) if isinstance(resource, dict) else resource_type, problem)
                )
    return PatientData(kept, dict(data.outcomes), dict(data.reasons)), removed


def retry_without_malformed(
    run: Callable[[PatientData, Removed], T], data: PatientData, error: BaseException
) -> T:
    """``run`` again, without the invalid resources that made it raise ``error``."""
    removed: Removed = []
    for _round in range(TARGETED_ROUNDS):
        suspects = _invalid_suspects(error.__traceback__, data)
        if not suspects:
            break
        data = _without(data, suspects)
        removed += [(ref(r), problem) for r, problem in suspects]
        try:
            return run(data, list(removed))
        except MALFORMED_DATA as again:
            error = again
    clean, others = without_invalid(data)
    return run(clean, removed + others)


def _invalid_suspects(
    traceback: TracebackType | None, data: PatientData
) -> list[tuple[dict[str, Any], str]]:
    """The resources of ``data`` that fact-builder frames of the traceback held when it was
    raised (innermost first), which are not valid FHIR R4, with the reason."""
    frames = []
    while traceback is not None:
        if _FACTS_PACKAGE in traceback.tb_frame.f_code.co_filename.replace("\\", "/"):
            frames.append(traceback.tb_frame)
        traceback = traceback.tb_next
    held = {id(r) for resources in data.resources.values() for r in resources}
    found: dict[int, tuple[dict[str, Any], str]] = {}
    for frame in reversed(frames):
        for value in frame.f_locals.values():
            if isinstance(value, dict) and id(value) in held and id(value) not in found:
                problem = validate_r4b(value)
                if problem is not None:
                    found[id(value)] = (value, problem)
    return list(found.values())


def _without(data: PatientData, resources: list[tuple[dict[str, Any], str]]) -> PatientData:
    drop = {id(r) for r, _problem in resources}
    kept = {
        resource_type: [r for r in items if id(r) not in drop]
        for resource_type, items in data.resources.items()
    }
    return PatientData(kept, dict(data.outcomes), dict(data.reasons))
