"""Each rule's fixtures (``fhir_examples/cases/<rule id>/*.json``) and whether they pass.

Case files are read one by one, so a single malformed file (a rule being written right now)
shows up as that file's error instead of hiding every other rule's results.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from cds.ruleset.cases import Case, LoadedCase, run_case

logger = logging.getLogger(__name__)

Status = Literal["pass", "fail", "error", "not run"]


@dataclass(frozen=True)
class FixtureResult:
    name: str
    description: str
    status: Status
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Entry:
    rule_id: str
    name: str
    case: LoadedCase | None
    error: str | None


def _read(examples_dir: Path) -> list[_Entry]:
    entries = []
    for path in sorted((examples_dir / "cases").glob("*/*.json")):
        rule_id, name = path.parent.name, path.stem
        try:
            case = Case.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValidationError) as exc:
            entries.append(_Entry(rule_id, name, None, f"invalid case file: {_first_line(exc)}"))
            continue
        entries.append(_Entry(rule_id, name, LoadedCase(path, rule_id, name, case), None))
    return entries


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def list_fixtures(examples_dir: Path, reason: str = "") -> dict[str, list[FixtureResult]]:
    """The fixtures without running them (``reason`` says why, e.g. no evaluator)."""
    found: dict[str, list[FixtureResult]] = defaultdict(list)
    for entry in _read(examples_dir):
        description = entry.case.case.description if entry.case else ""
        problems = (entry.error,) if entry.error else ((reason,) if reason else ())
        status: Status = "error" if entry.error else "not run"
        found[entry.rule_id].append(FixtureResult(entry.name, description, status, problems))
    return dict(found)


def run_fixtures(
    evaluator: Any, settings: Any, examples_dir: Path
) -> dict[str, list[FixtureResult]]:
    """Run every fixture through gathering and ``evaluator`` (a ``RuleEvaluator``), in process."""
    results: dict[str, list[FixtureResult]] = defaultdict(list)
    for entry in _read(examples_dir):
        results[entry.rule_id].append(_run(entry, evaluator, settings, examples_dir))
    return dict(results)


def _run(entry: _Entry, evaluator: Any, settings: Any, examples_dir: Path) -> FixtureResult:
    if entry.case is None:
        return FixtureResult(entry.name, "", "error", (entry.error or "unreadable",))
    description = entry.case.case.description
    try:
        outcome = run_case(entry.case, evaluator, settings, examples_dir)
    except Exception as exc:  # a broken fixture is a finding for the report, not a crash
        logger.warning("fixture %s/%s raised %s", entry.rule_id, entry.name, type(exc).__name__)
        return FixtureResult(entry.name, description, "error", (f"{type(exc).__name__}: {exc}",))
    status: Status = "pass" if outcome.passed else "fail"
    return FixtureResult(entry.name, description, status, tuple(outcome.problems))
