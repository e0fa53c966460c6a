"""``POST /cds-services/{id}``: parse, gather, evaluate, audit, answer with cards."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from time import perf_counter
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from cds.api.deps import RulesetEvaluator, runtime_of
from cds.api.work import Abandoned
from cds.audit.archive import ArchivedInputs
from cds.cards.links import with_source_urls
from cds.config import Settings
from cds.facts.triage import Triage
from cds.fhir.gather import (
    KeyResult,
    absent_keys,
    assemble,
    fetch_absent,
    from_prefetch,
    without_reads,
)
from cds.gcpause import paused_gc
from cds.hooks.cards import CardsResponse
from cds.hooks.models import ParsedCall, parse_call
from cds.hooks.registry import PrefetchKey, ServiceDescriptor, service
from cds.pipeline_types import AuditCaller, AuditSink, Evaluation, PatientData
from cds.security.auth import authenticated_client

router = APIRouter(tags=["services"])

NO_CARDS = b'{"cards":[]}'
# Up to this size a body is parsed on the event loop (~0.4 ms for 160 KB, a 200-resource
# prefetch): a non-KAP order then costs no hop to a thread at all. Larger ones are parsed in
# the pool, where a 10 MB body cannot stall every other request.
INLINE_PARSE_BYTES = 256 * 1024
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
async def call_service(service_id: str, request: Request) -> Response:
    """Evaluate the KAP rules for one hook call."""
    runtime = runtime_of(request)
    started, now = perf_counter(), runtime.clock()
    settings, evaluator, metrics = runtime.settings, runtime.live_evaluator, runtime.metrics
    descriptor = service(service_id)
    outcome: Reads | Decided | None
    with metrics.track(descriptor.id) as observation, runtime.work.admit() as slot:
        decision = Decision(
            descriptor,
            evaluator,
            runtime.live_audit,
            settings,
            now,
            started,
            base_url=settings.public_base_url or str(request.base_url),
            caller=authenticated_client(request),
            abandoned=slot.abandoned,
        )
        body = await request.body()
        if len(body) <= INLINE_PARSE_BYTES:
            # Most calls are orders that are not KAP: answered without leaving the event loop.
            call = parse_call(body, descriptor.hook)
            if is_not_kap(evaluator, descriptor.hook, call.context):
                observation.outcome = "not_kap"
                return json_response(NO_CARDS)
            outcome = await slot.run(decision.of_call, call)
        elif runtime.work.is_large(len(body)):
            outcome = await slot.run_alone(decision.of_body, body)
        else:
            outcome = await slot.run(decision.of_body, body)
        if isinstance(outcome, Reads):  # keys the prefetch lacks: read from the EHR (async)
            fetched = await fetch_absent(
                outcome.absent,
                outcome.call.request,
                outcome.call.context,
                settings,
                runtime.http_client,
            )
            outcome = await slot.run(decision.of_data, outcome.call, outcome.results | fetched)
        if outcome is None:
            observation.outcome = "not_kap"
            return json_response(NO_CARDS)
        for key, key_outcome in outcome.fallbacks:
            metrics.fhir_fallback(key, key_outcome)
        runtime.card_rules.remember(outcome.evaluation)
        for fired in outcome.evaluation.fired:
            metrics.card_event(fired.rule_id, "fired")
        return json_response(outcome.body)


@dataclass(frozen=True)
class Reads:
    """The prefetch lacks keys that must be read from the EHR's FHIR server first."""

    call: ParsedCall
    results: dict[str, KeyResult]
    absent: list[PrefetchKey]


@dataclass(frozen=True)
class Decided:
    """What the event loop needs of a decision: the answer and what the metrics count. Not the
    request or its data: those die with the step, so the collector never sees them."""

    evaluation: Evaluation
    body: bytes
    fallbacks: list[tuple[str, str]]  # (prefetch key, outcome) of keys read from the EHR


@dataclass(frozen=True)
class Decision:
    """The CPU-bound part of one call, run in the work pool in as few hops as it can: from the
    body (or the parsed call) to cards that are in the audit trail. One hop for a call whose
    prefetch has everything; two when keys must be read from the EHR in between."""

    descriptor: ServiceDescriptor
    evaluator: RulesetEvaluator
    audit: AuditSink
    settings: Settings
    now: datetime
    started: float
    base_url: str
    caller: AuditCaller | None
    abandoned: threading.Event

    @paused_gc
    def of_body(self, body: bytes) -> Reads | Decided | None:
        """None: not a KAP order or visit (no cards, nothing to record)."""
        call = parse_call(body, self.descriptor.hook)
        if is_not_kap(self.evaluator, self.descriptor.hook, call.context):
            return None
        return self._of_call(call)

    @paused_gc
    def of_call(self, call: ParsedCall) -> Reads | Decided:
        return self._of_call(call)

    @paused_gc
    def of_data(self, call: ParsedCall, results: dict[str, KeyResult]) -> Decided:
        return self._decide(call, results)

    def _of_call(self, call: ParsedCall) -> Reads | Decided:
        results = from_prefetch(call.request, self.descriptor)
        absent = absent_keys(self.descriptor, results)
        known = without_reads(absent, call.request, self.settings)
        if known is None:
            return Reads(call, results, absent)
        return self._decide(call, results | known)

    def _decide(self, call: ParsedCall, results: dict[str, KeyResult]) -> Decided:
        data = assemble(call.request, self.descriptor, call.context, results)
        evaluation = self.evaluator.evaluate(
            service_id=self.descriptor.id, context=call.context, data=data, now=self.now
        )
        body = _cards_body(evaluation, self.base_url)
        if self.abandoned.is_set():  # past the deadline: answered 503, so nothing to record
            raise Abandoned
        # Synced to disk (or written to the database) before we answer. Raises
        # AuditUnavailable (503) when it cannot be kept: no answer for a decision that is not
        # in the audit trail.
        self.audit.record_evaluation(
            service_id=self.descriptor.id,
            hook=self.descriptor.hook,
            hook_instance=call.request.hookInstance,
            patient_id=_patient_id(call),
            data=data,
            evaluation=evaluation,
            latency_ms=(perf_counter() - self.started) * 1000,
            caller=self.caller,
            user_id=_user_id(call),
            # Kept only when the site turned the encrypted input archive on (for replay).
            inputs=ArchivedInputs(
                self.descriptor.id,
                call.context,
                data.resources,
                {key: outcome.value for key, outcome in data.outcomes.items()},
                self.now,
            ),
        )
        return Decided(evaluation, body, _fallbacks(self.descriptor, call, data))


def _fallbacks(
    descriptor: ServiceDescriptor, call: ParsedCall, data: PatientData
) -> list[tuple[str, str]]:
    """The keys the prefetch lacked, with how reading them from the EHR went."""
    if not call.request.fhirServer:
        return []
    sent = call.request.prefetch or {}
    return [
        (key.name, data.outcomes[key.name].value)
        for key in descriptor.prefetch
        if key.name not in sent
    ]


def _cards_body(evaluation: Evaluation, base_url: str) -> bytes:
    cards = with_source_urls(evaluation.cards, base_url)
    return orjson.dumps(CardsResponse(cards=cards).to_json())


def _user_id(call: ParsedCall) -> str | None:
    user_id = call.context.get("userId")
    return user_id if isinstance(user_id, str) else None


def _patient_id(call: ParsedCall) -> str | None:
    patient_id = call.context.get("patientId")
    return patient_id if isinstance(patient_id, str) else None
