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
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from cds.report.behaviour import Behaviour, read_behaviour
from cds.report.content import (
    ReportInput,
    behaviour_blocks,
    catalog_blocks,
    front_page,
    rule_chart_blocks,
)
from cds.report.doc import (
    Block,
    Bullets,
    Cell,
    Code,
    Fields,
    Heading,
    Link,
    Para,
    Section,
    Table,
    cell,
)
from cds.report.fixtures import list_fixtures
from cds.report.html import CSS, FILTER_SCRIPT, page, render_blocks
from cds.ruleset.loader import LoadedRuleSet

TITLE = "KAP rule governance"
GOVERNANCE_PATH = "/governance"
RULE_PAGES = "/governance/rules"  # one page per rule: /governance/rules/KAP-CI-011
RULE_ANCHOR = re.compile(r"^#KAP-[A-Z]+-\d{3}$")
BEHAVIOUR_TTL_SECONDS = 30.0
FIXTURES_NOTE = "listed but not run on this page"


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# Only this page's own inline style and script may run: rule text is data, never markup.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src {_csp_hash(CSS)}; script-src {_csp_hash(FILTER_SCRIPT)}; "
    "img-src data:; "  # the charts: self-contained SVG images (cds.report.charts)
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class CatalogHtml:
    front: str  # digest, counts, drafts, V codes, POLICY values
    index: str  # the rule list, each rule linking to its own page
    rules: dict[str, str]  # rule id -> that rule's section (its page body)


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

    def behaviour(
        self, engine: Engine, since: datetime | None, ruleset: LoadedRuleSet
    ) -> Behaviour:
        """Called from a worker thread (the query blocks); cached for ``ttl_seconds``."""
        now = self.clock()
        with self._lock:
            hit = self._behaviour.get(since)
            if hit is not None and now - hit[0] < self.ttl_seconds:
                return hit[1]
        fresh = read_behaviour(engine, since, ruleset.offered_reasons())
        with self._lock:
            self._behaviour[since] = (now, fresh)
        return fresh


def rule_page_path(rule_id: str) -> str:
    return f"{RULE_PAGES}/{rule_id}"


def _render_catalog(ruleset: LoadedRuleSet, examples_dir: Path) -> CatalogHtml:
    data = ReportInput(ruleset, datetime.now(UTC), list_fixtures(examples_dir))
    blocks = catalog_blocks(data)  # [heading, index, one section per rule]
    sections = {b.anchor: b for b in blocks if isinstance(b, Section)}
    index = [b for b in blocks if not isinstance(b, Section)]
    return CatalogHtml(
        render_blocks(retarget(front_page(data))),
        render_blocks(retarget(index)),
        {rule_id: render_blocks(retarget([section])) for rule_id, section in sections.items()},
    )


def retarget(blocks: Sequence[Block]) -> list[Block]:
    """The report is one document whose rule links are anchors ("#KAP-CI-011"); served, each
    rule has its own page, so those links point there instead."""
    return [_retarget_block(b) for b in blocks]


def _retarget_block(block: Block) -> Block:
    if isinstance(block, Para):
        return replace(block, parts=_retarget_cell(block.parts))
    if isinstance(block, Table):
        rows = tuple(tuple(_retarget_cell(c) for c in row) for row in block.rows)
        return replace(block, rows=rows)
    if isinstance(block, Fields):
        pairs = tuple((label, _retarget_cell(value)) for label, value in block.pairs)
        return replace(block, pairs=pairs)
    if isinstance(block, Bullets):
        return replace(block, items=tuple(_retarget_cell(item) for item in block.items))
    if isinstance(block, Section):
        return replace(block, blocks=tuple(_retarget_block(b) for b in block.blocks))
    return block


def _retarget_cell(parts: Cell) -> Cell:
    return tuple(
        Link(p.label, rule_page_path(p.url[1:]))
        if isinstance(p, Link) and RULE_ANCHOR.match(p.url)
        else p
        for p in parts
    )


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
    figures = (
        "" if behaviour is None else render_blocks(retarget(behaviour_blocks(behaviour, ruleset)))
    )
    # Figures first: what the rules do in practice is what reviewers come for.
    body = "\n".join((render_blocks(intro), figures, catalog.front, catalog.index))
    return page(TITLE, body, interactive=True)


def rule_page_html(
    ruleset: LoadedRuleSet, rule_id: str, catalog: CatalogHtml, behaviour: Behaviour | None
) -> str | None:
    """One rule's page: its header, evidence, fixtures and cards (from the catalog), its version
    history, and its figures; None for a rule the loaded rule set does not have."""
    section = catalog.rules.get(rule_id)
    if section is None:
        return None
    rule = ruleset.rules[rule_id].rule
    top: list[Block] = [
        Para(cell(Link("← all rules", GOVERNANCE_PATH))),
    ]
    extra = _history_blocks(rule.changes, behaviour, rule_id)
    if behaviour is not None and behaviour.available:
        extra += rule_chart_blocks(behaviour, rule_id)
    body = "\n".join((render_blocks(top), section, render_blocks(retarget(extra))))
    return page(f"{rule_id} — {TITLE}", body)


def _history_blocks(changes: list[str], behaviour: Behaviour | None, rule_id: str) -> list[Block]:
    blocks: list[Block] = [Heading(3, "Version history", "history")]
    if changes:
        blocks.append(Bullets(tuple(cell(change) for change in changes)))
    else:
        blocks.append(Para(cell("No change recorded since the first version."), "note"))
    stats = behaviour.of(rule_id) if behaviour is not None and behaviour.available else None
    if stats is not None:
        blocks.append(
            Para(cell("Versions that produced cards in the period: ", ", ".join(stats.versions)))
        )
    return blocks
