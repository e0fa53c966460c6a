"""Narrow prefetch loses nothing a rule reads: on every real-world bundle and through every
service, the facts (and so the cards) from a narrowed prefetch equal those from the broad one.

The narrowed prefetch is what an EHR executing discovery's narrow templates would send
(``cds.fhir.narrow.narrow_prefetch`` answers each search the way a FHIR server does)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from test_third_party_services import ORDER_HOOKS, bundle_resources, case_for, expectation_for

from cds.config import Settings
from cds.evaluator import RuleEvaluator
from cds.fhir.gather import gather_sync
from cds.fhir.narrow import narrow_prefetch
from cds.hooks.models import CdsRequest
from cds.hooks.registry import SERVICES
from cds.ruleset.cases import build_request
from tests.shared_data import third_party_bundles, third_party_bundles_or_empty

EXAMPLES = Path(__file__).resolve().parents[2] / "fhir_examples"


def _facts(
    evaluator: RuleEvaluator, settings: Settings, request: dict[str, Any], service: str, now: str
) -> Any:
    parsed = CdsRequest.model_validate(request)
    data = gather_sync(parsed, settings)
    when = datetime.fromisoformat(now)
    facts = evaluator.facts_for(service, dict(parsed.context), data, when)
    cards = evaluator.evaluate(
        service_id=service, context=dict(parsed.context), data=data, now=when
    )
    fired = sorted((c.source.topic.code, c.indicator.value) for c in cards.cards if c.source.topic)
    return orjson.dumps(facts, option=orjson.OPT_SORT_KEYS, default=str), fired


def test_bundles_are_there() -> None:
    assert third_party_bundles()


@pytest.mark.parametrize("bundle", third_party_bundles_or_empty(), ids=lambda p: p.name[:32])
def test_narrow_prefetch_gives_the_same_facts_and_cards(
    bundle: Path, real_evaluator: RuleEvaluator, settings: Settings
) -> None:
    templates = real_evaluator.prefetch_templates
    resources = bundle_resources(bundle)
    t0 = expectation_for(bundle).t0
    for service in SERVICES:
        case, _ = case_for(service.id, "ketamine", t0, resources)
        broad = build_request(case, EXAMPLES, f"narrow-{service.id}")
        narrow = {**broad, "prefetch": narrow_prefetch(broad["prefetch"], templates)}
        assert _facts(real_evaluator, settings, narrow, service.id, t0) == _facts(
            real_evaluator, settings, broad, service.id, t0
        ), f"{service.id}: narrowed prefetch changed the facts"
    assert ORDER_HOOKS  # the order hooks are among SERVICES above
