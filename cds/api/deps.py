"""What routes depend on, as typed ``Annotated`` aliases (one ``Runtime`` lives on app.state).

The providers are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its
thread pool, which costs more than the whole non-KAP answer. The CDS service route solves no
dependencies at all (``runtime_of(request)``): solving nine per call cost more than the rest of
a non-KAP answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Protocol

import httpx
from fastapi import Depends, Request

from cds.api.card_rules import CardRules
from cds.api.metrics import Metrics
from cds.api.work import WorkPool
from cds.config import Settings
from cds.facts.triage import Triage
from cds.pipeline_types import AuditSink, Evaluator

Clock = Callable[[], datetime]


class RulesetEvaluator(Evaluator, Protocol):
    """An evaluator that also says which rule set it runs (published in discovery and /readyz)
    and triages a request from its context alone (before any data is gathered)."""

    @property
    def ruleset_info(self) -> dict[str, Any]: ...

    @property
    def prefetch_templates(self) -> dict[str, str]: ...

    def triage(self, hook: str, context: dict[str, Any]) -> Triage: ...


@dataclass
class Runtime:
    """Everything the routes use; evaluator, audit and http_client are set by the lifespan."""

    settings: Settings
    clock: Clock
    metrics: Metrics
    work: WorkPool
    card_rules: CardRules = field(default_factory=CardRules)
    evaluator: RulesetEvaluator | None = None
    audit: AuditSink | None = None
    http_client: httpx.AsyncClient | None = None

    @property
    def live_evaluator(self) -> RulesetEvaluator:
        if self.evaluator is None:
            raise RuntimeError("evaluator not built: the app lifespan has not run")
        return self.evaluator

    @property
    def live_audit(self) -> AuditSink:
        if self.audit is None:
            raise RuntimeError("audit store not open: the app lifespan has not run")
        return self.audit


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_runtime(request: Request) -> Runtime:
    return runtime_of(request)


async def get_settings(request: Request) -> Settings:
    return runtime_of(request).settings


async def get_evaluator(request: Request) -> RulesetEvaluator:
    return runtime_of(request).live_evaluator


async def get_audit(request: Request) -> AuditSink:
    return runtime_of(request).live_audit


async def get_metrics(request: Request) -> Metrics:
    return runtime_of(request).metrics


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
EvaluatorDep = Annotated[RulesetEvaluator, Depends(get_evaluator)]
AuditDep = Annotated[AuditSink, Depends(get_audit)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
