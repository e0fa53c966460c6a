"""``GET /cds-services``: generated from the service registry."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cds.api.deps import EvaluatorDep, SettingsDep
from cds.hooks.registry import discovery

router = APIRouter(tags=["discovery"])


@router.get("/cds-services")
async def list_services(evaluator: EvaluatorDep, settings: SettingsDep) -> dict[str, Any]:
    """The services, their hooks and prefetch templates, and the loaded rule set."""
    narrow = settings.prefetch_templates == "narrow"
    return discovery(evaluator.ruleset_info, evaluator.prefetch_templates if narrow else None)
