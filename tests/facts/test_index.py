"""The per-request prefetch index: one pass per resource type, times parsed once, and R4B
validation only of the resources a builder reads (lazily, newest first where newest wins)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

from cds.facts import index as index_module
from cds.facts import weight
from cds.facts.context import FactContext
from cds.facts.index import PrefetchIndex
from cds.pipeline_types import PatientData
from cds.ruleset.loader import LoadedRuleSet
from cds.ruleset.valuesets import ValueSetIndex

T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
LOINC = "http://loinc.org"
Json = dict[str, Any]


def weight_obs(oid: str, kg: Any, when: str, status: str = "final") -> Json:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": status,
        "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
        "effectiveDateTime": when,
        "valueQuantity": {
            "value": kg,
            "unit": "kg",
            "system": "http://unitsofmeasure.org",
            "code": "kg",
        },
    }


def heart_rate(oid: str) -> Json:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
        "effectiveDateTime": "2026-11-19T10:00:00Z",
        "valueQuantity": {"value": 70, "unit": "/min"},
    }


def data(*resources: Json) -> PatientData:
    by_type: dict[str, list[Json]] = {}
    for resource in resources:
        by_type.setdefault(resource["resourceType"], []).append(resource)
    return PatientData(by_type)


def new_index(ruleset: LoadedRuleSet, patient_data: PatientData) -> PrefetchIndex:
    codes = ValueSetIndex(ruleset.valuesets, ruleset.valueset_files)
    return PrefetchIndex(patient_data, ZoneInfo("UTC"), ruleset.valuesets, codes)


def context(ruleset: LoadedRuleSet, patient_data: PatientData) -> FactContext:
    return FactContext(
        hook="order-sign",
        context={"patientId": "p"},
        data=patient_data,
        t0=T0,
        tz=ZoneInfo("UTC"),
        policy=ruleset.policy,
        valuesets=ruleset.valuesets,
    )


def test_files_each_type_once_by_value_set_and_by_coding(ruleset: LoadedRuleSet) -> None:
    w1, w2, hr = (
        weight_obs("w1", 70, "2026-11-17"),
        weight_obs("w2", 71, "2026-11-18"),
        heart_rate("h"),
    )
    idx = new_index(ruleset, data(w1, hr, w2))
    with mock.patch.object(idx, "_file_by_valueset", wraps=idx._file_by_valueset) as by_vs:
        assert idx.with_code("Observation", "VS-BODY-WEIGHT") == [w1, w2]
        assert idx.with_code("Observation", "VS-BODY-WEIGHT") == [w1, w2]
        assert idx.with_code("Observation", "VS-ESKETAMINE") == []
    with mock.patch.object(idx, "_file_by_coding", wraps=idx._file_by_coding) as by_coding:
        assert idx.with_coding("Observation", LOINC, "8867-4") == [hr]
        assert idx.with_coding("Observation", LOINC, "29463-7") == [w1, w2]
    assert by_vs.call_count == 1 and by_coding.call_count == 1  # one pass each, per type
    assert idx.with_code("Condition", "VS-BODY-WEIGHT") == []
    assert idx.with_coding("Observation", LOINC, "no-such-code") == []


def test_times_are_parsed_once_per_resource(ruleset: LoadedRuleSet) -> None:
    w1 = weight_obs("w1", 70, "2026-11-17T10:00:00Z")
    idx = new_index(ruleset, data(w1))
    with mock.patch.object(
        index_module, "observation_time", wraps=index_module.observation_time
    ) as parsed:
        assert idx.observed_at(w1) == datetime(2026, 11, 17, 10, tzinfo=UTC)
        assert idx.observed_at(w1) == datetime(2026, 11, 17, 10, tzinfo=UTC)
    assert parsed.call_count == 1


def test_validates_nothing_until_asked_and_each_resource_once(ruleset: LoadedRuleSet) -> None:
    bad = weight_obs("bad", "seventy", "2026-11-17")  # a string where FHIR has a decimal
    idx = new_index(ruleset, data(bad, heart_rate("h")))
    with mock.patch.object(index_module, "validate_r4b", wraps=index_module.validate_r4b) as v:
        idx.with_code("Observation", "VS-BODY-WEIGHT")
        assert v.call_count == 0
        assert idx.problem(bad) is not None and "valueQuantity" in str(idx.problem(bad))
        assert idx.problem(heart_rate("h")) is None
    assert v.call_count == 2


def test_newest_weights_only_are_validated(ruleset: LoadedRuleSet) -> None:
    """Of ten weights only the two the rules read (newest, and the one before it for the
    change check) are validated; an invalid old one costs nothing and is not reported."""
    old_invalid = weight_obs("w-old", "heavy", "2025-01-01")
    weights = [weight_obs(f"w{d:02d}", 70 + d / 10, f"2026-11-{d:02d}") for d in range(1, 11)]
    ctx = context(ruleset, data(old_invalid, *weights))
    with mock.patch.object(index_module, "validate_r4b", wraps=index_module.validate_r4b) as v:
        facts = weight.build(ctx)
    assert v.call_count == 2
    assert facts[0]["ref"] == "Observation/w10" and facts[0]["kg"] == 71.0
    assert facts[0]["change_pct"] is not None
    assert ctx.invalid == []


def test_an_invalid_newest_weight_is_named_and_the_next_one_decides(
    ruleset: LoadedRuleSet,
) -> None:
    newest_invalid = weight_obs("w-new", "heavy", "2026-11-19")
    ctx = context(
        ruleset,
        data(
            weight_obs("w1", 70, "2026-11-10"), newest_invalid, weight_obs("w2", 72, "2026-11-15")
        ),
    )
    facts = weight.build(ctx)
    assert facts[0]["ref"] == "Observation/w2"
    assert [r for r, _problem in ctx.invalid] == ["Observation/w-new"]


def test_contexts_of_one_request_share_the_index(ruleset: LoadedRuleSet) -> None:
    patient_data = data(weight_obs("w1", 70, "2026-11-17"))
    first = context(ruleset, patient_data)
    shared = first.data_index
    second = FactContext(
        hook="order-sign",
        context={"patientId": "p"},
        data=patient_data,
        t0=T0,
        tz=ZoneInfo("UTC"),
        policy=ruleset.policy,
        valuesets=ruleset.valuesets,
        prefetch=shared,
    )
    assert second.data_index is shared
    other = context(ruleset, data())
    assert other.data_index is not shared  # another request's data: its own index


def test_same_codings_share_one_lookup_and_odd_json_is_read_safely(
    ruleset: LoadedRuleSet,
) -> None:
    w1, w2 = weight_obs("w1", 70, "2026-11-17"), weight_obs("w2", 71, "2026-11-18")
    idx = new_index(ruleset, data(w1, w2))
    with mock.patch.object(idx, "_compute", wraps=idx._compute) as computed:
        assert "VS-BODY-WEIGHT" in idx.coded_in(w1["code"])
        assert "VS-BODY-WEIGHT" in idx.coded_in(w2["code"])
    assert computed.call_count == 1
    odd = [
        {"coding": "29463-7"},
        {"coding": ["29463-7"]},
        {"coding": [{"system": LOINC, "code": ["29463-7"]}]},
        {"coding": [{"system": 7, "code": "29463-7"}]},
        "29463-7",
        None,
    ]
    assert [idx.coded_in(c) for c in odd] == [frozenset()] * len(odd)


def test_name_matches_are_kept_per_distinct_text(ruleset: LoadedRuleSet) -> None:
    codes = ValueSetIndex(ruleset.valuesets, ruleset.valueset_files)
    idx = PrefetchIndex(data(), ZoneInfo("UTC"), ruleset.valuesets, codes)
    with mock.patch.object(codes, "text_matches", wraps=codes.text_matches) as scanned:
        first = idx.text_matches("ketamine hydrochloride injection", None)
        first.add("changed by the caller")
        again = idx.text_matches("ketamine hydrochloride injection", None)
    assert scanned.call_count == 1
    assert "VS-KETAMINE" in again and "changed by the caller" not in again
