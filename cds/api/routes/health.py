"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from cds.api.deps import AuditDep, EvaluatorDep, MetricsDep, SettingsDep
from cds.api.errors import ServiceUnavailable
from cds.api.metrics import CONTENT_TYPE
from cds.config import Settings

router = APIRouter(tags=["health"])

OPEN_WARNING = (
    "running OPEN: no JWT authentication, set KAP_CDS_TRUSTED_ISSUERS to require signed calls "
    "from your EHR"
)


ZONE_WARNING = (
    "facility time zone not set (KAP_CDS_FACILITY_TIMEZONE): 'today', 'same day' and "
    "calendar-day intervals are judged in UTC, which is wrong for a clinic in any other zone"
)


def facility_zone(settings: Settings) -> dict[str, str]:
    """The zone every same-day and calendar judgement uses, and where it comes from."""
    if settings.facility_timezone:
        return {"zone": settings.facility_zone, "source": "KAP_CDS_FACILITY_TIMEZONE"}
    return {"zone": settings.facility_zone, "source": "default", "warning": ZONE_WARNING}


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(evaluator: EvaluatorDep, audit: AuditDep, settings: SettingsDep) -> dict[str, Any]:
    """Rules loaded (digest and count), audit store health, authentication mode, and the
    facility time zone days are judged in."""
    ruleset = evaluator.ruleset_info
    if not ruleset.get("digest") or not ruleset.get("rules"):
        raise ServiceUnavailable("no rules loaded")
    body: dict[str, Any] = {
        "status": "ready",
        "rules": ruleset,
        # An audit store that is down does not make us unready: records are spooled and
        # written later, and taking every instance out of rotation would block clinical care.
        "audit": "ok" if audit.healthy() else "degraded: records are spooled until it is back",
        "auth": "jwt" if settings.auth_enabled else "open",
        "facility_timezone": facility_zone(settings),
    }
    if not settings.auth_enabled:
        body["warning"] = OPEN_WARNING
    return body


@router.get("/metrics", response_class=Response)
async def metrics(metrics: MetricsDep) -> Response:
    """Prometheus text format: calls and latency per service id."""
    return Response(content=metrics.render(), media_type=CONTENT_TYPE)
