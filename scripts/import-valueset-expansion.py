#!/usr/bin/env python3
"""Turn a published FHIR ValueSet expansion (e.g. a VSAC value set as the eCQM content
repositories ship it) into the ``expansions:`` entry of a kap-cds value set file.

    scripts/import-valueset-expansion.py VALUESET.json --definition "<<13746004" \\
        --source-repo https://github.com/cqframework/ecqm-content-qicore-2025 \\
        --coverage "..." [--system http://snomed.info/sct] [--exclude CODE ...] \\
        >> rules/valuesets/VS-BIPOLAR.yaml

Only the codes of one system are taken (SNOMED CT by default): the value set files keep their
ICD-10-CM prefixes, which already cover every subcode. Excluded codes are left out of the list
(say why in --coverage). The file must not already have an ``expansions:`` key: append to a file
without one, or replace the existing block by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml


def expansion_entry(valueset: dict, args: argparse.Namespace) -> dict:
    expansion = valueset["expansion"]
    excluded = set(args.exclude)
    codes = sorted(
        (
            {"code": c["code"], "display": c.get("display")}
            for c in expansion["contains"]
            if c.get("system") == args.system and c["code"] not in excluded
        ),
        key=lambda c: c["code"],
    )
    editions = sorted({c.get("version", "") for c in expansion["contains"]} - {""})
    version = f"{valueset.get('version')}; code system {', '.join(editions)}".strip("; ")
    source = f"{valueset.get('publisher', 'VSAC')} value set {valueset['id']} '{valueset['title']}'"
    if args.source_repo:
        source += f", as published in {args.source_repo}"
    return {
        "definition": args.definition,
        "system": args.system,
        "source": source,
        "url": valueset["url"],
        "version": version,
        "expanded": _expansion_date(expansion),
        "coverage": args.coverage,
        "codes": codes,
    }


def _expansion_date(expansion: dict) -> str:
    """The expansion timestamp; VSAC exports without one carry the release date (YYYYMMDD) as
    the expansion identifier."""
    stamp = str(expansion.get("timestamp") or "")
    if stamp:
        return stamp[:10]
    ident = str(expansion.get("identifier") or "")
    if len(ident) == 8 and ident.isdigit():
        return f"{ident[:4]}-{ident[4:6]}-{ident[6:]}"
    raise SystemExit("the expansion has no timestamp: give the value set a dated expansion")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("valueset", type=Path)
    parser.add_argument("--definition", required=True)
    parser.add_argument("--coverage", required=True)
    parser.add_argument("--system", default="http://snomed.info/sct")
    parser.add_argument("--source-repo", default="")
    parser.add_argument("--exclude", nargs="*", default=[])
    args = parser.parse_args()
    valueset = json.loads(args.valueset.read_text(encoding="utf-8"))
    entry = expansion_entry(valueset, args)
    sys.stdout.write(
        yaml.safe_dump({"expansions": [entry]}, sort_keys=False, width=110, allow_unicode=True)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
