"""``cds.facts.reads`` declares every Observation value set the builders read: recorded on every
rule fixture, so a builder that starts reading a new one cannot be missed by narrow prefetch."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds.config import Settings
from cds.evaluator import build_evaluator
from cds.facts.context import FactContext
from cds.facts.reads import OBSERVATION_VALUESETS, STATUSES
from cds.ruleset.cases import load_cases, run_case

EXAMPLES = Path(__file__).resolve().parents[2] / "fhir_examples"


def test_every_observation_value_set_read_is_declared(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    read: set[tuple[str, str]] = set()
    original = FactContext.with_code

    def recording(self: FactContext, resource_type: str, vs_id: str) -> list[dict[str, object]]:
        read.add((resource_type, vs_id))
        return original(self, resource_type, vs_id)

    monkeypatch.setattr(FactContext, "with_code", recording)
    settings = Settings(_env_file=None, state_dir=tmp_path)  # type: ignore[call-arg]
    evaluator = build_evaluator(settings)
    for loaded in load_cases(EXAMPLES):
        run_case(loaded, evaluator, settings, EXAMPLES)
    observed = {vs for kind, vs in read if kind == "Observation"}
    assert observed, "the recording saw no Observation reads"
    assert observed <= set(OBSERVATION_VALUESETS), sorted(observed - set(OBSERVATION_VALUESETS))
    assert {kind for kind, _ in read} == {"Observation"}  # with_code is only for Observations


def test_declared_value_sets_exist(ruleset: object) -> None:
    valuesets = ruleset.valuesets  # type: ignore[attr-defined]
    assert set(OBSERVATION_VALUESETS) <= set(valuesets)


def test_usable_observation_statuses() -> None:
    assert STATUSES["Observation"] == {"final", "amended", "corrected"}
