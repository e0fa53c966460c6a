"""What changed between two rule sets: rules added, removed and changed (with the fields, the
parts by the bump policy, and whether the version bump satisfies it), value sets, policy and
override reasons. Uses the catalog's digests, so the verdict matches ``kap-cds rules lint``."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from cds.ruleset.catalog import actual_bump, build_catalog, required_bump
from cds.ruleset.loader import LoadedRuleSet
from cds.ruleset.model import RuleFile
from cds.ruleset.valuesets import CodeEntry, ValueSetFile

RANK = {None: 0, "patch": 1, "minor": 2, "major": 3}
_LOGIC = ("suppressed_by", "condition", "enabled_if")
_SHAPE = ("hooks", "indicator", "variant added", "variant removed")


@dataclass(frozen=True)
class RuleChange:
    rule_id: str
    old_version: str
    new_version: str
    needed: str | None  # bump the policy requires
    done: str | None  # bump the versions show (None: not increased)
    parts: tuple[str, ...]  # shape / logic / text
    fields: tuple[str, ...]
    yaml_diff: str

    @property
    def violates(self) -> bool:
        return RANK[self.done] < RANK[self.needed]


@dataclass(frozen=True)
class RuleSetDiff:
    old_label: str
    new_label: str
    old_digest: str
    new_digest: str
    added: tuple[dict[str, Any], ...]
    removed: tuple[dict[str, Any], ...]
    changed: tuple[RuleChange, ...]
    valuesets: tuple[str, ...]
    policy: tuple[str, ...]
    override_reasons: tuple[str, ...]

    @property
    def violations(self) -> list[RuleChange]:
        return [c for c in self.changed if c.violates]


def diff_rulesets(
    old: LoadedRuleSet, new: LoadedRuleSet, old_label: str, new_label: str
) -> RuleSetDiff:
    old_entries = {e["id"]: e for e in build_catalog(old)["rules"]}
    new_entries = {e["id"]: e for e in build_catalog(new)["rules"]}
    changed = tuple(
        _rule_change(old, new, old_entries[rid], new_entries[rid])
        for rid in sorted(old_entries.keys() & new_entries.keys())
        if old_entries[rid]["sha256"] != new_entries[rid]["sha256"]
    )
    return RuleSetDiff(
        old_label,
        new_label,
        old.digest,
        new.digest,
        tuple(new_entries[r] for r in sorted(new_entries.keys() - old_entries.keys())),
        tuple(old_entries[r] for r in sorted(old_entries.keys() - new_entries.keys())),
        changed,
        tuple(valueset_changes(old.valueset_files, new.valueset_files)),
        tuple(policy_changes(old, new)),
        tuple(_mapping_changes("override reason", old.override_reasons, new.override_reasons)),
    )


def _rule_change(
    old: LoadedRuleSet, new: LoadedRuleSet, old_entry: dict[str, Any], new_entry: dict[str, Any]
) -> RuleChange:
    rule_id = old_entry["id"]
    before, after = old.rules[rule_id], new.rules[rule_id]
    fields = changed_fields(before.rule, after.rule)
    parts = [
        name
        for name, key in (("shape", "shape"), ("logic", "logic"))
        if old_entry[key] != new_entry[key]
    ]
    if any(not _is_logic_or_shape(f) for f in fields):
        parts.append("text")
    text_diff = difflib.unified_diff(
        before.path.read_text(encoding="utf-8").splitlines(keepends=True),
        after.path.read_text(encoding="utf-8").splitlines(keepends=True),
        fromfile=f"a/{old_entry['path']}",
        tofile=f"b/{new_entry['path']}",
    )
    return RuleChange(
        rule_id,
        old_entry["version"],
        new_entry["version"],
        required_bump(old_entry, new_entry),
        actual_bump(old_entry["version"], new_entry["version"]),
        tuple(parts),
        tuple(fields),
        "".join(text_diff),
    )


def _is_logic_or_shape(field: str) -> bool:
    last = field.rsplit(".", 1)[-1]
    return last in _LOGIC or last in _SHAPE or field.startswith(_SHAPE)


def changed_fields(old: RuleFile, new: RuleFile) -> list[str]:
    """Dotted names of what differs: ``title``, ``variants.order.condition``, ``variant added:
    dosing-day``."""
    a, b = old.model_dump(mode="json", by_alias=True), new.model_dump(mode="json", by_alias=True)
    fields = [k for k in sorted(a.keys() | b.keys()) if k != "variants" and a.get(k) != b.get(k)]
    old_variants = {v["name"]: v for v in a["variants"]}
    new_variants = {v["name"]: v for v in b["variants"]}
    fields += [f"variant removed: {n}" for n in old_variants if n not in new_variants]
    fields += [f"variant added: {n}" for n in new_variants if n not in old_variants]
    for name in [n for n in old_variants if n in new_variants]:
        ov, nv = old_variants[name], new_variants[name]
        fields += [
            f"variants.{name}.{k}" for k in sorted(ov.keys() | nv.keys()) if ov.get(k) != nv.get(k)
        ]
    if [v["name"] for v in a["variants"]] != [v["name"] for v in b["variants"]] and set(
        old_variants
    ) == set(new_variants):
        fields.append("variants (order)")
    return fields


def _entry_key(entry: CodeEntry) -> str:
    return f"{entry.system}|{entry.code if entry.code is not None else f'{entry.prefix}*'}"


def valueset_changes(old: dict[str, ValueSetFile], new: dict[str, ValueSetFile]) -> list[str]:
    lines = [
        f"value set added: {v} ({new[v].title}, {len(new[v].include)} codes)"
        for v in sorted(new.keys() - old.keys())
    ]
    lines += [f"value set removed: {v}" for v in sorted(old.keys() - new.keys())]
    for vs_id in sorted(old.keys() & new.keys()):
        if old[vs_id] != new[vs_id]:
            lines += [f"{vs_id}: {line}" for line in _one_valueset(old[vs_id], new[vs_id])]
    return lines


def _one_valueset(old: ValueSetFile, new: ValueSetFile) -> list[str]:
    lines: list[str] = []
    for part in ("include", "exclude"):
        before = {_entry_key(e): e for e in getattr(old, part)}
        after = {_entry_key(e): e for e in getattr(new, part)}
        lines += [
            f"{part} + {k} ({after[k].display or ''}, confidence {after[k].confidence})"
            for k in sorted(after.keys() - before.keys())
        ]
        lines += [f"{part} - {k}" for k in sorted(before.keys() - after.keys())]
        lines += [
            f"{part} ~ {k}: " + _entry_delta(before[k], after[k])
            for k in sorted(before.keys() & after.keys())
            if before[k] != after[k]
        ]
    if old.names != new.names:
        lines.append(f"names: {', '.join(old.names) or '-'} -> {', '.join(new.names) or '-'}")
    for attr in ("title", "description", "notes"):
        if getattr(old, attr) != getattr(new, attr):
            lines.append(f"{attr} changed")
    return lines


def _entry_delta(old: CodeEntry, new: CodeEntry) -> str:
    a, b = old.model_dump(), new.model_dump()
    return ", ".join(f"{k} {a[k]!r} -> {b[k]!r}" for k in a if a[k] != b[k])


def policy_changes(old: LoadedRuleSet, new: LoadedRuleSet) -> list[str]:
    before, after = old.policy.entries, new.policy.entries
    lines = [
        f"policy added: {k} = {after[k].value} ({after[k].basis})" for k in after if k not in before
    ]
    lines += [f"policy removed: {k}" for k in before if k not in after]
    for key in [k for k in after if k in before and before[k] != after[k]]:
        a, b = before[key].model_dump(), after[key].model_dump()
        lines.append(
            f"policy {key}: " + ", ".join(f"{f} {a[f]!r} -> {b[f]!r}" for f in a if a[f] != b[f])
        )
    return lines


def _mapping_changes(what: str, old: dict[str, str], new: dict[str, str]) -> list[str]:
    lines = [f"{what} added: {k} ({new[k]})" for k in new if k not in old]
    lines += [f"{what} removed: {k}" for k in old if k not in new]
    lines += [f"{what} {k}: {old[k]!r} -> {new[k]!r}" for k in new if k in old and old[k] != new[k]]
    return lines
