"""Site policy: the catalog's POLICY thresholds and switches, in one reviewed file.

``rules/policy.yaml`` holds each value with its unit, the rules that use it and why it has that
default. A site overrides values (never adds keys) in the file named by ``KAP_CDS_POLICY_FILE``,
a plain ``key: value`` mapping. The effective values go into the rule-set digest, so a card can
always be traced to the thresholds that produced it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cds.errors import RuleLoadError

PolicyValue = bool | int | float | str


class PolicyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    value: PolicyValue
    unit: str | None = None
    rules: list[str] = Field(min_length=1)
    basis: Literal["POLICY", "seed", "label", "literature"]
    note: str


@dataclass(frozen=True)
class Policy:
    entries: dict[str, PolicyEntry]
    values: dict[str, PolicyValue]
    overridden: frozenset[str]  # keys the site policy file changed

    def __getitem__(self, key: str) -> PolicyValue:
        return self.values[key]

    def number(self, key: str) -> float:
        value = self.values[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"policy {key} is not a number")
        return float(value)

    def flag(self, key: str) -> bool:
        return bool(self.values[key])


def _read_yaml(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RuleLoadError(str(path), None, None, f"cannot read: {exc}") from None


def load_policy(defaults_file: Path, site_file: Path | None) -> Policy:
    raw = _read_yaml(defaults_file)
    if not isinstance(raw, dict):
        raise RuleLoadError(str(defaults_file), None, None, "expected a mapping of policy keys")
    entries: dict[str, PolicyEntry] = {}
    for key, body in raw.items():
        try:
            entries[str(key)] = PolicyEntry.model_validate(body)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join([str(key), *(str(p) for p in err["loc"])])
            raise RuleLoadError(str(defaults_file), None, field, err["msg"]) from None
    values = {k: e.value for k, e in entries.items()}
    overridden = _apply_site(values, site_file) if site_file else frozenset()
    return Policy(entries, values, overridden)


def _apply_site(values: dict[str, PolicyValue], site_file: Path) -> frozenset[str]:
    raw = _read_yaml(site_file) or {}
    if not isinstance(raw, dict):
        raise RuleLoadError(str(site_file), None, None, "expected a mapping of key: value")
    for key, value in raw.items():
        if key not in values:
            raise RuleLoadError(str(site_file), None, str(key), "unknown policy key")
        default = values[key]
        if type(value) is not type(default) and not (
            isinstance(default, float) and type(value) is int
        ):
            reason = f"expected {type(default).__name__}, got {type(value).__name__}"
            raise RuleLoadError(str(site_file), None, str(key), reason)
        values[key] = value
    return frozenset(str(k) for k in raw)
