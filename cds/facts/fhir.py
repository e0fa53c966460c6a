"""Small, fast readers for raw FHIR R4 JSON, and validation with the R4B models.

Fact builders first look at raw JSON (codes, status) to decide whether a resource matters at
all, then validate only the resources they use with ``fhir.resources.R4B`` (R4B is
wire-compatible with R4 for these resources; the package's default models are R5 and must never
read EHR data). Validating every resource of a large bundle would cost more than the whole
request budget.
"""

from __future__ import annotations

import hashlib
import importlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from pydantic import BaseModel, ValidationError

from cds.ruleset.valuesets import SYSTEM_ALIASES

Resource = dict[str, Any]


def codings(concept: Any) -> Iterator[tuple[str | None, str | None, str | None]]:
    """(system, code, display) of every coding in a CodeableConcept (raw JSON); the system as its
    canonical URI (an HL7 OID alias reads as the URI the value sets use).

    Reads through shape deviations (a list of concepts where R4 has one, one object for
    ``coding``) so that such a resource is still found by its code; the rules then validate it,
    and it is repaired (cds/fhir/tolerate.py) or named on the data card, never silently
    skipped."""
    for one in concept if isinstance(concept, list) else (concept,):
        found = one.get("coding") if isinstance(one, dict) else None
        for coding in (found,) if isinstance(found, dict) else found or ():
            if isinstance(coding, dict):
                system = _text(coding.get("system"))
                yield (
                    SYSTEM_ALIASES.get(system, system) if system else None,
                    _text(coding.get("code")),
                    _text(coding.get("display")),
                )


def _text(value: Any) -> str | None:
    """FHIR strings only: a wrong-typed value reads as absent instead of crashing a reader."""
    return value if isinstance(value, str) else None


def concept_text(concept: Any) -> str:
    """Human text of a CodeableConcept: its text, else its first display."""
    if not isinstance(concept, dict):
        return ""
    if isinstance(concept.get("text"), str) and concept["text"]:
        return str(concept["text"])
    for _system, code, display in codings(concept):
        if display or code:
            return str(display or code)
    return ""


def code_of(concept: Any, system: str) -> str | None:
    for sys, code, _display in codings(concept):
        if sys == system and code:
            return code
    return None


def status_code(concept: Any) -> str | None:
    """First code of a status CodeableConcept (Condition.clinicalStatus etc.)."""
    for _system, code, _display in codings(concept):
        if code:
            return code
    return None


def parse_time(value: Any, tz: ZoneInfo) -> datetime | None:
    """A FHIR date, dateTime or instant as an aware datetime (dates are local midnight)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        if len(value) == 4:
            return datetime(int(value), 1, 1, tzinfo=tz)
        if len(value) == 7:
            return datetime(int(value[:4]), int(value[5:7]), 1, tzinfo=tz)
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), tzinfo=tz)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def observation_time(observation: Resource, tz: ZoneInfo) -> datetime | None:
    """When an Observation holds (catalog 3.2): effective[x] (a period's end, else its start),
    else ``issued``."""
    period = observation.get("effectivePeriod")
    period = period if isinstance(period, dict) else {}
    for value in (
        observation.get("effectiveDateTime"),
        observation.get("effectiveInstant"),
        period.get("end"),
        period.get("start"),
        observation.get("issued"),
    ):
        moment = parse_time(value, tz)
        if moment is not None:
            return moment
    return None


def condition_onset(condition: Resource, tz: ZoneInfo) -> datetime | None:
    """When a Condition began: onset[x] (a period's start), else its recordedDate."""
    period = condition.get("onsetPeriod")
    period = period if isinstance(period, dict) else {}
    for value in (
        condition.get("onsetDateTime"),
        period.get("start"),
        condition.get("recordedDate"),
    ):
        moment = parse_time(value, tz)
        if moment is not None:
            return moment
    return None


def condition_abatement(condition: Resource, tz: ZoneInfo) -> datetime | None:
    """When a Condition ended, if it says so with a date (abatementDateTime or a period)."""
    period = condition.get("abatementPeriod")
    period = period if isinstance(period, dict) else {}
    for value in (condition.get("abatementDateTime"), period.get("end"), period.get("start")):
        moment = parse_time(value, tz)
        if moment is not None:
            return moment
    return None


def ref(resource: Resource) -> str:
    return f"{resource.get('resourceType', 'Resource')}/{resource.get('id', '?')}"


def reference_id(reference: Any) -> str | None:
    """The id part of a Reference ("Patient/12" -> "12"; "#med1" -> "#med1")."""
    if isinstance(reference, dict) and isinstance(reference.get("reference"), str):
        value: str = reference["reference"]
        return value if value.startswith("#") else value.rstrip("/").rsplit("/", 1)[-1]
    return None


def days_between(earlier: datetime, later: datetime) -> float:
    return round((later - earlier) / timedelta(days=1), 2)


def hours_between(earlier: datetime, later: datetime) -> float:
    return round((later - earlier) / timedelta(hours=1), 2)


def minutes_between(earlier: datetime, later: datetime) -> float:
    return round((later - earlier) / timedelta(minutes=1), 1)


def display_time(moment: datetime, tz: ZoneInfo) -> str:
    """As a clinician writes it, with the facility zone: "20 Nov 2026 15:00 PST"."""
    local = moment.astimezone(tz)
    return f"{local.day} {local:%b %Y %H:%M} {local.tzname() or ''}".rstrip()


def display_date(moment: datetime, tz: ZoneInfo) -> str:
    """ "20 Nov 2026" (no zone: a calendar day in the facility's zone)."""
    local = moment.astimezone(tz)
    return f"{local.day} {local:%b %Y}"


@cache
def r4b_model(resource_type: str) -> type[BaseModel] | None:
    """The fhir.resources.R4B model class for a resource type, or None if there is none."""
    module_name = f"fhir.resources.R4B.{resource_type.lower()}"
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    model = getattr(module, resource_type, None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def validate_r4b(resource: Resource) -> str | None:
    """Validate one resource as FHIR R4 (R4B models). Returns None when valid, else a reason
    that names the failing field but never its value (values may be patient data)."""
    try:
        key = hashlib.blake2b(
            orjson.dumps(resource, option=orjson.OPT_SORT_KEYS), digest_size=16
        ).digest()
    except TypeError:  # not JSON at all (e.g. a NaN float): let the model say why
        return _validate(resource)
    return _VALIDATED.get_or_compute(key, lambda: _validate(resource))


def _validate(resource: Resource) -> str | None:
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        return "resourceType missing"
    model = r4b_model(resource_type)
    if model is None:
        return f"unknown resourceType {resource_type}"
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc'])}: {err['type']}"
    return None


class _ValidationCache:
    """Validation results by content digest, bounded (least recently used goes first).

    EHRs send the same resources again and again — order-select then order-sign, every chart
    open — and model validation costs ~100 µs a resource, more than the rest of an evaluation.
    A resource whose JSON is byte-for-byte the same (keys sorted) validates the same, so its
    result is reused; any change to the content is a new key. Only the digest and the result
    (a field path and error type, never values) are kept.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._results: OrderedDict[bytes, str | None] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_compute(self, key: bytes, compute: Callable[[], str | None]) -> str | None:
        with self._lock:
            if key in self._results:
                self._results.move_to_end(key)
                return self._results[key]
        result = compute()
        with self._lock:
            self._results[key] = result
            if len(self._results) > self._capacity:
                self._results.popitem(last=False)
        return result


_VALIDATED = _ValidationCache(capacity=50_000)
