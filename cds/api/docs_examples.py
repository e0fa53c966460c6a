"""Example requests for the OpenAPI document: one per service, read from
``fhir_examples/requests/`` (the same files the README's "Try it" posts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

# service id -> (example file, what it shows)
EXAMPLE_FILES = {
    "kap-order-select": ("order-select-ketamine-iv.json", "IV ketamine selected, bare chart"),
    "kap-order-sign": ("order-sign-ketamine-iv.json", "IV ketamine 35 mg signed, bare chart"),
    "kap-appointment-book": ("appointment-book-dosing.json", "a dosing visit booked"),
    "kap-encounter-start": ("encounter-start-dosing.json", "a dosing encounter starts"),
    "kap-encounter-discharge": ("encounter-discharge-dosing.json", "a dosing encounter ends"),
    "kap-patient-view": ("patient-view.json", "the chart of a patient in KAP is opened"),
}


def example_requests(examples_dir: Path) -> dict[str, Any]:
    """OpenAPI ``examples`` keyed by service id; a file that is missing (an install without
    the examples) is left out rather than failing the document."""
    examples: dict[str, Any] = {}
    for service_id, (name, summary) in EXAMPLE_FILES.items():
        path = examples_dir / "requests" / name
        try:
            value = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue
        examples[service_id] = {"summary": f"{service_id}: {summary}", "value": value}
    return examples
