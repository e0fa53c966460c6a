"""Flattening Bundles and substituting prefetch tokens."""

from __future__ import annotations

import orjson
import pytest
from shared_data import THIRD_PARTY_DIR, third_party_bundles

from cds.fhir.bundles import ResourceIndex, next_link
from cds.fhir.templates import UnresolvableToken, render


def test_index_flattens_bundles_of_any_type_and_deduplicates_by_id() -> None:
    index = ResourceIndex()
    index.add({"resourceType": "Condition", "id": "c1", "note": "first copy"})
    index.add(
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"fullUrl": "urn:uuid:c1", "resource": {"resourceType": "Condition", "id": "c1"}},
                {"resource": {"resourceType": "Condition", "id": "c2"}},
                {"resource": {"resourceType": "Observation"}},
                {"resource": {"resourceType": "Observation"}},
                {"resource": {"resourceType": "OperationOutcome", "issue": []}},
                {"request": {"method": "DELETE", "url": "Condition/c9"}},
            ],
        }
    )

    resources = index.as_dict()

    assert [c.get("note") for c in resources["Condition"]] == ["first copy", None]
    assert len(resources["Observation"]) == 2  # no id: nothing to deduplicate on
    assert "OperationOutcome" not in resources


def test_a_synthea_transaction_bundle_flattens_to_its_entries() -> None:
    third_party_bundles()  # fails under CI, skips elsewhere, when ../shared is missing
    bundle = orjson.loads(
        (THIRD_PARTY_DIR / "Monika_Green_5a422bd7-d15f-4ce5-89f1-d3fa4f19c34e.json").read_bytes()
    )
    index = ResourceIndex()
    index.add(bundle)

    resources = index.as_dict()

    assert len(resources["Patient"]) == 1
    assert sum(map(len, resources.values())) == len(bundle["entry"])


def test_next_link() -> None:
    bundle = {"link": [{"relation": "self", "url": "a"}, {"relation": "next", "url": "b"}]}
    assert next_link(bundle) == "b"
    assert next_link({"link": [{"relation": "self", "url": "a"}]}) is None


CONTEXT = {"patientId": "p-1", "userId": "Practitioner/dr 1", "encounterId": "e.1"}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Patient/{{context.patientId}}", "Patient/p-1"),
        (
            "Encounter?patient={{ context.patientId }}&_id={{context.encounterId}}",
            "Encounter?patient=p-1&_id=e.1",
        ),
        ("{{context.userId}}", "Practitioner/dr%201"),
        ("Practitioner/{{userPractitionerId}}", "Practitioner/dr%201"),
    ],
)
def test_render_substitutes_tokens(template: str, expected: str) -> None:
    assert render(template, CONTEXT) == expected


@pytest.mark.parametrize(
    "token",
    ["userPractitionerRoleId", "context.draftOrders", "context.missing", "context.a.b", "today()"],
)
def test_unresolvable_tokens_name_the_token(token: str) -> None:
    context = {**CONTEXT, "draftOrders": {"resourceType": "Bundle"}}
    with pytest.raises(UnresolvableToken, match=token.replace("(", r"\(").replace(")", r"\)")):
        render("X?a={{" + token + "}}", context)
