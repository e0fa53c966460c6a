"""Where the example requests and rule fixtures are: beside the rule set (the image ships
``/app/rules`` and ``/app/fhir_examples``), else the repository's ``fhir_examples/``."""

from __future__ import annotations

from pathlib import Path

from cds.config import REPO_ROOT, Settings

REPO_EXAMPLES = REPO_ROOT / "fhir_examples"


def examples_dir(settings: Settings) -> Path:
    beside = settings.rules_dir.resolve().parent / "fhir_examples"
    return beside if (beside / "cases").is_dir() else REPO_EXAMPLES
