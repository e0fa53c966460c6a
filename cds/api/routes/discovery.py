"""``GET /cds-services``: generated from the service registry."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cds.api.deps import EvaluatorDep
from cds.hooks.registry import discovery

router = APIRouter(tags=["discovery"])


@router.get("/cds-services")
async def list_services(evaluator: EvaluatorDep) -> dict[str, Any]:
    """The services, their hooks and prefetch templates, and the loaded rule set."""
    return discovery(evaluator.ruleset_info)
