"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from cds.api.deps import AuditDep, EvaluatorDep, MetricsDep, SettingsDep
from cds.api.errors import ServiceUnavailable
from cds.api.metrics import CONTENT_TYPE
from cds.config import Settings
from cds.errors import ServiceNotFound

router = APIRouter(tags=["health"])

OPEN_WARNING = (
    "running OPEN: no JWT authentication, set KAP_CDS_TRUSTED_ISSUERS to require signed calls "
    "from your EHR"
)
TRYOUT_WARNING = (
    "TRY-OUT MODE (KAP_CDS_OPEN_TRYOUT=true): open on every network interface, for a laptop "
    "try-out with example data only; never use it with patient data"
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
async def readyz(
    request: Request, evaluator: EvaluatorDep, audit: AuditDep, settings: SettingsDep
) -> dict[str, Any]:
    """Rules loaded (digest and count), audit store health, authentication mode, and the
    facility time zone days are judged in."""
    ruleset = evaluator.ruleset_info
    if not ruleset.get("digest") or not ruleset.get("rules"):
        raise ServiceUnavailable("no rules loaded")
    if not audit.accepting():
        # Neither the spool nor the database can keep a record: every KAP call would be 503.
        raise ServiceUnavailable(
            "audit trail unavailable: the spool cannot take records and the database is down"
        )
    verifier = getattr(request.app.state, "token_verifier", None)
    if verifier is not None and not verifier.replay_guard.available:
        # The last token could be checked in no store (shared and node-local both failed).
        raise ServiceUnavailable("token replay check unavailable")
    stats = audit.stats()
    body: dict[str, Any] = {
        "status": "ready",
        "rules": ruleset,
        # An audit database that is down does not make us unready while the spool keeps every
        # record: taking every instance out of rotation would block clinical care.
        "audit": "ok" if audit.healthy() else "degraded: records are spooled until it is back",
        "audit_backlog_bytes": stats.get("pending_bytes", 0),
        # Records the database refused: in the export (record "quarantined") for an operator.
        "audit_quarantined": stats.get("quarantined", 0),
        "auth": "jwt" if settings.auth_enabled else "open",
        "facility_timezone": facility_zone(settings),
    }
    if not settings.auth_enabled:
        body["warning"] = OPEN_WARNING
        if settings.open_tryout:
            body["tryout"] = TRYOUT_WARNING
    return body


@router.get("/metrics", response_class=Response)
async def metrics(metrics: MetricsDep, settings: SettingsDep) -> Response:
    """Prometheus text format: calls and latency per service id, refusals, cards per rule."""
    if not settings.expose_metrics:
        raise ServiceNotFound("Not Found")  # KAP_CDS_EXPOSE_METRICS=false
    return Response(content=metrics.render(), media_type=CONTENT_TYPE)
