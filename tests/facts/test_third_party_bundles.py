"""Every real-world bundle in ../shared/fhir/third-party becomes well-formed facts and cards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from shared_data import third_party_bundles, third_party_bundles_or_empty

from cds.config import Settings
from cds.evaluator import RuleEvaluator, build_evaluator
from cds.facts.schema import FACT_TYPES
from cds.fhir.gather import gather_sync
from cds.hooks.models import CdsRequest
from cds.ruleset.cases import Case, build_request, case_now

BUNDLES = third_party_bundles_or_empty()
EXAMPLES = Path(__file__).resolve().parents[2] / "fhir_examples"
KINDS = {
    "number": (int, float),
    "string": (str,),
    "bool": (bool,),
    "valueset": (str,),
    "enum": (str,),
}


@pytest.fixture(scope="module")
def evaluator() -> RuleEvaluator:
    return build_evaluator(Settings(_env_file=None))  # type: ignore[call-arg]


def conformance_problems(fact: dict[str, Any]) -> list[str]:
    spec = FACT_TYPES.get(fact["t"])
    if spec is None:
        return [f"unknown fact type {fact['t']}"]
    problems = []
    for name, value in fact.items():
        if name == "t":
            continue
        field = spec.fields.get(name)
        if field is None:
            problems.append(f"{fact['t']}.{name} is not in the schema")
        elif not isinstance(value, KINDS[field.kind]) or (
            field.kind == "number" and isinstance(value, bool)
        ):
            problems.append(f"{fact['t']}.{name}={value!r} is not a {field.kind}")
        elif field.kind == "enum" and value not in field.values:
            problems.append(f"{fact['t']}.{name}={value!r} not in {field.values}")
    return problems


def request_for(bundle_path: Path, order: str) -> dict[str, Any]:
    bundle = json.loads(bundle_path.read_text(encoding="utf-8"))
    resources = [e["resource"] for e in bundle.get("entry", []) if "resource" in e]
    case = Case(description=bundle_path.name, patient=None, order=order, resources=resources)
    return build_request(case, EXAMPLES)


@pytest.mark.parametrize("bundle_path", BUNDLES, ids=[p.stem[:40] for p in BUNDLES])
@pytest.mark.parametrize("order", ["ketamine-iv", "esketamine-56"])
def test_bundle_facts_conform_and_cards_are_valid(
    bundle_path: Path, order: str, evaluator: RuleEvaluator
) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    request = CdsRequest.model_validate(request_for(bundle_path, order))
    data = gather_sync(request, settings)
    now = case_now(Case(description="t"))
    facts = evaluator.facts_for("kap-order-sign", dict(request.context), data, now)
    assert [f for f in facts if f["t"] == "plan"], "a KAP order always yields a plan fact"
    problems = [p for fact in facts for p in conformance_problems(fact)]
    assert not problems
    evaluation = evaluator.evaluate(
        service_id="kap-order-sign", context=dict(request.context), data=data, now=now
    )
    assert evaluation.kap
    for card in evaluation.cards:
        assert len(card.summary) < 140
        assert card.extension
        entries = card.extension.get("org.kapcds.rules") or [card.extension["org.kapcds.rule"]]
        assert all(entry["ruleset"] for entry in entries)


def test_third_party_bundles_are_present() -> None:
    # Parametrised tests have no cases when ../shared is missing: this one fails under CI.
    assert third_party_bundles()
