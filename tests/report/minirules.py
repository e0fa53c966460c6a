"""A small, self-contained rule set written into tmp_path, so report and diff tests do not depend
on the repository's rule files (which other people edit) for their exact assertions."""

from __future__ import annotations

from pathlib import Path

import yaml

POLICY = {
    "bp_lookback_days": {
        "value": 30,
        "unit": "days",
        "rules": ["KAP-CI-901"],
        "basis": "POLICY",
        "note": "Look-back for a blood pressure at order time.",
    },
    "bp_warning_systolic": {
        "value": 140,
        "unit": "mm[Hg]",
        "rules": ["KAP-CI-901"],
        "basis": "label",
        "note": "Label: consider delaying if > 140/90.",
    },
    "bp_warning_diastolic": {
        "value": 90,
        "unit": "mm[Hg]",
        "rules": ["KAP-CI-901"],
        "basis": "label",
        "note": "Label: consider delaying if > 140/90.",
    },
    "strict_mode": {
        "value": False,
        "rules": ["KAP-CI-902"],
        "basis": "POLICY",
        "note": "Show the strict variant.",
    },
}
REASONS = {"OR-BENEFIT": "Benefit outweighs risk", "OR-DATA-WRONG": "Data in chart is wrong"}
VALUESET = {
    "id": "VS-MOOD-TEST",
    "title": "Mood stabilizers (test)",
    "description": "Lithium and friends.",
    "include": [
        {
            "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
            "code": "6448",
            "display": "lithium",
            "confidence": "C",
        },
        {
            "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
            "code": "99999",
            "display": "unverified stabilizer",
            "confidence": "V",
            "note": "check me",
        },
    ],
}


def bp_rule(
    version: str = "1.0.0",
    systolic: str = "policy.bp_warning_systolic",
    summary: str = "BP {bp.sbp}/{bp.dbp} is high — weigh <risk> & benefit.",
    indicator: str = "warning",
) -> dict[str, object]:
    return {
        "id": "KAP-CI-901",
        "title": "Elevated blood pressure <test> & co",
        "family": "contraindication",
        "version": version,
        "status": "active",
        "owner": "Test medical director",
        "effective_date": "2026-11-22",
        "hooks": ["order-sign"],
        "when": "The newest blood pressure is above 140/90 <b>bold</b>.",
        "then": "Warning card with a BP re-check.",
        "evidence": [
            {
                "id": "REF-01b",
                "text": "Consider delaying if >140/90 mmHg.",
                "url": "https://example.org/label?a=1&b=2",
            }
        ],
        "override_reasons": ["OR-BENEFIT", "OR-DATA-WRONG"],
        "links": [{"label": "SPRAVATO REMS", "url": "https://www.spravatorems.com/"}],
        "variants": [
            {
                "name": "order",
                "indicator": indicator,
                "condition": {
                    "all": [
                        {"fact": "plan", "where": {"drug": "esketamine"}},
                        {
                            "fact": "bp",
                            "where": {
                                "days_ago": {"le": "policy.bp_lookback_days"},
                                "any": [
                                    {"sbp": {"gt": systolic}},
                                    {"dbp": {"gt": "policy.bp_warning_diastolic"}},
                                ],
                            },
                        },
                    ],
                    "none": [
                        {"fact": "medication", "where": {"vs": "VS-MOOD-TEST", "active": True}}
                    ],
                },
                "summary": summary,
                "detail": "Repeat the **BP** after rest. <script>alert(1)</script>",
                "evidence": "Observation: BP {bp.sbp}/{bp.dbp}",
                "suggestions": [
                    {"label": "Order a blood pressure check", "action": "order-bp-check"}
                ],
            }
        ],
    }


def draft_rule() -> dict[str, object]:
    return {
        "id": "KAP-CI-902",
        "title": "Draft strict rule",
        "family": "contraindication",
        "version": "0.1.0",
        "status": "draft",
        "status_reason": "awaiting clinical sign-off",
        "owner": "Test medical director",
        "effective_date": "2026-12-01",
        "hooks": ["order-sign"],
        "when": "Always, when strict mode is on.",
        "then": "Info card.",
        "evidence": [{"id": "S-002", "text": "Seed text."}],
        "suppressed_by": ["KAP-CI-901"],
        "variants": [
            {
                "name": "strict",
                "indicator": "info",
                "enabled_if": "policy.strict_mode",
                "condition": {"all": [{"fact": "plan"}]},
                "summary": "Strict mode note.",
                "detail": "Strict.",
            }
        ],
    }


def write_yaml(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def write_ruleset(root: Path, rules: list[dict[str, object]] | None = None) -> Path:
    write_yaml(root / "policy.yaml", POLICY)
    write_yaml(root / "override-reasons.yaml", REASONS)
    write_yaml(root / "valuesets" / "VS-MOOD-TEST.yaml", VALUESET)
    for rule in rules if rules is not None else [bp_rule(), draft_rule()]:
        write_rule(root, rule)
    return root


def write_rule(root: Path, rule: dict[str, object]) -> None:
    write_yaml(root / str(rule["family"]) / f"{rule['id']}.yaml", rule)
