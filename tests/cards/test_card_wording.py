"""Every card of every rule fixture, rendered as the service sends it, reads in clinician words
(issue 13 item 4): see ``wording_checks`` for what is refused."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from wording_checks import FIXED_PATTERNS, hard_wraps, internal_words, wording_problems

from cds.config import Settings
from cds.evaluator import RuleEvaluator, build_evaluator
from cds.fhir.gather import gather_sync
from cds.hooks.models import CdsRequest
from cds.ruleset.cases import build_request, case_now, load_cases

EXAMPLES = Path(__file__).resolve().parents[2] / "fhir_examples"
CASES = load_cases(EXAMPLES)


@pytest.fixture(scope="module")
def evaluator() -> RuleEvaluator:
    return build_evaluator(Settings(_env_file=None))  # type: ignore[call-arg]


def test_every_fixture_card_reads_in_clinician_words(evaluator: RuleEvaluator) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    patterns = {**FIXED_PATTERNS, **internal_words(evaluator.ruleset)}
    problems: list[str] = []
    cards_seen = 0
    for loaded in CASES:
        request = CdsRequest.model_validate(build_request(loaded.case, EXAMPLES))
        data = gather_sync(request, settings)
        context = dict(request.context)
        evaluation = evaluator.evaluate(
            service_id=loaded.case.service, context=context, data=data, now=case_now(loaded.case)
        )
        facts = evaluator.facts_for(loaded.case.service, context, data, case_now(loaded.case))
        drug = next((f.get("drug") for f in facts if f["t"] == "plan"), None)
        for card in evaluation.cards:
            cards_seen += 1
            body = card.model_dump(mode="json", exclude_none=True)
            problems += [
                f"{loaded.rule_id}/{loaded.name}: {p}"
                for p in wording_problems(body, drug, patterns)
            ]
    assert cards_seen > 300  # the fixtures really produced cards to read
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(sorted(set(problems))[:80])


def test_the_checks_catch_what_they_are_for(evaluator: RuleEvaluator) -> None:
    patterns = {**FIXED_PATTERNS, **internal_words(evaluator.ruleset)}
    bad = {
        "summary": "The seed protocol says so (KAP-CI-012)",
        "detail": "BP on 2026-11-19 (1.08 days ago) — `Observation/bp-1`, bp_lookback_days\n"
        "continues mid-sentence at 19 Nov 2026 14:05.",
        "links": [{"label": "SPRAVATO REMS", "url": "https://www.spravatorems.com/"}],
    }
    found = " | ".join(wording_problems(bad, "ketamine", patterns))
    for expected in (
        "seed",
        "rule id",
        "ISO date",
        "fractional days",
        "FHIR resource id",
        "policy key",
        "hard wrap",
        "time without zone",
        "link for esketamine",
    ):
        assert expected in found, expected
    good = {
        "summary": "Blood pressure 141/91 mmHg yesterday",
        "detail": "Taken on 19 Nov 2026 14:05 PST, 3 days ago.\n\n- one item\n- another",
    }
    assert not wording_problems(good, "esketamine", patterns)
    assert not hard_wraps(json.loads(json.dumps(good))["detail"])
    assert re.search(FIXED_PATTERNS["time without zone"], "at 20 Nov 2026 15:00.")
