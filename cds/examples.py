"""Where the example requests and rule fixtures are: beside the rule set (the image ships
``/app/rules`` and ``/app/fhir_examples``), else the shipped ``fhir_examples/``."""

from __future__ import annotations

from pathlib import Path

from cds.config import EXAMPLES_DIR, Settings


def examples_dir(settings: Settings) -> Path:
    beside = settings.rules_dir.resolve().parent / "fhir_examples"
    return beside if (beside / "cases").is_dir() else EXAMPLES_DIR
