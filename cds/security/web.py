"""Placeholder, owned by the security work (issue 6): installs auth, CORS and request limits."""

from __future__ import annotations

from fastapi import FastAPI

from cds.config import Settings


def install(app: FastAPI, settings: Settings) -> None:
    """Add the security middleware stack to ``app``."""
