"""Fixtures shared by the whole suite (keep small; area fixtures live in each folder's conftest)."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import orjson
import pytest

from cds.config import Settings

# starlette 1.x warns once, at import, that its TestClient runs on httpx rather than httpx2. The
# suite turns warnings into errors, so import it here with that one warning silenced (to be
# replaced by an httpx2 dev dependency or a pyproject filterwarnings entry).
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    import starlette.testclient  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_REQUESTS = REPO_ROOT / "fhir_examples" / "requests"

_ORDER_SIGN = orjson.loads((EXAMPLE_REQUESTS / "order-sign-ketamine-iv.json").read_bytes())


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings isolated from the developer's environment files, state under tmp_path."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite:///{tmp_path / 'audit.sqlite3'}",
        spool_dir=tmp_path / "spool",
    )


@pytest.fixture
def order_sign_request() -> dict[str, Any]:
    """The README's example: an order-sign call for IV ketamine 35 mg (a fresh copy per test)."""
    return copy.deepcopy(_ORDER_SIGN)
