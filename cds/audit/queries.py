"""Reading the audit trail: the export and the per-rule summary of the compliance report.

Feedback is joined to cards by card uuid (not by the ``evaluation_id`` stored on the feedback
row), so feedback written before its card reached the store is still counted.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, TextIO

import orjson
from sqlalchemy import Connection, Engine, RowMapping, Select, and_, exists, func, select

from cds.audit.schema import cards, evaluations, feedback

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
) -> int:
    """Write the trail since ``since``; returns the number of lines/rows written.

    jsonl: one line per card (``"record": "card"``, every feedback item in ``feedback``), one per
    evaluation without cards (``"record": "evaluation"``), and one per feedback item whose card
    the store does not know (``"record": "unknown_card_feedback"``).
    csv: one row per card, with the feedback count and the latest feedback item.
    """
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"unknown export format {fmt!r}")
    with _engine(source).connect() as conn:
        rows = _export_rows(conn, since)
        if fmt == "csv":
            return _write_csv(rows, out)
        count = _write_jsonl(rows, out)
        return count + _write_jsonl(_unknown_card_feedback(conn, since), out)


def _export_rows(conn: Connection, since: datetime | None) -> Iterator[dict[str, Any]]:
    stmt = (
        select(evaluations.c.id.label("evaluation_id"), *_eval_cols(), *_card_cols())
        .select_from(evaluations.outerjoin(cards, cards.c.evaluation_id == evaluations.c.id))
        .order_by(evaluations.c.recorded_at, evaluations.c.id, cards.c.position, cards.c.line)
    )
    if since is not None:
        stmt = stmt.where(evaluations.c.recorded_at >= since)
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


def _unknown_card_feedback(conn: Connection, since: datetime | None) -> Iterator[dict[str, Any]]:
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
    for row in conn.execute(stmt).mappings():
        # str(): column keys are str subclasses, which orjson refuses as object keys.
        yield {"record": "unknown_card_feedback", **{str(k): v for k, v in row.items()}}


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


@dataclass(frozen=True)
class RuleStats:
    """One rule over a time window. ``accepted``/``overridden`` count cards by their latest
    feedback (a card re-answered counts once); ``override_reasons`` count those overrides."""

    rule_id: str
    versions: tuple[str, ...]
    fired: int
    accepted: int
    overridden: int
    override_reasons: tuple[ReasonCount, ...] = field(default=())
    last_fired: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "versions": list(self.versions),
            "fired": self.fired,
            "accepted": self.accepted,
            "overridden": self.overridden,
            "override_reasons": [vars(r) for r in self.override_reasons],
            "last_fired": self.last_fired.isoformat() if self.last_fired else None,
        }


def rule_summary(
    source: Engine | HasEngine,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[RuleStats]:
    """Per-rule counts for cards whose evaluation falls in [since, until), sorted by rule id."""
    with _engine(source).connect() as conn:
        fired = conn.execute(_fired_stmt(since, until)).all()
        latest = _latest_feedback(conn.execute(_feedback_stmt(since, until)).mappings())
    return _combine(fired, latest)


def _window(stmt: Select[Any], since: datetime | None, until: datetime | None) -> Select[Any]:
    joined = stmt.select_from(cards.join(evaluations, cards.c.evaluation_id == evaluations.c.id))
    conditions = []
    if since is not None:
        conditions.append(evaluations.c.recorded_at >= since)
    if until is not None:
        conditions.append(evaluations.c.recorded_at < until)
    return joined.where(and_(*conditions)) if conditions else joined


def _fired_stmt(since: datetime | None, until: datetime | None) -> Select[Any]:
    stmt = select(
        cards.c.rule_id,
        cards.c.rule_version,
        func.count().label("fired"),
        func.max(evaluations.c.recorded_at).label("last_fired"),
    )
    return _window(stmt, since, until).group_by(cards.c.rule_id, cards.c.rule_version)


def _feedback_stmt(since: datetime | None, until: datetime | None) -> Select[Any]:
    stmt = select(
        cards.c.rule_id,
        cards.c.card_uuid,
        feedback.c.outcome,
        feedback.c.override_code,
        feedback.c.override_display,
    )
    windowed: Select[Any] = _window(stmt, since, until)
    joined: Select[Any] = windowed.join(feedback, feedback.c.card_uuid == cards.c.card_uuid)
    return joined.order_by(cards.c.card_uuid, feedback.c.received_at, feedback.c.id)


def _latest_feedback(rows: Iterable[RowMapping]) -> dict[tuple[str, str], RowMapping]:
    """The latest feedback per (card, rule): feedback on a checklist card counts for each rule
    it lists."""
    latest: dict[tuple[str, str], RowMapping] = {}
    for row in rows:  # ordered by time within each card: the last one wins
        latest[(row["card_uuid"], row["rule_id"])] = row
    return latest


def _combine(fired: Sequence[Any], latest: dict[tuple[str, str], RowMapping]) -> list[RuleStats]:
    versions: dict[str, set[str]] = defaultdict(set)
    counts: Counter[str] = Counter()
    last_fired: dict[str, datetime] = {}
    for rule_id, version, n, last in fired:
        versions[rule_id].add(version)
        counts[rule_id] += n
        if last is not None and (rule_id not in last_fired or last > last_fired[rule_id]):
            last_fired[rule_id] = last
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    reasons: dict[str, Counter[tuple[str | None, str | None]]] = defaultdict(Counter)
    for row in latest.values():
        outcomes[row["rule_id"]][row["outcome"]] += 1
        if row["outcome"] == "overridden":
            reasons[row["rule_id"]][(row["override_code"], row["override_display"])] += 1
    return [
        RuleStats(
            rule_id=rule_id,
            versions=tuple(sorted(versions[rule_id])),
            fired=counts[rule_id],
            accepted=outcomes[rule_id]["accepted"],
            overridden=outcomes[rule_id]["overridden"],
            override_reasons=tuple(
                ReasonCount(code, display, n)
                for (code, display), n in reasons[rule_id].most_common()
            ),
            last_fired=last_fired.get(rule_id),
        )
        for rule_id in sorted(counts)
    ]
