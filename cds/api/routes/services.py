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
    SettingsDep,
)
from cds.audit.archive import ArchivedInputs
from cds.cards.links import with_source_urls
from cds.facts.triage import Triage
from cds.fhir.gather import gather
from cds.hooks.cards import CardsResponse
from cds.hooks.models import ParsedCall, parse_call
from cds.hooks.registry import service
from cds.pipeline_types import Evaluation

router = APIRouter(tags=["services"])

NO_CARDS = b'{"cards":[]}'
ERRORS_DOC: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed or invalid request (OperationOutcome names the field)"},
    404: {"description": "Unknown service id"},
    412: {"description": "Required prefetch data unavailable (OperationOutcome names the key)"},
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
) -> Response:
    """Evaluate the KAP rules for one hook call."""
    started, now = perf_counter(), clock()
    descriptor = service(service_id)
    with metrics.track(descriptor.id) as observation:
        call = parse_call(await request.body(), descriptor.hook)
        if is_not_kap(evaluator, descriptor.hook, call.context):
            observation.outcome = "not_kap"
            return json_response(NO_CARDS)
        data = await gather(
            call.request, settings, service=descriptor, context=call.context, client=http_client
        )
        # Run on the event loop, not in a thread: an evaluation takes well under a millisecond
        # and the rules engine keeps process-wide state.
        evaluation = evaluator.evaluate(
            service_id=descriptor.id, context=call.context, data=data, now=now
        )
        latency_ms = (perf_counter() - started) * 1000
        audit.record_evaluation(
            service_id=descriptor.id,
            hook=descriptor.hook,
            hook_instance=call.request.hookInstance,
            patient_id=_patient_id(call),
            data=data,
            evaluation=evaluation,
            latency_ms=latency_ms,
            # Kept only when the site turned the encrypted input archive on (for replay).
            inputs=ArchivedInputs(
                descriptor.id,
                call.context,
                data.resources,
                {key: outcome.value for key, outcome in data.outcomes.items()},
                now,
            ),
        )
        base_url = settings.public_base_url or str(request.base_url)
        return json_response(_cards_body(evaluation, base_url))


def _cards_body(evaluation: Evaluation, base_url: str) -> bytes:
    cards = with_source_urls(evaluation.cards, base_url)
    return orjson.dumps(CardsResponse(cards=cards).to_json())


def _patient_id(call: ParsedCall) -> str | None:
    patient_id = call.context.get("patientId")
    return patient_id if isinstance(patient_id, str) else None
