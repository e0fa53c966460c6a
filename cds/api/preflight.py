"""What ``kap-cds serve`` checks before it starts uvicorn, so that a bad rule set or audit
store URL is one line and exit code 2 instead of a lifespan traceback in every worker.

Loading the rule set here costs about half a second once; the workers load it again (each
builds its own app), which is the price of a clear message.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.exc import InterfaceError, OperationalError

from cds.config import Settings
from cds.console.errors import CliError

logger = logging.getLogger(__name__)


def preflight(settings: Settings) -> None:
    """``RuleLoadError`` for a rule set that cannot load, ``CliError`` for an audit store URL
    that cannot be used; an audit store that is down is only a warning (records are spooled)."""
    from cds.evaluator import build_evaluator

    build_evaluator(settings)  # loads and compiles every rule: RuleLoadError names the file
    _check_audit_store(settings)


def _check_audit_store(settings: Settings) -> None:
    from cds.audit import db

    try:
        engine = db.create_audit_engine(settings.database_url, settings.state_dir)
    except (ValueError, ImportError) as exc:
        raise CliError(f"KAP_CDS_DATABASE_URL: {exc}") from None
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except (OperationalError, InterfaceError) as exc:
        logger.warning(
            "audit store unreachable (%s); starting anyway, records are spooled until it answers",
            db.describe_failure(settings.database_url, exc),
        )
    finally:
        engine.dispose()
