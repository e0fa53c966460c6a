"""The governance page (``GET /governance``): the report's catalog, served by the running app.

The catalog part depends only on the rule set, so it is rendered once per rule-set digest. The
behaviour figures come from the audit store and are cached for a few seconds: a page reload
must not turn into a stream of aggregate queries against the store that records clinical care.
Fixtures are listed but not run here: running them would hold the event loop (and the rules
engine) for seconds while clinical requests wait; ``kap-cds rules report`` runs them.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from cds.report.behaviour import Behaviour, read_behaviour
from cds.report.content import ReportInput, behaviour_blocks, catalog_blocks, front_page
from cds.report.doc import Block, Code, Heading, Para, cell
from cds.report.fixtures import list_fixtures
from cds.report.html import CSS, FILTER_SCRIPT, page, render_blocks
from cds.ruleset.loader import LoadedRuleSet

TITLE = "KAP rule governance"
BEHAVIOUR_TTL_SECONDS = 30.0
FIXTURES_NOTE = "listed but not run on this page"


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# Only this page's own inline style and script may run: rule text is data, never markup.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src {_csp_hash(CSS)}; script-src {_csp_hash(FILTER_SCRIPT)}; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class CatalogHtml:
    front: str  # digest, counts, drafts, V codes, POLICY values
    rules: str  # the rule index and every rule's section


@dataclass
class GovernanceCache:
    examples_dir: Path
    ttl_seconds: float = BEHAVIOUR_TTL_SECONDS
    clock: Callable[[], float] = time.monotonic
    _catalog: dict[str, CatalogHtml] = field(default_factory=dict)
    _behaviour: dict[datetime | None, tuple[float, Behaviour]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def catalog_html(self, ruleset: LoadedRuleSet) -> CatalogHtml:
        """Front page and every rule's section, rendered once per rule-set digest."""
        cached = self._catalog.get(ruleset.digest)
        if cached is None:
            cached = _render_catalog(ruleset, self.examples_dir)
            self._catalog = {ruleset.digest: cached}  # only the loaded rule set is ever shown
        return cached

    def behaviour(self, engine: Engine, since: datetime | None) -> Behaviour:
        """Called from a worker thread (the query blocks); cached for ``ttl_seconds``."""
        now = self.clock()
        with self._lock:
            hit = self._behaviour.get(since)
            if hit is not None and now - hit[0] < self.ttl_seconds:
                return hit[1]
        fresh = read_behaviour(engine, since)
        with self._lock:
            self._behaviour[since] = (now, fresh)
        return fresh


def _render_catalog(ruleset: LoadedRuleSet, examples_dir: Path) -> CatalogHtml:
    data = ReportInput(ruleset, datetime.now(UTC), list_fixtures(examples_dir))
    return CatalogHtml(render_blocks(front_page(data)), render_blocks(catalog_blocks(data)))


def governance_html(
    ruleset: LoadedRuleSet, catalog: CatalogHtml, behaviour: Behaviour | None
) -> str:
    intro: list[Block] = [
        Heading(1, TITLE, "top"),
        Para(
            cell(
                f"Read-only view of the rule set this service runs. Fixtures are {FIXTURES_NOTE}; "
                "the same content, with fixture results, is produced by ",
                Code("kap-cds rules report"),
                ".",
            ),
            "note",
        ),
    ]
    if behaviour is None:
        intro += [
            Heading(2, "Behaviour in practice", "behaviour"),
            Para(
                cell(
                    "No audit store is available to this service: behaviour figures are not shown."
                ),
                "warn",
            ),
        ]
    figures = "" if behaviour is None else render_blocks(behaviour_blocks(behaviour, ruleset))
    body = "\n".join((render_blocks(intro), catalog.front, figures, catalog.rules))
    return page(TITLE, body, interactive=True)
