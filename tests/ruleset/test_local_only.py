"""Site value-set overlay (KAP_CDS_VALUESET_OVERLAY) and the lint list of rules that only a
local code can satisfy."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds.errors import RuleLoadError
from cds.ruleset.loader import load_ruleset
from cds.ruleset.local_only import local_only_needs
from cds.ruleset.valuesets import URI_SYSTEM_NAME

RULES = Path(__file__).resolve().parents[2] / "rules"
SITE_PREP = "http://ehr.example.org/fhir/CodeSystem/visit-type"

OVERLAY = f"""
- id: VS-KAP-PREPARATION
  reason: Our EHR books KAP preparation visits as visit type PREP-KAP.
  include:
  - {{system: "{SITE_PREP}", code: PREP-KAP, display: KAP preparation visit}}
- id: VS-REMS-PATIENT-ID
  reason: Our EHR stores the SPRAVATO REMS patient ID under this identifier system.
  include:
  - {{system: "{URI_SYSTEM_NAME}", code: "https://ehr.example.org/id/spravato-rems"}}
"""


def _needs_by_rule(overlay: Path | None = None) -> dict[str, list[str]]:
    ruleset = load_ruleset(RULES, None, overlay)
    return {
        rule.id: needs
        for rule in ruleset.active_rules
        if (needs := local_only_needs(rule, ruleset.valueset_files))
    }


def test_lint_lists_the_rules_only_local_visit_codes_satisfy() -> None:
    listed = _needs_by_rule()
    assert set(listed) == {"KAP-QUAL-004", "KAP-QUAL-005", "KAP-DRV-005"}
    assert listed["KAP-QUAL-004"] == ["visit:preparation (VS-KAP-PREPARATION)"]
    # Satisfied by standard data too, so not listed: REMS, stability, escort, intake, consent.
    for rule_id in ("KAP-QUAL-003", "KAP-DRV-003", "KAP-DRV-002", "KAP-FAST-004", "KAP-QUAL-001"):
        assert rule_id not in listed


def test_overlay_merges_site_codes_and_takes_the_rule_off_the_list(tmp_path: Path) -> None:
    overlay = tmp_path / "site-valuesets.yaml"
    overlay.write_text(OVERLAY, encoding="utf-8")
    ruleset = load_ruleset(RULES, None, overlay)
    assert ruleset.valuesets["VS-KAP-PREPARATION"].matches_coding(SITE_PREP, "PREP-KAP")
    assert ruleset.valuesets["VS-KAP-PREPARATION"].matches_coding(
        "urn:kap-cds:appointment-type", "kap-preparation"
    )  # the shipped codes stay
    rems = ruleset.valuesets["VS-REMS-PATIENT-ID"]
    assert rems.matches_coding(URI_SYSTEM_NAME, "https://ehr.example.org/id/spravato-rems")
    assert "KAP-QUAL-004" not in _needs_by_rule(overlay)
    # The mapping is part of what decides a card, so it changes the rule-set digest.
    assert ruleset.digest != load_ruleset(RULES).digest


def test_overlay_directory_is_read_file_by_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        f"id: VS-KAP-PREPARATION\nreason: r\ninclude:\n- {{system: '{SITE_PREP}', code: P1}}\n",
        encoding="utf-8",
    )
    (tmp_path / "b.yaml").write_text(
        f"id: VS-KAP-PREPARATION\nreason: r\ninclude:\n- {{system: '{SITE_PREP}', code: P2}}\n",
        encoding="utf-8",
    )
    prep = load_ruleset(RULES, None, tmp_path).valuesets["VS-KAP-PREPARATION"]
    assert prep.matches_coding(SITE_PREP, "P1") and prep.matches_coding(SITE_PREP, "P2")


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ("id: VS-NOT-SHIPPED\nreason: r\ninclude:\n- {system: s, code: c}\n", "[0].id", "unknown"),
        ("id: VS-KAP-PREPARATION\ninclude:\n- {system: s, code: c}\n", "[0].reason", "Field"),
        ("id: VS-KAP-PREPARATION\nreason: r\n", "[0]", "include"),
        (
            "id: VS-KAP-PREPARATION\nreason: r\ninclude:\n- {system: s}\n",
            "[0].include.0",
            "exactly one",
        ),
        ("- id: VS-KAP-PREPARATION\n  reason: r\n  colour: red\n", "[0].colour", "Extra"),
    ],
)
def test_a_bad_overlay_is_refused_with_file_entry_and_reason(
    tmp_path: Path, body: str, field: str, reason: str
) -> None:
    overlay = tmp_path / "site.yaml"
    overlay.write_text(body, encoding="utf-8")
    with pytest.raises(RuleLoadError) as info:
        load_ruleset(RULES, None, overlay)
    assert info.value.file == str(overlay)
    assert info.value.field is not None and info.value.field.startswith(field)
    assert reason.lower() in info.value.reason.lower()


def test_a_missing_overlay_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuleLoadError, match="not found"):
        load_ruleset(RULES, None, tmp_path / "absent.yaml")
