"""What a clinician must never read on a card: internal vocabulary, rule ids, FHIR ids and
codes, fractional day counts, dates without their zone, hard-wrapped sentences, links for another
drug. Used by the test that renders every fixture's cards (tests/cards/test_card_wording.py)."""

from __future__ import annotations

import re
from typing import Any

from cds.ruleset.loader import LoadedRuleSet

RESOURCE_TYPES = (
    "Patient|Condition|Observation|MedicationRequest|MedicationStatement|"
    "MedicationAdministration|Medication|AllergyIntolerance|Procedure|Consent|Appointment|"
    "Encounter|ServiceRequest"
)
FIXED_PATTERNS = {
    "internal word 'seed'": re.compile(r"\bseeds?\b", re.IGNORECASE),
    "internal word 'catalog'": re.compile(r"\bcatalog", re.IGNORECASE),
    "internal word 'POLICY'": re.compile(r"\bPOLICY\b"),
    "policy placeholder": re.compile(r"\bpolicy\.[a-z_]+"),
    "rule id": re.compile(r"\bKAP-(CI|DRV|FAST|INT|DOSE|QUAL|DATA)-\d{3}\b"),
    "value-set id": re.compile(r"\bVS-[A-Z0-9-]+\b"),
    "FHIR resource id": re.compile(rf"\b({RESOURCE_TYPES})/[A-Za-z0-9.\-]+"),
    "local code system": re.compile(r"urn:kap-cds"),
    "fractional days": re.compile(r"\b\d+\.\d+ days?\b"),
    "ISO date": re.compile(r"\b\d{4}-\d{2}-\d{2}\b"),
    "unfilled placeholder": re.compile(r"\{[a-z_]+\.[a-z_]+\}"),
    "time without zone": re.compile(r"\b\d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}(?! [A-Z+-])"),
}
_LIST_OR_TABLE = re.compile(r"^\s*([-*+]\s|\d+[.)]\s|\||#)")


def internal_words(ruleset: LoadedRuleSet) -> dict[str, re.Pattern[str]]:
    """Policy keys and multi-word variant names: names from the rule files, never card words."""
    keys = sorted(ruleset.policy.values, key=len, reverse=True)
    variants = sorted(
        {v.name for r in ruleset.active_rules for v in r.variants if v.name.count("-") >= 2},
        key=len,
        reverse=True,
    )
    return {
        "policy key": re.compile(r"\b(" + "|".join(map(re.escape, keys)) + r")\b"),
        "variant name": re.compile(r"\b(" + "|".join(map(re.escape, variants)) + r")\b"),
    }


def hard_wraps(detail: str) -> list[str]:
    """Lines that continue the sentence of the line before (a newline in mid-paragraph)."""
    found = []
    lines = detail.split("\n")
    for before, line in zip(lines, lines[1:], strict=False):
        # A line indented 3 spaces is a paragraph of a numbered checklist line, not a wrap.
        continues = line.strip() and not line.startswith("   ")
        if before.strip() and continues and not _LIST_OR_TABLE.match(line):
            found.append(f"{before[-30:]!r} / {line[:30]!r}")
    return found


def wording_problems(
    card: dict[str, Any], drug: str | None, patterns: dict[str, re.Pattern[str]]
) -> list[str]:
    problems = []
    for field in ("summary", "detail"):
        text = str(card.get(field) or "")
        for why, pattern in patterns.items():
            match = pattern.search(text)
            if match:
                problems.append(f"{field}: {why} {match.group(0)!r}")
    problems += [f"detail: hard wrap {w}" for w in hard_wraps(str(card.get("detail") or ""))]
    if drug != "esketamine":
        problems += [
            f"link for esketamine on a {drug} card: {link['label']}"
            for link in card.get("links") or []
            if "spravato" in (link["label"] + link["url"]).lower()
        ]
    return problems
