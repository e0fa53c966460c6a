"""The rule set and its fixtures as shipped with the package.

The repository's top-level ``rules/`` and ``fhir_examples/`` stay the source of truth (the files
a compliance team reviews). The build maps them into this package (see setup.py), so a wheel
carries them as ``cds/bundled/rules`` and ``cds/bundled/fhir_examples``; in a source checkout or
an editable install the same names resolve to the top-level folders.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def bundled_dir(name: str) -> Path:
    """The directory of ``rules`` or ``fhir_examples`` as installed (or in the checkout)."""
    installed = HERE / name
    return installed if installed.is_dir() else HERE.parents[1] / name
