"""Who asked (caller and userId on every record; export and summary by issuer), values the
database cannot store (escaped, not dropped), torn spool lines (salvaged), and quarantined records
(visible in export, summary, stats)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import orjson

from cds.audit import AuditStore, queries
from cds.audit.cli import EXIT_OK, export_command, summary_command
from cds.audit.schema import evaluations, feedback
from cds.config import Settings

from . import factories as f
from .conftest import open_fast
from .helpers import column, rows

EHR_A = "https://ehr-a.example.org"
EHR_B = "https://ehr-b.example.org"


@dataclass(frozen=True)
class Client:
    iss: str
    jti: str
    kid: str = "key-1"
    sub: str | None = "cds-client-7"
    tenant: str | None = "clinic-a"


def record(store: AuditStore, caller: Client | None, instance: str, **extra: str) -> str:
    ev = f.evaluation("KAP-CI-010")
    store.record_evaluation(
        service_id="kap-order-sign",
        hook="order-sign",
        hook_instance=instance,
        patient_id=extra.get("patient_id", "p1"),
        data=f.patient_data(),
        evaluation=ev,
        latency_ms=1.0,
        caller=caller,
        user_id=extra.get("user_id", "Practitioner/dr-lee"),
    )
    return ev.cards[0].uuid


def export_lines(settings: Settings, issuer: str | None = None) -> list[dict[str, object]]:
    out = io.StringIO()
    assert export_command(settings, None, "jsonl", out, issuer=issuer) == EXIT_OK
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def test_every_record_keeps_its_caller_and_user(store: AuditStore) -> None:
    card = record(store, Client(EHR_A, "jti-1"), "a1")
    record(store, None, "open-1")  # open mode: no caller
    store.record_feedback(
        service_id="kap-order-sign",
        items=[f.feedback_item(card)],
        caller=Client(EHR_A, "jti-2"),
    )
    assert store.flush(10)
    by_instance = {r["hook_instance"]: r for r in rows(store.engine, evaluations)}
    assert {k: v for k, v in by_instance["a1"].items() if k.startswith(("caller_", "user"))} == {
        "caller_iss": EHR_A,
        "caller_sub": "cds-client-7",
        "caller_jti": "jti-1",
        "caller_kid": "key-1",
        "caller_tenant": "clinic-a",
        "user_id": "Practitioner/dr-lee",
    }
    assert by_instance["open-1"]["caller_iss"] is None
    [fb] = rows(store.engine, feedback)
    assert (fb["caller_iss"], fb["caller_jti"]) == (EHR_A, "jti-2")


def test_export_and_summary_filter_by_issuer(store: AuditStore, settings: Settings) -> None:
    record(store, Client(EHR_A, "a"), "from-a")
    record(store, Client(EHR_B, "b1"), "from-b1")
    record(store, Client(EHR_B, "b2"), "from-b2")
    assert store.flush(10)
    only_a = export_lines(settings, EHR_A)
    assert [line["hook_instance"] for line in only_a] == ["from-a"]
    assert only_a[0]["caller_iss"] == EHR_A
    assert len(export_lines(settings)) == 3
    [stats_b] = queries.rule_summary(store.engine, issuer=EHR_B)
    assert stats_b.fired == 2
    out = io.StringIO()
    assert summary_command(settings, None, None, "json", out, issuer=EHR_A) == EXIT_OK
    assert orjson.loads(out.getvalue())["rules"][0]["fired"] == 1


def test_values_postgresql_cannot_store_are_escaped_not_dropped(
    store: AuditStore, settings: Settings
) -> None:
    record(store, Client(EHR_A, "nul\x00jti"), "order\x00id", user_id="Practitioner/\ud800x")
    record(store, None, "big", patient_id=str(10**30))
    assert store.flush(10)
    assert store.writer.quarantined == 0
    [row] = [r for r in rows(store.engine, evaluations) if r["hook_instance"] != "big"]
    assert row["hook_instance"] == "order\\u0000id"
    assert row["caller_jti"] == "nul\\u0000jti"
    assert row["user_id"] == "Practitioner/\\ud800x"


def test_torn_lines_are_salvaged_and_quarantine_is_visible(settings: Settings) -> None:
    from cds.audit import records

    def line(instance: str) -> bytes:
        rec = records.evaluation_record(
            service_id="kap-order-sign",
            hook="order-sign",
            hook_instance=instance,
            patient_id="p1",
            data=f.patient_data(),
            evaluation=f.evaluation("KAP-CI-010"),
            latency_ms=1.0,
        )
        return orjson.dumps(rec)

    torn = line("torn")[:40]  # a write cut off by a crash, then appends went on behind it
    settings.spool_dir.mkdir(parents=True)
    segment = Path(settings.spool_dir) / "seg-1-cafebabe-000001.jsonl"
    segment.write_bytes(
        line("first")
        + b"\n"
        + torn
        + line("after-tear")
        + b"\n"
        + line("last")
        + b"\n"
        + b"\x00" * 64  # the zeros a power loss can leave at the end of a file
    )
    s = open_fast(settings)
    try:
        assert s.flush(10)
        assert sorted(column(s.engine, evaluations.c.hook_instance)) == [
            "after-tear",
            "first",
            "last",
        ]
        assert s.writer.quarantined == 1  # only the fragment
        assert s.stats()["quarantined"] == 1
        [held] = [x for x in export_lines(settings) if x["record"] == "quarantined"]
        assert held["reason"] == "unreadable spool line"
        assert held["raw"] == torn.decode()
        out = io.StringIO()
        summary_command(settings, None, None, "text", out)
        assert "1 audit record(s) quarantined" in out.getvalue()
        out = io.StringIO()
        summary_command(settings, None, None, "json", out)
        assert orjson.loads(out.getvalue())["quarantined_records"] == 1
    finally:
        s.close()
