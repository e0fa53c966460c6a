"""The security state every replica and worker shares, in the audit database (see replay.py and
ratelimit.py): built once per app from the settings, on its own small connection pool so a busy
audit writer never delays an authentication."""

from __future__ import annotations

from sqlalchemy import Engine

from cds.audit import db
from cds.audit.fileperms import private_dir
from cds.config import Settings
from cds.security.ratelimit import SqlRateLimiter
from cds.security.replay import ReplayGuard, SqlJtiStore, local_store_path


def security_engine(settings: Settings) -> Engine:
    # Lazy: nothing connects until the first authenticated call.
    return db.create_audit_engine(settings.database_url, pool_size=4, max_overflow=4)


def replay_guard(settings: Settings, engine: Engine) -> ReplayGuard:
    shared = SqlJtiStore(engine)
    local = None
    if engine.dialect.name == "postgresql" and settings.replay_when_store_down == "local":
        private_dir(settings.spool_dir)
        url = f"sqlite:///{local_store_path(settings.spool_dir)}"
        local = SqlJtiStore(db.create_audit_engine(url), migrate=False)
    return ReplayGuard(shared, local)


def rate_limiter(settings: Settings, engine: Engine) -> SqlRateLimiter | None:
    if settings.rate_limit_requests == 0:
        return None
    return SqlRateLimiter(
        engine,
        limit=settings.rate_limit_requests,
        window_seconds=settings.rate_limit_window_seconds,
    )
