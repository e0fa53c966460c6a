"""Request bytes per patient with broad and with narrow prefetch templates, on the real
third-party bundles (``../shared/fhir/third-party``, read in place).

Each bundle becomes a ``kap-order-sign`` request with every key as an EHR answering the broad
templates would send it (``bench/thirdparty.py``); the narrow request is the same with each
narrowed key answered as a FHIR server would answer discovery's narrow template
(``cds.fhir.narrow.narrow_prefetch``). Sizes are the compact JSON bodies.

    .venv/bin/python -m bench.prefetch_bytes [--out bench/results/prefetch-bytes.md]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import orjson

from bench.thirdparty import load_cases
from cds.config import Settings
from cds.fhir.narrow import narrow_prefetch, narrow_templates
from cds.ruleset.loader import load_ruleset


def _entries(prefetch: dict[str, object]) -> int:
    total = 0
    for value in prefetch.values():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            total += len(value.get("entry") or [])  # type: ignore[arg-type]
        elif value is not None:
            total += 1
    return total


def measure() -> list[tuple[str, int, int, int, int]]:
    ruleset = load_ruleset(Settings(_env_file=None).rules_dir)  # type: ignore[call-arg]
    templates = narrow_templates(ruleset.valueset_files)
    rows = []
    for case in load_cases():
        broad = case.request
        narrow = {**broad, "prefetch": narrow_prefetch(broad["prefetch"], templates)}
        rows.append(
            (
                case.name,
                len(orjson.dumps(broad)),
                len(orjson.dumps(narrow)),
                _entries(broad["prefetch"]),
                _entries(narrow["prefetch"]),
            )
        )
    return rows


def render(rows: list[tuple[str, int, int, int, int]]) -> str:
    lines = [
        "| bundle | broad bytes | narrow bytes | narrow / broad "
        "| broad resources | narrow resources |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, broad, narrow, rb, rn in rows:
        lines.append(
            f"| {name} | {broad:,} | {narrow:,} | {narrow / broad:.0%} | {rb:,} | {rn:,} |"
        )
    broad_total = sum(r[1] for r in rows)
    narrow_total = sum(r[2] for r in rows)
    lines.append(
        f"| **all {len(rows)}** | {broad_total:,} | {narrow_total:,} | "
        f"{narrow_total / broad_total:.0%} | {sum(r[3] for r in rows):,} | "
        f"{sum(r[4] for r in rows):,} |"
    )
    median_b = statistics.median(r[1] for r in rows)
    median_n = statistics.median(r[2] for r in rows)
    lines.append("")
    lines.append(
        f"Median per patient: {median_b:,.0f} bytes broad, {median_n:,.0f} bytes narrow; "
        f"largest: {max(r[1] for r in rows):,} -> {max(r[2] for r in rows):,} bytes."
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args()
    table = render(measure())
    print(table)
    if args.out:
        args.out.write_text(table, encoding="utf-8")


if __name__ == "__main__":
    main()
