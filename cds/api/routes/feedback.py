"""``POST /cds-services/{id}/feedback``: what clinicians did with our cards, for the audit."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from cds.api.deps import AuditDep
from cds.hooks.models import FeedbackRequest, json_object, validate_as
from cds.hooks.registry import service
from cds.security.auth import authenticated_client

router = APIRouter(tags=["feedback"])


@router.post(
    "/cds-services/{service_id}/feedback",
    responses={
        400: {"description": "Invalid feedback (OperationOutcome names the field)"},
        404: {"description": "Unknown service id"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/FeedbackRequest"}}
            },
        }
    },
)
async def record_feedback(service_id: str, request: Request, audit: AuditDep) -> dict[str, Any]:
    """Record card outcomes (accepted or overridden). The same card may get feedback again."""
    descriptor = service(service_id)
    feedback = validate_as(FeedbackRequest, json_object(await request.body()))
    items = [item.model_dump(mode="json", exclude_none=True) for item in feedback.feedback]
    # Synced before we answer (see services.py); 503 when it cannot be kept.
    await run_in_threadpool(
        partial(
            audit.record_feedback,
            service_id=descriptor.id,
            items=items,
            caller=authenticated_client(request),
        )
    )
    return {}
