"""Narrow prefetch templates: FHIR token syntax, generation from the loaded value sets, and
answering a narrowed search the way a FHIR server would."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds.fhir.narrow import (
    MAX_TEMPLATE_CHARS,
    escape_token,
    matches,
    narrow_prefetch,
    narrow_templates,
)
from cds.ruleset.loader import LoadedRuleSet, load_ruleset
from cds.ruleset.valuesets import CodeEntry

RULES = Path(__file__).resolve().parents[2] / "rules"


@pytest.fixture(scope="module")
def ruleset() -> LoadedRuleSet:
    return load_ruleset(RULES)


def test_templates_use_token_syntax_and_value_set_codes(ruleset: LoadedRuleSet) -> None:
    templates = narrow_templates(ruleset.valueset_files)
    observations = templates["observations"]
    assert observations.startswith(
        "Observation?patient={{context.patientId}}&status=amended,corrected,final&code="
    )
    tokens = observations.split("&code=")[1].split(",")
    assert "http://loinc.org|29463-7" in tokens  # body weight
    assert "http://loinc.org|85354-9" in tokens  # BP panel
    assert "urn:kap-cds:obs|escort-confirmed" in tokens
    assert all("|" in t for t in tokens)
    assert len(observations) <= MAX_TEMPLATE_CHARS
    assert templates["consents"] == "Consent?patient={{context.patientId}}&status=active"
    assert "conditions" not in templates  # ICD-10 prefixes: cannot be searched by exact code
    assert "medicationRequests" not in templates  # ingredient names, any status of past orders


def test_a_site_code_added_to_a_value_set_is_asked_for(ruleset: LoadedRuleSet) -> None:
    files = dict(ruleset.valueset_files)
    weight = files["VS-BODY-WEIGHT"]
    extra = CodeEntry(system="urn:site:obs", code="wt,kg")
    files["VS-BODY-WEIGHT"] = weight.model_copy(update={"include": [*weight.include, extra]})
    assert "urn:site:obs|wt\\,kg" in narrow_templates(files)["observations"]


def test_a_prefix_entry_drops_the_code_filter(ruleset: LoadedRuleSet) -> None:
    files = dict(ruleset.valueset_files)
    spo2 = files["VS-SPO2"]
    prefix = CodeEntry(system="http://loinc.org", prefix="594")
    files["VS-SPO2"] = spo2.model_copy(update={"include": [*spo2.include, prefix]})
    template = narrow_templates(files)["observations"]
    assert "&code=" not in template
    assert template.endswith("&status=amended,corrected,final")


def test_escape_token() -> None:
    assert escape_token("a,b|c$d\\e") == "a\\,b\\|c\\$d\\\\e"


OBS = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Observation?patient=p&status=final&code=http://loinc.org|29463-7", True),
        ("Observation?patient=p&status=final&code=http://snomed.info/sct|29463-7", False),
        ("Observation?patient=p&status=final&code=29463-7", True),  # code without a system
        ("Observation?patient=p&status=preliminary", False),
        ("Observation?patient=p&code=http://loinc.org|1,http://loinc.org|29463-7", True),
        ("Procedure?patient=p&status=final", False),
    ],
)
def test_matches(template: str, expected: bool) -> None:
    assert matches(template, OBS) is expected


def test_narrow_prefetch_keeps_other_keys_and_fixes_total() -> None:
    other = {"resourceType": "Observation", "status": "final", "code": {"text": "note"}}
    prefetch = {
        "patient": {"resourceType": "Patient", "id": "p"},
        "observations": {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": 2,
            "entry": [{"resource": OBS}, {"resource": other}],
        },
        "consents": None,
    }
    narrowed = narrow_prefetch(
        prefetch,
        {"observations": "Observation?patient=p&code=http://loinc.org|29463-7", "consents": "x"},
    )
    assert narrowed["patient"] == prefetch["patient"]
    assert narrowed["consents"] is None
    assert narrowed["observations"]["entry"] == [{"resource": OBS}]
    assert narrowed["observations"]["total"] == 1
