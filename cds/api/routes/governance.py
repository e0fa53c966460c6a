"""``GET /governance``: a read-only HTML page of the rule catalog and how each rule behaves.

Server-rendered with the compliance report's renderer (no build step, no external assets); see
``cds.report.governance`` for what is cached and why.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from cds.api.deps import RuntimeDep
from cds.audit.cli import UsageError, parse_instant
from cds.config import EXAMPLES_DIR, Settings
from cds.report.behaviour import Behaviour
from cds.report.governance import (
    CONTENT_SECURITY_POLICY,
    GovernanceCache,
    governance_html,
    rule_page_html,
)
from cds.ruleset.loader import LoadedRuleSet, load_ruleset

router = APIRouter(tags=["governance"])

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",  # behaviour figures are internal and change
}


@router.get("/governance", response_class=HTMLResponse)
async def governance(
    request: Request, runtime: RuntimeDep, since: str | None = None
) -> HTMLResponse:
    """The rule catalog with each rule's fired/accepted/overridden figures (``?since=`` ISO)."""
    start = _since(since)
    cache = _cache(request)
    ruleset = _ruleset(request, runtime.evaluator, runtime.settings)
    behaviour = await _behaviour(cache, runtime.audit, start, ruleset)
    html = governance_html(ruleset, cache.catalog_html(ruleset), behaviour)
    return HTMLResponse(html, headers=HEADERS)


@router.get(
    "/governance/rules/{rule_id}",
    response_class=HTMLResponse,
    responses={
        400: {"description": "`since` is not an ISO 8601 time"},
        404: {"description": "No rule with this id in the loaded rule set (OperationOutcome)"},
    },
)
async def governance_rule(
    rule_id: str, request: Request, runtime: RuntimeDep, since: str | None = None
) -> HTMLResponse:
    """One rule: header, evidence, fixtures, version history and its figures."""
    start = _since(since)
    cache = _cache(request)
    ruleset = _ruleset(request, runtime.evaluator, runtime.settings)
    if rule_id not in ruleset.rules:
        raise HTTPException(status_code=404, detail="no such rule in the loaded rule set")
    behaviour = await _behaviour(cache, runtime.audit, start, ruleset)
    html = rule_page_html(ruleset, rule_id, cache.catalog_html(ruleset), behaviour)
    return HTMLResponse(html or "", headers=HEADERS)


def _since(since: str | None) -> datetime | None:
    try:
        return parse_instant(since, "since")
    except UsageError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None


def _cache(request: Request) -> GovernanceCache:
    cache: GovernanceCache | None = getattr(request.app.state, "governance_cache", None)
    if cache is None:
        cache = GovernanceCache(EXAMPLES_DIR)
        request.app.state.governance_cache = cache
    return cache


def _ruleset(request: Request, evaluator: object, settings: Settings) -> LoadedRuleSet:
    """The evaluator's own rule set (what the service really runs); an injected evaluator
    without one (tests, tools) gets the configured rule set, loaded once."""
    own = getattr(evaluator, "ruleset", None)
    if isinstance(own, LoadedRuleSet):
        return own
    loaded: LoadedRuleSet | None = getattr(request.app.state, "governance_ruleset", None)
    if loaded is None:
        loaded = load_ruleset(settings.rules_dir, settings.policy_file, settings.valueset_overlay)
        request.app.state.governance_ruleset = loaded
    return loaded


async def _behaviour(
    cache: GovernanceCache, audit: object, since: datetime | None, ruleset: LoadedRuleSet
) -> Behaviour | None:
    """Figures from the app's audit store, when it is a database-backed one."""
    engine = getattr(audit, "engine", None)
    if not isinstance(engine, Engine):
        return None
    return await run_in_threadpool(cache.behaviour, engine, since, ruleset)
