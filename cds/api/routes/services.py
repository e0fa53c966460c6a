"""``POST /cds-services/{id}``: parse, gather, evaluate, audit, answer with cards."""

from __future__ import annotations

from time import perf_counter
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from cds.api.deps import (
    AuditDep,
    ClockDep,
    EvaluatorDep,
    HttpClientDep,
    MetricsDep,
    RulesetEvaluator,
    RuntimeDep,
    SettingsDep,
    WorkDep,
)
from cds.api.metrics import Metrics
from cds.api.work import Slot
from cds.audit.archive import ArchivedInputs
from cds.cards.links import with_source_urls
from cds.facts.triage import Triage
from cds.fhir.gather import gather
from cds.hooks.cards import CardsResponse
from cds.hooks.models import ParsedCall, parse_call
from cds.hooks.registry import ServiceDescriptor, service
from cds.pipeline_types import Evaluation, PatientData
from cds.security.auth import authenticated_client

router = APIRouter(tags=["services"])

NO_CARDS = b'{"cards":[]}'
INLINE_PARSE_BYTES = 64 * 1024
ERRORS_DOC: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed or invalid request (OperationOutcome names the field)"},
    404: {"description": "Unknown service id"},
    412: {"description": "Required prefetch data unavailable (OperationOutcome names the key)"},
    503: {
        "description": "Busy or past the request deadline, or the decision could not be recorded "
        "in the audit trail (then not answered); retry after Retry-After seconds"
    },
}


def json_response(body: bytes) -> Response:
    return Response(content=body, media_type="application/json")


def is_not_kap(evaluator: RulesetEvaluator, hook: str, context: dict[str, Any]) -> bool:
    """The fast path: an order or visit that is not ketamine/esketamine needs no data at all."""
    return evaluator.triage(hook, context) is Triage.NOT_KAP


@router.post(
    "/cds-services/{service_id}",
    response_class=Response,
    responses={200: {"model": CardsResponse, "description": "Cards"}, **ERRORS_DOC},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/CdsRequest"}}
            },
        }
    },
)
async def call_service(
    service_id: str,
    request: Request,
    settings: SettingsDep,
    evaluator: EvaluatorDep,
    audit: AuditDep,
    clock: ClockDep,
    metrics: MetricsDep,
    http_client: HttpClientDep,
    work: WorkDep,
    runtime: RuntimeDep,
) -> Response:
    """Evaluate the KAP rules for one hook call."""
    started, now = perf_counter(), clock()
    descriptor = service(service_id)
    with metrics.track(descriptor.id) as observation, work.admit() as slot:
        call = await _parse(slot, await request.body(), descriptor.hook)
        if is_not_kap(evaluator, descriptor.hook, call.context):
            observation.outcome = "not_kap"
            return json_response(NO_CARDS)
        data = await gather(
            call.request,
            settings,
            service=descriptor,
            context=call.context,
            client=http_client,
            offload=slot.run,
        )
        _count_fallbacks(metrics, descriptor, call, data)
        evaluation = await slot.run(
            evaluator.evaluate,
            service_id=descriptor.id,
            context=call.context,
            data=data,
            now=now,
        )
        base_url = settings.public_base_url or str(request.base_url)
        body = await slot.run(_cards_body, evaluation, base_url)
        latency_ms = (perf_counter() - started) * 1000
        # In the pool too: the record is synced to disk (or written to the database) before we
        # answer, and sealing the archived inputs is blocking work. Raises AuditUnavailable (503)
        # when it cannot be kept: no answer for a decision that is not in the audit trail.
        await slot.run(
            audit.record_evaluation,
            service_id=descriptor.id,
            hook=descriptor.hook,
            hook_instance=call.request.hookInstance,
            patient_id=_patient_id(call),
            data=data,
            evaluation=evaluation,
            latency_ms=latency_ms,
            caller=authenticated_client(request),
            user_id=_user_id(call),
            # Kept only when the site turned the encrypted input archive on (for replay).
            inputs=ArchivedInputs(
                descriptor.id,
                call.context,
                data.resources,
                {key: outcome.value for key, outcome in data.outcomes.items()},
                now,
            ),
        )
        runtime.card_rules.remember(evaluation)
        for fired in evaluation.fired:
            metrics.card_event(fired.rule_id, "fired")
        return json_response(body)


async def _parse(slot: Slot, body: bytes, hook: str) -> ParsedCall:
    # Most calls are small orders that are not KAP: parsing them here costs less than the hop
    # to a thread. A large body is parsed in the pool, off the event loop.
    if len(body) <= INLINE_PARSE_BYTES:
        return parse_call(body, hook)
    return await slot.run(parse_call, body, hook)


def _count_fallbacks(
    metrics: Metrics, descriptor: ServiceDescriptor, call: ParsedCall, data: PatientData
) -> None:
    if not call.request.fhirServer:
        return
    sent = call.request.prefetch or {}
    for key in descriptor.prefetch:
        if key.name not in sent:
            metrics.fhir_fallback(key.name, data.outcomes[key.name].value)


def _cards_body(evaluation: Evaluation, base_url: str) -> bytes:
    cards = with_source_urls(evaluation.cards, base_url)
    return orjson.dumps(CardsResponse(cards=cards).to_json())


def _user_id(call: ParsedCall) -> str | None:
    user_id = call.context.get("userId")
    return user_id if isinstance(user_id, str) else None


def _patient_id(call: ParsedCall) -> str | None:
    patient_id = call.context.get("patientId")
    return patient_id if isinstance(patient_id, str) else None
