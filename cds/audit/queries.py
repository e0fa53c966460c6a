"""Reading the audit trail: the export and the per-rule summary of the compliance report.

Feedback is joined to cards by card uuid (not by the ``evaluation_id`` stored on the feedback
row), so feedback written before its card reached the store is still counted.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, TextIO

import orjson
from sqlalchemy import Connection, Engine, RowMapping, Select, and_, exists, func, select

from cds.audit.schema import cards, evaluations, feedback, quarantine, shadow_firings

ExportFormat = Literal["jsonl", "csv"]
EXPORT_CHUNK = 500


class HasEngine(Protocol):
    @property
    def engine(self) -> Engine: ...


def _engine(source: Engine | HasEngine) -> Engine:
    return source if isinstance(source, Engine) else source.engine


# --- export ---------------------------------------------------------------------------------

EVALUATION_FIELDS = (
    "evaluation_id",
    "recorded_at",
    "service_id",
    "hook",
    "hook_instance",
    "patient_id",
    "ruleset_digest",
    "t0",
    "kap",
    "latency_ms",
    "data_outcomes",
    "caller_iss",
    "caller_sub",
    "caller_jti",
    "caller_kid",
    "caller_tenant",
    "user_id",
)
CARD_FIELDS = (
    "card_uuid",
    "position",
    "rule_id",
    "rule_version",
    "variant",
    "family",
    "indicator",
    "summary",
    "facts",
)
FEEDBACK_FIELDS = (
    "feedback_id",
    "received_at",
    "outcome",
    "accepted_suggestions",
    "override_system",
    "override_code",
    "override_display",
    "user_comment",
    "outcome_timestamp",
)
CSV_COLUMNS = (
    *EVALUATION_FIELDS,
    *CARD_FIELDS,
    "feedback_count",
    *(f"last_{name}" for name in FEEDBACK_FIELDS[1:]),
)


def export(
    source: Engine | HasEngine,
    since: datetime | None,
    fmt: ExportFormat,
    out: TextIO,
    *,
    issuer: str | None = None,
) -> int:
    """Write the trail since ``since``; returns the number of lines/rows written.

    jsonl: one line per card (``"record": "card"``, every feedback item in ``feedback``), one per
    evaluation without cards (``"record": "evaluation"``), and one per feedback item whose card
    the store does not know (``"record": "unknown_card_feedback"``), and one per record the
    database refused (``"record": "quarantined"``, the raw line escaped: never silently missing).
    csv: one row per card, with the feedback count and the latest feedback item.
    ``issuer``: only calls (and feedback) made with a JWT from that ``iss``; quarantined records
    are listed whatever the issuer, since their content could not be read.
    """
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"unknown export format {fmt!r}")
    with _engine(source).connect() as conn:
        rows = _export_rows(conn, since, issuer)
        if fmt == "csv":
            return _write_csv(rows, out)
        count = _write_jsonl(rows, out)
        count += _write_jsonl(_unknown_card_feedback(conn, since, issuer), out)
        return count + _write_jsonl(_quarantined(conn, since), out)


def _export_rows(
    conn: Connection, since: datetime | None, issuer: str | None
) -> Iterator[dict[str, Any]]:
    stmt = (
        select(evaluations.c.id.label("evaluation_id"), *_eval_cols(), *_card_cols())
        .select_from(evaluations.outerjoin(cards, cards.c.evaluation_id == evaluations.c.id))
        .order_by(evaluations.c.recorded_at, evaluations.c.id, cards.c.position, cards.c.line)
    )
    if since is not None:
        stmt = stmt.where(evaluations.c.recorded_at >= since)
    if issuer is not None:
        stmt = stmt.where(evaluations.c.caller_iss == issuer)
    result = conn.execution_options(yield_per=EXPORT_CHUNK).execute(stmt).mappings()
    for chunk in result.partitions():
        history = _feedback_for(conn, [r["card_uuid"] for r in chunk if r["card_uuid"]])
        for row in chunk:
            yield _export_row(row, history)


def _eval_cols() -> list[Any]:
    return [evaluations.c[name] for name in EVALUATION_FIELDS[1:]]


def _card_cols() -> list[Any]:
    return [cards.c[name] for name in CARD_FIELDS]


def _export_row(row: RowMapping, history: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    base = {name: row[name] for name in EVALUATION_FIELDS}
    if row["card_uuid"] is None:
        return {"record": "evaluation", **base}
    card = {name: row[name] for name in CARD_FIELDS}
    return {"record": "card", **base, **card, "feedback": history.get(row["card_uuid"], [])}


def _feedback_for(conn: Connection, card_uuids: list[str]) -> dict[str, list[dict[str, Any]]]:
    if not card_uuids:
        return {}
    stmt = (
        select(feedback.c.card_uuid, feedback.c.id.label("feedback_id"), *_fb_cols())
        .where(feedback.c.card_uuid.in_(card_uuids))
        .order_by(feedback.c.received_at, feedback.c.id)
    )
    history: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in conn.execute(stmt).mappings():
        history[row["card_uuid"]].append({name: row[name] for name in FEEDBACK_FIELDS})
    return history


def _fb_cols() -> list[Any]:
    return [feedback.c[name] for name in FEEDBACK_FIELDS[1:]]


def _unknown_card_feedback(
    conn: Connection, since: datetime | None, issuer: str | None
) -> Iterator[dict[str, Any]]:
    card_known = exists().where(cards.c.card_uuid == feedback.c.card_uuid)
    stmt = (
        select(
            feedback.c.id.label("feedback_id"),
            feedback.c.service_id,
            feedback.c.card_uuid,
            *_fb_cols(),
        )
        .where(~card_known)
        .order_by(feedback.c.received_at, feedback.c.id)
    )
    if since is not None:
        stmt = stmt.where(feedback.c.received_at >= since)
    if issuer is not None:
        stmt = stmt.where(feedback.c.caller_iss == issuer)
    for row in conn.execute(stmt).mappings():
        # str(): column keys are str subclasses, which orjson refuses as object keys.
        yield {"record": "unknown_card_feedback", **{str(k): v for k, v in row.items()}}


def _quarantined(conn: Connection, since: datetime | None) -> Iterator[dict[str, Any]]:
    stmt = select(quarantine).order_by(quarantine.c.quarantined_at, quarantine.c.id)
    if since is not None:
        stmt = stmt.where(quarantine.c.quarantined_at >= since)
    for row in conn.execute(stmt).mappings():
        yield {"record": "quarantined", **{str(k): v for k, v in row.items()}}


def quarantine_count(
    source: Engine | HasEngine, since: datetime | None = None, until: datetime | None = None
) -> int:
    stmt = select(func.count()).select_from(quarantine)
    if since is not None:
        stmt = stmt.where(quarantine.c.quarantined_at >= since)
    if until is not None:
        stmt = stmt.where(quarantine.c.quarantined_at < until)
    with _engine(source).connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def _write_jsonl(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    count = 0
    for row in rows:
        out.write(orjson.dumps(row, default=str, option=orjson.OPT_APPEND_NEWLINE).decode())
        count += 1
    return count


def _write_csv(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for row in rows:
        if row["record"] != "card":
            continue  # the csv is one row per fired card
        writer.writerow([_csv_cell(v) for v in _csv_values(row)])
        count += 1
    return count


def _csv_values(row: dict[str, Any]) -> list[Any]:
    history: list[dict[str, Any]] = row["feedback"]
    last = history[-1] if history else {}
    return [
        *(row[name] for name in (*EVALUATION_FIELDS, *CARD_FIELDS)),
        len(history),
        *(last.get(name) for name in FEEDBACK_FIELDS[1:]),
    ]


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        # Free text (a clinician's override comment) must not run as a spreadsheet formula.
        return "'" + value
    return value


# --- rule summary ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReasonCount:
    code: str | None
    display: str | None
    count: int
    # False: the clinician gave a reason the card did not offer (free-text or another list).
    # None: not known (no rule set to compare with).
    offered: bool | None = None


@dataclass(frozen=True)
class RuleStats:
    """One rule over a time window, with every feedback outcome counted.

    A card can be answered more than once (accepted, then overridden): each outcome is kept in
    order. ``accepted`` and ``overridden`` count the cards that got that outcome at least once,
    so a card accepted then overridden counts in both; ``sequences`` shows the order in which
    cards were answered ("accepted → overridden"); ``override_reasons`` counts every override.
    """

    rule_id: str
    versions: tuple[str, ...]
    fired: int
    accepted: int
    overridden: int
    override_reasons: tuple[ReasonCount, ...] = field(default=())
    last_fired: datetime | None = None
    answered: int = 0  # cards with any feedback
    sequences: tuple[tuple[str, int], ...] = field(default=())
    accepted_suggestions: int = 0  # suggestion uuids accepted, over all outcomes

    @property
    def both(self) -> int:
        """Cards with both an accepted and an overridden outcome."""
        return sum(n for seq, n in self.sequences if "accepted" in seq and "overridden" in seq)

    @property
    def unoffered_reasons(self) -> tuple[ReasonCount, ...]:
        return tuple(r for r in self.override_reasons if r.offered is False)

    def to_json(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "versions": list(self.versions),
            "fired": self.fired,
            "answered": self.answered,
            "accepted": self.accepted,
            "overridden": self.overridden,
            "accepted_and_overridden": self.both,
            "accepted_suggestions": self.accepted_suggestions,
            "sequences": {seq: n for seq, n in self.sequences},
            "override_reasons": [vars(r) for r in self.override_reasons],
            "last_fired": self.last_fired.isoformat() if self.last_fired else None,
        }


SEQUENCE_ARROW = " → "


def rule_summary(
    source: Engine | HasEngine,
    since: datetime | None = None,
    until: datetime | None = None,
    offered: Mapping[str, frozenset[str]] | None = None,
    *,
    issuer: str | None = None,
) -> list[RuleStats]:
    """Per-rule counts for cards whose evaluation falls in [since, until) (and was called by
    ``issuer``, when given), sorted by rule id.

    ``offered`` maps a rule id to the override reason codes its cards offer (from the rule set);
    with it, each override reason is flagged offered or not.
    """
    window = Window(since, until, issuer)
    with _engine(source).connect() as conn:
        fired = conn.execute(_fired_stmt(window)).all()
        answers = _answers_by_card(conn.execute(_feedback_stmt(window)).mappings())
    return _combine(fired, answers, offered)


@dataclass(frozen=True)
class Window:
    since: datetime | None
    until: datetime | None
    issuer: str | None = None


def _window(stmt: Select[Any], window: Window) -> Select[Any]:
    joined = stmt.select_from(cards.join(evaluations, cards.c.evaluation_id == evaluations.c.id))
    conditions = []
    if window.since is not None:
        conditions.append(evaluations.c.recorded_at >= window.since)
    if window.until is not None:
        conditions.append(evaluations.c.recorded_at < window.until)
    if window.issuer is not None:
        conditions.append(evaluations.c.caller_iss == window.issuer)
    return joined.where(and_(*conditions)) if conditions else joined


def _fired_stmt(window: Window) -> Select[Any]:
    stmt = select(
        cards.c.rule_id,
        cards.c.rule_version,
        func.count().label("fired"),
        func.max(evaluations.c.recorded_at).label("last_fired"),
    )
    return _window(stmt, window).group_by(cards.c.rule_id, cards.c.rule_version)


def _feedback_stmt(window: Window) -> Select[Any]:
    stmt = select(
        cards.c.rule_id,
        cards.c.card_uuid,
        feedback.c.outcome,
        feedback.c.override_code,
        feedback.c.override_display,
        feedback.c.accepted_suggestions,
    )
    windowed: Select[Any] = _window(stmt, window)
    joined: Select[Any] = windowed.join(feedback, feedback.c.card_uuid == cards.c.card_uuid)
    order = (cards.c.rule_id, cards.c.card_uuid, feedback.c.received_at, feedback.c.id)
    return joined.order_by(*order)


def _answers_by_card(rows: Iterable[RowMapping]) -> dict[tuple[str, str], list[RowMapping]]:
    """Every feedback outcome per (rule, card), in the order it was received."""
    answers: dict[tuple[str, str], list[RowMapping]] = defaultdict(list)
    for row in rows:
        answers[(row["rule_id"], row["card_uuid"])].append(row)
    return answers


@dataclass
class _Tally:
    answered: int = 0
    accepted: int = 0
    overridden: int = 0
    suggestions: int = 0
    sequences: Counter[str] = field(default_factory=Counter)
    reasons: Counter[tuple[str | None, str | None]] = field(default_factory=Counter)

    def add_card(self, answers: list[RowMapping]) -> None:
        outcomes = [row["outcome"] for row in answers]
        self.answered += 1
        self.accepted += "accepted" in outcomes
        self.overridden += "overridden" in outcomes
        self.sequences[SEQUENCE_ARROW.join(outcomes)] += 1
        for row in answers:
            self.suggestions += len(row["accepted_suggestions"] or [])
            if row["outcome"] == "overridden":
                self.reasons[(row["override_code"], row["override_display"])] += 1


def _combine(
    fired: Sequence[Any],
    answers: dict[tuple[str, str], list[RowMapping]],
    offered: Mapping[str, frozenset[str]] | None,
) -> list[RuleStats]:
    versions: dict[str, set[str]] = defaultdict(set)
    counts: Counter[str] = Counter()
    last_fired: dict[str, datetime] = {}
    for rule_id, version, n, last in fired:
        versions[rule_id].add(version)
        counts[rule_id] += n
        if last is not None and (rule_id not in last_fired or last > last_fired[rule_id]):
            last_fired[rule_id] = last
    tallies: dict[str, _Tally] = defaultdict(_Tally)
    for (rule_id, _card), rows in answers.items():
        tallies[rule_id].add_card(rows)
    return [
        _stats(rule_id, tallies[rule_id], versions, counts, last_fired, offered)
        for rule_id in sorted(counts)
    ]


def _stats(
    rule_id: str,
    tally: _Tally,
    versions: dict[str, set[str]],
    counts: Counter[str],
    last_fired: dict[str, datetime],
    offered: Mapping[str, frozenset[str]] | None,
) -> RuleStats:
    codes = offered.get(rule_id) if offered is not None else None
    return RuleStats(
        rule_id=rule_id,
        versions=tuple(sorted(versions[rule_id])),
        fired=counts[rule_id],
        accepted=tally.accepted,
        overridden=tally.overridden,
        override_reasons=tuple(
            ReasonCount(code, display, n, None if codes is None else code in codes)
            for (code, display), n in tally.reasons.most_common()
        ),
        last_fired=last_fired.get(rule_id),
        answered=tally.answered,
        sequences=tuple(tally.sequences.most_common()),
        accepted_suggestions=tally.suggestions,
    )


# --- shadow rules ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ShadowStats:
    """How often a shadow rule would have fired, and on which services."""

    rule_id: str
    versions: tuple[str, ...]
    would_fire: int
    by_service: tuple[tuple[str, int], ...]
    by_indicator: tuple[tuple[str, int], ...]
    last: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "versions": list(self.versions),
            "would_fire": self.would_fire,
            "by_service": dict(self.by_service),
            "by_indicator": dict(self.by_indicator),
            "last": self.last.isoformat() if self.last else None,
        }


def shadow_summary(
    source: Engine | HasEngine, since: datetime | None = None, until: datetime | None = None
) -> list[ShadowStats]:
    stmt = select(
        shadow_firings.c.rule_id,
        shadow_firings.c.rule_version,
        shadow_firings.c.indicator,
        evaluations.c.service_id,
        func.count().label("n"),
        func.max(evaluations.c.recorded_at).label("last"),
    ).select_from(
        shadow_firings.join(evaluations, shadow_firings.c.evaluation_id == evaluations.c.id)
    )
    stmt = stmt.where(*_time_window(since, until))
    stmt = stmt.group_by(
        shadow_firings.c.rule_id,
        shadow_firings.c.rule_version,
        shadow_firings.c.indicator,
        evaluations.c.service_id,
    )
    with _engine(source).connect() as conn:
        rows = conn.execute(stmt).all()
    grouped: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        grouped[row.rule_id].append(row)
    return [_shadow_stats(rule_id, grouped[rule_id]) for rule_id in sorted(grouped)]


def _time_window(since: datetime | None, until: datetime | None) -> list[Any]:
    conditions = []
    if since is not None:
        conditions.append(evaluations.c.recorded_at >= since)
    if until is not None:
        conditions.append(evaluations.c.recorded_at < until)
    return conditions


def _shadow_stats(rule_id: str, rows: list[Any]) -> ShadowStats:
    services: Counter[str] = Counter()
    indicators: Counter[str] = Counter()
    for row in rows:
        services[row.service_id] += row.n
        indicators[row.indicator] += row.n
    lasts = [row.last for row in rows if row.last is not None]
    return ShadowStats(
        rule_id=rule_id,
        versions=tuple(sorted({row.rule_version for row in rows})),
        would_fire=sum(services.values()),
        by_service=tuple(services.most_common()),
        by_indicator=tuple(indicators.most_common()),
        last=max(lasts) if lasts else None,
    )


# --- alert burden and trends ----------------------------------------------------------------


@dataclass(frozen=True)
class BurdenStats:
    """Cards per KAP request, by service: the interruptions a prescriber feels."""

    service_id: str
    requests: int
    histogram: tuple[tuple[int, int], ...]  # (cards in the answer, requests)

    @property
    def mean(self) -> float:
        total = sum(cards * n for cards, n in self.histogram)
        return total / self.requests if self.requests else 0.0


def alert_burden(
    source: Engine | HasEngine, since: datetime | None = None, until: datetime | None = None
) -> list[BurdenStats]:
    stmt = (
        select(evaluations.c.service_id, evaluations.c.card_count, func.count().label("n"))
        .where(evaluations.c.kap.is_(True), *_time_window(since, until))
        .group_by(evaluations.c.service_id, evaluations.c.card_count)
    )
    with _engine(source).connect() as conn:
        rows = conn.execute(stmt).all()
    by_service: dict[str, dict[int, int]] = defaultdict(dict)
    for service_id, card_count, n in rows:
        by_service[service_id][int(card_count)] = int(n)
    return [
        BurdenStats(service, sum(hist.values()), tuple(sorted(hist.items())))
        for service, hist in sorted(by_service.items())
    ]


def fired_by_day(
    source: Engine | HasEngine, since: datetime | None = None, until: datetime | None = None
) -> dict[str, dict[str, int]]:
    """Cards fired per rule per UTC day ({rule id: {YYYY-MM-DD: n}}), for the trend chart.

    Days are formed in Python from the recorded times: SQLite and PostgreSQL spell date
    truncation differently, and the window the page asks for is small."""
    stmt = select(cards.c.rule_id, evaluations.c.recorded_at).select_from(
        cards.join(evaluations, cards.c.evaluation_id == evaluations.c.id)
    )
    stmt = stmt.where(*_time_window(since, until))
    days: dict[str, Counter[str]] = defaultdict(Counter)
    with _engine(source).connect() as conn:
        for rule_id, recorded_at in conn.execute(stmt):
            days[rule_id][recorded_at.date().isoformat()] += 1
    return {rule_id: dict(sorted(c.items())) for rule_id, c in sorted(days.items())}
