"""Which medication records are ketamine or esketamine, and by what route.

A record is matched on its medicationCodeableConcept, or on the Medication it references:
contained (``#id``), in the same bundle/prefetch, or by the reference's display text. Esketamine
is tested first: its names and codes are specific, while "ketamine" must not match "esketamine"
(value-set names match whole words only).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cds.facts.fhir import Resource, codings, concept_text, reference_id
from cds.ruleset.valuesets import ValueSet

SNOMED = "http://snomed.info/sct"
KETAMINE_VS = "VS-KETAMINE"
ESKETAMINE_VS = "VS-ESKETAMINE"

# SNOMED CT route codes (catalog 3.3) and the words EHRs put in route text.
ROUTE_CODES = {
    "47625008": "iv",
    "78421000": "im",
    "37839007": "sublingual",
    "54471007": "buccal",
    "46713006": "nasal",
    "26643006": "oral",
}
ROUTE_WORDS = (
    ("intravenous", "iv"),
    ("iv", "iv"),
    ("intramuscular", "im"),
    ("im", "im"),
    ("sublingual", "sublingual"),
    ("buccal", "buccal"),
    ("intranasal", "nasal"),
    ("nasal", "nasal"),
    ("oral", "oral"),
    ("by mouth", "oral"),
    ("po", "oral"),
)


@dataclass(frozen=True)
class KapDrugs:
    ketamine: ValueSet
    esketamine: ValueSet

    def classify_concept(self, concept: Any) -> str | None:
        coded = tuple(codings(concept))
        text = " ".join(filter(None, [concept_text(concept), *(c[2] or "" for c in coded)]))
        return _classify(self.esketamine, self.ketamine, tuple((s, c) for s, c, _ in coded), text)

    def classify(self, record: Resource, medications: dict[str, Resource]) -> str | None:
        """ketamine / esketamine / None for a MedicationRequest, -Statement or -Administration."""
        concept = record.get("medicationCodeableConcept")
        if concept is not None:
            return self.classify_concept(concept)
        reference = record.get("medicationReference")
        medication = _resolve_medication(record, reference, medications)
        if medication is not None:
            found = self.classify_concept(medication.get("code"))
            if found:
                return found
            return self._classify_ingredients(medication.get("ingredient") or ())
        if isinstance(reference, dict):
            return self.classify_concept({"text": reference.get("display") or ""})
        return None

    def _classify_ingredients(self, ingredients: Iterable[Any]) -> str | None:
        for ingredient in ingredients:
            if isinstance(ingredient, dict):
                found = self.classify_concept(ingredient.get("itemCodeableConcept"))
                if found:
                    return found
        return None


@lru_cache(maxsize=16_384)
def _classify(
    esketamine: ValueSet, ketamine: ValueSet, coded: tuple[tuple[Any, Any], ...], text: str
) -> str | None:
    """Remembered: a chart names the same few medications and procedures again and again."""
    for name, vs in (("esketamine", esketamine), ("ketamine", ketamine)):
        if any(vs.matches_coding(s, c) for s, c in coded) or vs.matches_text(text):
            return name
    return None


def _resolve_medication(
    record: Resource, reference: Any, medications: dict[str, Resource]
) -> Resource | None:
    ref_id = reference_id(reference)
    if ref_id is None:
        return None
    if ref_id.startswith("#"):
        for contained in record.get("contained") or ():
            if isinstance(contained, dict) and contained.get("id") == ref_id[1:]:
                return contained
        return None
    return medications.get(ref_id)


def route_of(dosage: Any) -> str:
    """Route of a Dosage (MedicationRequest.dosageInstruction[i] / MedicationStatement.dosage[i]
    / MedicationAdministration.dosage): SNOMED code first, then route text."""
    route = dosage.get("route") if isinstance(dosage, dict) else None
    for system, code, _display in codings(route):
        if system == SNOMED and code in ROUTE_CODES:
            return ROUTE_CODES[code]
    words = concept_text(route).lower().replace("-", " ").split()
    joined = " ".join(words)
    for word, route_name in ROUTE_WORDS:
        if (" " in word and word in joined) or word in words:
            return route_name
    return "unknown"


def medications_by_id(resources: Iterable[Resource]) -> dict[str, Resource]:
    return {str(r["id"]): r for r in resources if isinstance(r, dict) and r.get("id")}
