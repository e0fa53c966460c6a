"""The FastAPI application factory. Nothing happens at import time: settings, the evaluator,
the audit store and the HTTP client are all built in ``create_app`` or its lifespan."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from cds import __version__
from cds.api.audit_metrics import AuditCollector
from cds.api.deps import RulesetEvaluator, Runtime
from cds.api.errors import install_error_handlers
from cds.api.metrics import Metrics
from cds.api.openapi import install_openapi
from cds.api.routes import discovery, feedback, governance, health, home, services
from cds.api.work import WorkPool
from cds.config import Settings
from cds.fhir.client import new_client, quiet_httpx_logging
from cds.pipeline_types import AuditSink
from cds.security import web as security_web

logger = logging.getLogger(__name__)

DOCS_ASSETS = "/docs/assets"  # JavaScript and CSS of /docs and /redoc (open, like /docs)

DESCRIPTION = (
    "CDS Hooks 2.0 service for ketamine-assisted psychotherapy (KAP) and esketamine: "
    "contraindications, driving, fasting, intervals, dose and quality checks as cards."
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def _new_app(expose_docs: bool) -> FastAPI:
    """Swagger UI and ReDoc from packaged assets (hospital networks often cannot reach a CDN);
    with KAP_CDS_EXPOSE_DOCS=false, no /docs, /redoc or /openapi.json at all (404)."""
    if expose_docs:
        return FastAPIOffline(
            title="kap-cds",
            version=__version__,
            description=DESCRIPTION,
            lifespan=_lifespan,
            static_url=DOCS_ASSETS,
        )
    return FastAPI(
        title="kap-cds",
        version=__version__,
        description=DESCRIPTION,
        lifespan=_lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )


def create_app(
    settings: Settings | None = None,
    *,
    evaluator: RulesetEvaluator | None = None,
    audit: AuditSink | None = None,
    clock: Callable[[], datetime] | None = None,
) -> FastAPI:
    """Build the app. ``evaluator`` and ``audit`` default to the real ones, built at start-up."""
    settings = settings or Settings()
    if not settings.facility_timezone:
        logger.warning(health.ZONE_WARNING)  # every process says it, however it was started
    app = _new_app(settings.expose_docs)
    app.state.runtime = Runtime(
        settings=settings,
        clock=clock or utc_now,
        metrics=Metrics(),
        work=WorkPool(
            threads=settings.evaluation_threads,
            max_in_flight=settings.max_concurrent_calls,
            retry_after_seconds=settings.retry_after_seconds,
            large_call_bytes=settings.large_call_bytes,
        ),
        evaluator=evaluator,
        audit=audit,
    )
    app.state.runtime.metrics.watch_calls_in_progress(lambda: app.state.runtime.work.in_flight)
    runtime = app.state.runtime
    runtime.metrics.registry.register(AuditCollector(lambda: runtime.audit))
    for router in (
        discovery.router,
        services.router,
        feedback.router,
        health.router,
        governance.router,
        home.router,
    ):
        app.include_router(router)
    install_error_handlers(app)
    install_openapi(app, settings)
    security_web.install(app, settings, on_refusal=app.state.runtime.metrics.auth_refused)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    runtime: Runtime = app.state.runtime
    settings = runtime.settings
    quiet_httpx_logging()  # the open-mode warning comes from cds.security.web.install
    async with AsyncExitStack() as stack:
        runtime.work.open()
        stack.callback(runtime.work.close)
        security_engine = getattr(app.state, "security_engine", None)
        if security_engine is not None:  # the replay guard's and rate limit's connections
            stack.callback(security_engine.dispose)
        if runtime.evaluator is None:
            runtime.evaluator = _build_evaluator(settings)
        if runtime.audit is None:
            runtime.audit = _open_audit(settings)
            stack.callback(runtime.audit.close)  # we opened it, we close it
        runtime.http_client = await stack.enter_async_context(new_client(settings))
        # The rule set, value sets and models built above live as long as the process: keep
        # them out of every garbage collection (a few % per request on large bundles).
        gc.freeze()
        yield


def _build_evaluator(settings: Settings) -> RulesetEvaluator:
    # Imported here: loading rules is start-up work, and tests that inject a fake never pay it.
    from cds.evaluator import build_evaluator

    return build_evaluator(settings)


def _open_audit(settings: Settings) -> AuditSink:
    from cds.audit import open_store

    return open_store(settings)
