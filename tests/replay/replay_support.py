"""Helpers for the shadow and replay tests: rule-set copies with one change.

The candidate rule sets are copies of the repository's rules with a single edit, so each test
shows the effect of a real change (the blood-pressure hard stop moved, a rule put in shadow)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

from cds.config import DEFAULT_RULES_DIR, REPO_ROOT

EXAMPLES = REPO_ROOT / "fhir_examples"
BP_RULES = ("KAP-CI-010", "KAP-CI-011")


def copy_rules(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(DEFAULT_RULES_DIR, target)
    return target


def lower_bp_hard_stop(rules_dir: Path, systolic: int = 170, diastolic: int = 105) -> None:
    """The change a medical director might propose: hard stop at 170/105 instead of 180/110."""
    policy = rules_dir / "policy.yaml"
    text = policy.read_text(encoding="utf-8")
    text, n_sys = re.subn(r"(bp_hard_stop_systolic:\n  value: )\d+", rf"\g<1>{systolic}", text)
    text, n_dia = re.subn(r"(bp_hard_stop_diastolic:\n  value: )\d+", rf"\g<1>{diastolic}", text)
    assert n_sys == n_dia == 1, "policy.yaml no longer has the BP hard-stop entries"
    policy.write_text(text, encoding="utf-8")


def put_in_shadow(rules_dir: Path, rule_id: str) -> None:
    [path] = rules_dir.glob(f"*/{rule_id}.yaml")
    text = path.read_text(encoding="utf-8")
    assert "\nstatus: active\n" in text
    text = text.replace(
        "\nstatus: active\n", "\nstatus: shadow\nstatus_reason: silent trial before go-live\n"
    )
    path.write_text(text, encoding="utf-8")


RulesFactory = Callable[[str], Path]
