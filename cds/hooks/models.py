"""CDS Hooks 2.0 request models: the service call, one context model per hook, and feedback.

FHIR resources inside ``context`` and ``prefetch`` stay raw dicts: the domain validates only the
resources (and fields) its rules read, which keeps a 200-resource request well under a millisecond
here. Validation failures become ``InvalidField`` errors that name the fields and never echo the
input values (they may hold patient data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cds.errors import RequestInvalid
from cds.fhir.bundles import bundle_resources
from cds.fhir.tolerate import tolerate

# FHIR R4 id and relative-reference grammar. Strict on purpose: these values are substituted
# into the FHIR URLs we fetch with the EHR's access token.
FHIR_ID = r"^[A-Za-z0-9\-.]{1,64}$"
RELATIVE_REFERENCE = r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$"

FhirId = Annotated[str, Field(pattern=FHIR_ID)]
Reference = Annotated[str, Field(pattern=RELATIVE_REFERENCE)]
Json = dict[str, Any]

_MAX_REPORTED_ERRORS = 5


class InvalidField(RequestInvalid):
    """A 400 that names the offending fields (``expression``) without repeating their values."""

    def __init__(self, detail: str, expression: list[str]) -> None:
        super().__init__(detail)
        self.expression = expression


def _bundle(value: Any) -> Any:
    """A FHIR Bundle dict; a bare list of resources (seen in appointment-book examples) is
    wrapped into a collection Bundle so the rest of the service sees one shape."""
    if isinstance(value, list):
        return {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": r} for r in value],
        }
    if not isinstance(value, dict) or value.get("resourceType") != "Bundle":
        raise ValueError("must be a FHIR Bundle")
    if not isinstance(value.get("entry", []), list):
        raise ValueError("Bundle.entry must be an array")
    return value


BundleJson = Annotated[Json, BeforeValidator(_bundle)]


class _Lenient(BaseModel):
    """Hook contexts and extensions may grow; unknown keys are kept, not rejected."""

    model_config = ConfigDict(extra="allow", frozen=True)


class FhirAuthorization(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    # SecretStr keeps the token out of repr(), logs and error messages.
    access_token: SecretStr = Field(min_length=1)
    token_type: Literal["Bearer"]
    expires_in: int = Field(ge=0)
    scope: str = Field(min_length=1)
    subject: str = Field(min_length=1)
    patient: FhirId | None = None


class CdsRequest(BaseModel):
    """The body of ``POST /cds-services/{id}`` (CDS Hooks 2.0, section "Calling a CDS Service")."""

    model_config = ConfigDict(extra="allow", frozen=True)

    hook: str = Field(min_length=1, max_length=100)
    hookInstance: str = Field(min_length=1, max_length=200)  # noqa: N815 (spec field name)
    fhirServer: str | None = None  # noqa: N815
    fhirAuthorization: FhirAuthorization | None = None  # noqa: N815
    context: Json
    prefetch: dict[str, Json | None] | None = None
    extension: Json | None = None

    @field_validator("fhirServer")
    @classmethod
    def _absolute_http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("must be a base URL without credentials, query or fragment")
        return value.rstrip("/")

    @field_validator("fhirAuthorization")
    @classmethod
    def _server_with_authorization(
        cls, value: FhirAuthorization | None, info: ValidationInfo
    ) -> FhirAuthorization | None:
        # fhirServer is validated first (field order); absent from info.data only if invalid.
        if value is not None and "fhirServer" in info.data and info.data["fhirServer"] is None:
            raise ValueError("fhirServer is required when fhirAuthorization is present")
        return value

    @property
    def access_token(self) -> str | None:
        auth = self.fhirAuthorization
        return auth.access_token.get_secret_value() if auth else None


class PatientViewContext(_Lenient):
    userId: Reference  # noqa: N815
    patientId: FhirId  # noqa: N815
    encounterId: FhirId | None = None  # noqa: N815


class OrderSignContext(PatientViewContext):
    draftOrders: BundleJson  # noqa: N815


class OrderSelectContext(OrderSignContext):
    selections: list[Reference] = Field(min_length=1)


class AppointmentBookContext(PatientViewContext):
    appointments: BundleJson


class EncounterContext(PatientViewContext):
    """encounter-start and encounter-discharge: the encounter is required."""

    encounterId: FhirId  # noqa: N815


HookContext = (
    PatientViewContext
    | OrderSignContext
    | OrderSelectContext
    | AppointmentBookContext
    | EncounterContext
)

CONTEXT_MODELS: dict[str, type[HookContext]] = {
    "order-select": OrderSelectContext,
    "order-sign": OrderSignContext,
    "appointment-book": AppointmentBookContext,
    "encounter-start": EncounterContext,
    "encounter-discharge": EncounterContext,
    "patient-view": PatientViewContext,
}


# --- feedback (CDS Hooks 2.0, "Feedback") ---------------------------------------------------


class FeedbackCoding(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    system: str = Field(min_length=1)
    code: str = Field(min_length=1)
    display: str | None = None


class AcceptedSuggestion(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1)


class OverrideReasonFeedback(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    reason: FeedbackCoding | None = None
    userComment: str | None = Field(default=None, max_length=4000)  # noqa: N815


class FeedbackItem(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    card: str = Field(min_length=1, max_length=200)
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] | None = Field(  # noqa: N815
        default=None, min_length=1
    )
    overrideReason: OverrideReasonFeedback | None = None  # noqa: N815
    outcomeTimestamp: AwareDatetime  # noqa: N815 (RFC 3339 requires an offset)
    extension: Json | None = None

    @model_validator(mode="after")
    def _suggestions_match_outcome(self) -> FeedbackItem:
        if self.outcome == "accepted" and not self.acceptedSuggestions:
            raise ValueError("acceptedSuggestions is required when outcome is accepted")
        if self.outcome == "overridden" and self.acceptedSuggestions:
            raise ValueError("acceptedSuggestions is only allowed when outcome is accepted")
        return self


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    feedback: list[FeedbackItem] = Field(min_length=1)


# --- parsing with field-naming errors -----------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


def field_path(loc: tuple[int | str, ...], prefix: str = "") -> str:
    """``("feedback", 0, "outcome")`` -> ``feedback[0].outcome`` (a FHIRPath-like expression)."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path or "$"


def invalid_field(exc: ValidationError, prefix: str = "") -> InvalidField:
    """Turn a pydantic error into a 400 naming each field. ``msg`` is used, never ``input``."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    paths = [field_path(e["loc"], prefix) for e in errors]
    parts = [f"{path}: {e['msg']}" for path, e in zip(paths, errors, strict=True)]
    detail = "; ".join(parts[:_MAX_REPORTED_ERRORS])
    if len(parts) > _MAX_REPORTED_ERRORS:
        detail += f" (and {len(parts) - _MAX_REPORTED_ERRORS} more)"
    return InvalidField(detail, list(dict.fromkeys(paths)))


def validate_as(model: type[M], data: Any, prefix: str = "") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_field(exc, prefix) from None


def parse_context(hook: str, context: Json) -> HookContext:
    """Validate ``context`` with the model of ``hook`` (unknown hooks are rejected earlier)."""
    return validate_as(CONTEXT_MODELS[hook], context, prefix="context")


def normalized_context(raw: Json, parsed: HookContext) -> Json:
    """The raw context with Bundle fields in their normalized shape (a bare appointment list
    becomes a Bundle) and harmless FHIR shape deviations of the hook's own resources repaired
    (the sandbox's draft order has ``category`` as one object); the domain reads this dict, not
    the model. The repair comes before triage, which reads the order's medication code."""
    context = raw
    if isinstance(parsed, AppointmentBookContext) and isinstance(raw.get("appointments"), list):
        context = {**raw, "appointments": parsed.appointments}
    for key in ("draftOrders", "appointments"):
        bundle = context.get(key)
        if isinstance(bundle, dict):
            for resource in bundle_resources(bundle):
                tolerate(resource)
    return context


# --- one service call, from bytes to validated models -------------------------------------------


@dataclass(frozen=True)
class ParsedCall:
    """A validated service call: the request and its (normalized) hook context."""

    request: CdsRequest
    context: Json


def json_object(body: bytes | str) -> Json:
    """Parse a JSON request body (once, with orjson); anything but an object is a 400."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if body else " (empty body)"
        raise InvalidField(f"request body is not valid JSON{where}", ["$"]) from None
    if not isinstance(value, dict):
        raise InvalidField("request body must be a JSON object", ["$"])
    return value


def parse_call(body: bytes | str | Json, expected_hook: str) -> ParsedCall:
    """Validate a service call for a service answering ``expected_hook`` (400 on any error)."""
    raw = body if isinstance(body, dict) else json_object(body)
    request = validate_as(CdsRequest, raw)
    if request.hook != expected_hook:
        raise InvalidField(
            f"hook {request.hook[:80]!r} does not match this service, which answers "
            f"{expected_hook!r}",
            ["hook"],
        )
    context = parse_context(expected_hook, request.context)
    return ParsedCall(request, normalized_context(request.context, context))
