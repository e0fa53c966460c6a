"""``POST /cds-services/{id}/feedback``: what clinicians did with our cards, for the audit."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from cds.api.deps import AuditDep, MetricsDep, RuntimeDep, SettingsDep
from cds.hooks.models import FeedbackRequest, InvalidField, json_object, validate_as
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
async def record_feedback(
    service_id: str,
    request: Request,
    audit: AuditDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    """Record card outcomes (accepted or overridden). The same card may get feedback again."""
    descriptor = service(service_id)
    raw = json_object(await request.body())
    _check_item_count(raw.get("feedback"), settings.max_feedback_items)
    feedback = validate_as(FeedbackRequest, raw)
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
    rules = await asyncio.to_thread(
        runtime.card_rules.rules_for,
        (i.card for i in feedback.feedback),
        getattr(audit, "engine", None),
    )
    for item in feedback.feedback:
        for rule_id in rules[item.card]:
            metrics.card_event(rule_id, item.outcome)
    return {}


def _check_item_count(items: Any, limit: int) -> None:
    # Checked before validation: 38,000 items would otherwise be validated and stored.
    if isinstance(items, list) and len(items) > limit:
        raise InvalidField(f"feedback: at most {limit} items per call", ["feedback"])
