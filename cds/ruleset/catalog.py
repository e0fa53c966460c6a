"""The generated rule catalog (``rules/CATALOG.json``) and the version-bump check.

For each rule the catalog keeps its version and three digests: ``sha256`` of the file, ``logic``
(conditions, policy switches, suppressions) and ``shape`` (hooks, variants and their severities,
fact types read). ``kap-cds rules lint`` compares the loaded rules with the catalog and applies
the bump policy of rules/README.md: a changed shape needs a major bump, changed logic a minor
one, any other change a patch. CI fails when the catalog is stale.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cds.ruleset.loader import LoadedRuleSet, RuleSource
from cds.ruleset.model import RuleFile

CATALOG_FILE = "CATALOG.json"


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def logic_digest(rule: RuleFile) -> str:
    return _digest(
        {
            "suppressed_by": sorted(rule.suppressed_by),
            "variants": [
                {
                    "condition": v.condition.model_dump(mode="json", by_alias=True),
                    "enabled_if": v.enabled_if,
                }
                for v in rule.variants
            ],
        }
    )


def shape_digest(rule: RuleFile) -> str:
    return _digest(
        {
            "hooks": sorted(rule.hooks),
            "variants": [(v.name, v.indicator.value) for v in rule.variants],
            "facts": sorted(
                {p.fact for v in rule.variants for p in [*v.condition.all, *v.condition.none]}
            ),
        }
    )


def _entry(source: RuleSource, root: Path) -> dict[str, Any]:
    rule = source.rule
    return {
        "id": rule.id,
        "title": rule.title,
        "family": rule.family,
        "version": rule.version,
        "status": rule.status,
        "indicators": sorted({v.indicator.value for v in rule.variants}),
        "hooks": list(rule.hooks),
        "path": source.path.relative_to(root).as_posix(),
        "sha256": source.sha256,
        "logic": logic_digest(rule),
        "shape": shape_digest(rule),
    }


def build_catalog(ruleset: LoadedRuleSet) -> dict[str, Any]:
    root = ruleset.directory
    return {
        "generated_by": "kap-cds rules catalog",
        "ruleset_digest": ruleset.digest,
        "rules": [_entry(src, root) for _id, src in sorted(ruleset.rules.items())],
        "valuesets": {
            vid: _digest(vs.model_dump(mode="json"))
            for vid, vs in sorted(ruleset.valueset_files.items())
        },
    }


def render_catalog(ruleset: LoadedRuleSet) -> str:
    return json.dumps(build_catalog(ruleset), indent=2, ensure_ascii=False) + "\n"


def read_catalog(directory: Path) -> dict[str, Any] | None:
    path = directory / CATALOG_FILE
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _parse(version: str) -> tuple[int, int, int]:
    major, minor, patch = (int(p) for p in version.split("."))
    return major, minor, patch


def required_bump(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """'major', 'minor', 'patch' or None (unchanged), by the bump policy."""
    if old["sha256"] == new["sha256"]:
        return None
    if old["shape"] != new["shape"]:
        return "major"
    if old["logic"] != new["logic"]:
        return "minor"
    return "patch"


def actual_bump(old_version: str, new_version: str) -> str | None:
    old, new = _parse(old_version), _parse(new_version)
    if new <= old:
        return None
    if new[0] > old[0]:
        return "major"
    return "minor" if new[1] > old[1] else "patch"


_RANK = {None: 0, "patch": 1, "minor": 2, "major": 3}


def version_problems(ruleset: LoadedRuleSet, catalog: dict[str, Any] | None) -> list[str]:
    """Rules whose content changed without the version bump the policy requires."""
    if catalog is None:
        return []
    previous = {r["id"]: r for r in catalog.get("rules", [])}
    problems = []
    for rule_id, source in sorted(ruleset.rules.items()):
        old = previous.get(rule_id)
        if old is None:
            continue
        new = _entry(source, ruleset.directory)
        needed = required_bump(old, new)
        done = actual_bump(old["version"], new["version"])
        if needed and _RANK[done] < _RANK[needed]:
            problems.append(
                f"{source.path}: [{rule_id}] changed ({needed} change by the bump policy) but "
                f"version went {old['version']} -> {new['version']}; bump the {needed} version"
            )
    return problems


def catalog_is_current(ruleset: LoadedRuleSet) -> bool:
    return read_catalog(ruleset.directory) == build_catalog(ruleset)
