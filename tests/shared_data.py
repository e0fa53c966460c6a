"""Where the shared, third-party test material lives: ``../shared`` beside the repository.

The 33 real FHIR R4 bundles (Synthea, Epic, MEDITECH, NHS) are not copied into the repository;
tests read them in place. A test that needs them calls ``third_party_bundles()``: on a developer
machine without them it skips, but under CI (``CI`` set) it fails, so a missing ``../shared``
can never turn into a silently green run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("KAP_CDS_SHARED_DIR", REPO_ROOT.parent / "shared"))
THIRD_PARTY_DIR = SHARED_DIR / "fhir" / "third-party"


def third_party_bundles() -> list[Path]:
    """The real bundles, sorted by name; fail under CI, skip elsewhere, when they are absent."""
    bundles = sorted(THIRD_PARTY_DIR.glob("*.json")) if THIRD_PARTY_DIR.is_dir() else []
    if not bundles:
        reason = f"third-party FHIR bundles not found in {THIRD_PARTY_DIR} (set KAP_CDS_SHARED_DIR)"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return bundles


def third_party_bundles_or_empty() -> list[Path]:
    """For parametrisation at collection time: the bundles, or [] (pair with a test that calls
    ``third_party_bundles()`` so that an empty list still fails under CI)."""
    return sorted(THIRD_PARTY_DIR.glob("*.json")) if THIRD_PARTY_DIR.is_dir() else []


def shared_path(relative: str) -> Path:
    """A file or folder of ``../shared`` (e.g. ``clients/cds-hooks-sandbox``); fails under CI,
    skips elsewhere, when it is absent."""
    path = SHARED_DIR / relative
    if not path.exists():
        reason = f"shared test material not found: {path} (set KAP_CDS_SHARED_DIR)"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return path
