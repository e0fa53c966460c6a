"""Where tests keep what a person should be able to look at afterwards (screenshots).

``KAP_CDS_ARTIFACTS_DIR`` when set (CI), else ``test-artifacts/`` in the repository (ignored by
git). One sub-folder per test area.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def artifact_dir(area: str) -> Path:
    base = Path(os.environ.get("KAP_CDS_ARTIFACTS_DIR") or REPO_ROOT / "test-artifacts")
    target = base / area
    target.mkdir(parents=True, exist_ok=True)
    return target
