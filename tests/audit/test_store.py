"""The audit store end to end, on SQLite and PostgreSQL: contents, feedback, outages, replays."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import orjson
import pytest
from sqlalchemy.engine import make_url

from cds.audit import AuditStore, records
from cds.audit.schema import cards, evaluations, feedback
from cds.config import Settings

from . import factories as f
from .conftest import closed_port, dead_engine, open_fast
from .helpers import column, counts, rows, wait_for


def test_evaluation_record_keeps_rules_facts_and_data_outcomes(store: AuditStore) -> None:
    ev = f.evaluation("KAP-CI-010", "KAP-DR-001")
    store.record_evaluation(
        service_id="kap-order-sign",
        hook="order-sign",
        hook_instance="hi-1",
        patient_id="pat-42",
        data=f.patient_data(),
        evaluation=ev,
        latency_ms=4.25,
    )
    assert store.flush(10)

    [row] = rows(store.engine, evaluations)
    assert row["service_id"] == "kap-order-sign"
    assert row["hook"] == "order-sign"
    assert row["hook_instance"] == "hi-1"
    assert row["patient_id"] == "pat-42"
    assert row["ruleset_digest"] == f.DIGEST
    assert row["t0"] == f.T0
    assert row["kap"] is True
    assert row["latency_ms"] == pytest.approx(4.25)
    assert row["card_count"] == 2
    assert row["data_outcomes"] == {"patient": "prefetched", "conditions": "empty", "bp": "failed"}
    assert row["recorded_at"].tzinfo is not None

    stored = sorted(rows(store.engine, cards), key=lambda r: r["position"])
    assert [c["card_uuid"] for c in stored] == [c.uuid for c in ev.cards]
    assert [c["rule_id"] for c in stored] == ["KAP-CI-010", "KAP-DR-001"]
    assert all(c["evaluation_id"] == row["id"] for c in stored)
    assert stored[0]["rule_version"] == "1.2.0"
    assert stored[0]["family"] == "contraindication"
    assert stored[0]["indicator"] == "warning"
    assert stored[0]["facts"] == ev.fired[0].facts


def test_non_kap_evaluation_is_recorded_without_cards(store: AuditStore) -> None:
    f.record(store, f.evaluation(kap=False))
    assert store.flush(10)
    [row] = rows(store.engine, evaluations)
    assert row["kap"] is False
    assert row["card_count"] == 0
    assert counts(store.engine) == (1, 0, 0)


def test_fired_rule_without_a_card_in_the_response_is_still_recorded(store: AuditStore) -> None:
    ev = f.evaluation("KAP-CI-010")
    dropped = f.fired_for(f.card("KAP-FA-001"), facts=[{"fact": "hours_since_solids", "value": 3}])
    ev = type(ev)(ev.cards, [*ev.fired, dropped], ev.t0, ev.kap, ev.ruleset_digest)
    f.record(store, ev)
    assert store.flush(10)
    by_rule = {r["rule_id"]: r for r in rows(store.engine, cards)}
    assert set(by_rule) == {"KAP-CI-010", "KAP-FA-001"}
    assert by_rule["KAP-FA-001"]["facts"] == [{"fact": "hours_since_solids", "value": 3}]


def test_feedback_is_linked_kept_as_history_and_unknown_cards_flagged(store: AuditStore) -> None:
    ev = f.evaluation("KAP-CI-010")
    f.record(store, ev)
    uuid = ev.cards[0].uuid
    store.record_feedback(service_id="kap-order-sign", items=[f.feedback_item(uuid)])
    store.record_feedback(
        service_id="kap-order-sign",
        items=[f.feedback_item(uuid, "accepted"), f.feedback_item("no-such-card", "accepted")],
    )
    assert store.flush(10)

    fb = rows(store.engine, feedback)
    assert len(fb) == 3
    [eval_id] = column(store.engine, evaluations.c.id)
    mine = [r for r in fb if r["card_uuid"] == uuid]
    assert sorted(r["outcome"] for r in mine) == ["accepted", "overridden"]
    assert all(r["evaluation_id"] == eval_id and r["unknown_card"] is False for r in mine)
    overridden = next(r for r in mine if r["outcome"] == "overridden")
    assert overridden["override_code"] == "clinician-reviewed"
    assert overridden["override_display"] == "Clinician-Reviewed"
    assert overridden["override_system"] == "urn:kap-cds:override"
    assert overridden["user_comment"] == "=discussed with patient"
    assert overridden["outcome_timestamp"].isoformat() == "2025-03-04T09:31:00+00:00"
    accepted = next(r for r in mine if r["outcome"] == "accepted")
    assert accepted["accepted_suggestions"] == ["sugg-1"]
    [unknown] = [r for r in fb if r["card_uuid"] == "no-such-card"]
    assert unknown["unknown_card"] is True
    assert unknown["evaluation_id"] is None


def test_feedback_that_arrives_before_its_card_is_linked_later(store: AuditStore) -> None:
    ev = f.evaluation("KAP-CI-010")
    store.record_feedback(service_id="kap-order-sign", items=[f.feedback_item(ev.cards[0].uuid)])
    assert store.flush(10)
    assert rows(store.engine, feedback)[0]["unknown_card"] is True

    f.record(store, ev)  # e.g. another process had it in its spool
    assert store.flush(10)
    [fb] = rows(store.engine, feedback)
    assert fb["unknown_card"] is False
    assert fb["evaluation_id"] == column(store.engine, evaluations.c.id)[0]


def test_a_record_that_cannot_be_built_fails_the_call(store: AuditStore) -> None:
    """No silent 200 for a decision the trail does not keep: the error reaches the route (500)."""
    with pytest.raises(AttributeError):
        store.record_evaluation(
            service_id="kap-order-sign",
            hook="order-sign",
            hook_instance="x",
            patient_id=None,
            data=f.patient_data(),
            evaluation=None,  # type: ignore[arg-type]
            latency_ms=1.0,
        )


def test_spool_file_is_named_with_the_pid_and_emptied_when_written(
    store: AuditStore, settings: Settings
) -> None:
    f.record(store, f.evaluation("KAP-CI-010"))
    names = [p.name for p in settings.spool_dir.glob("seg-*.jsonl")]
    assert names and all(n.startswith(f"seg-{os.getpid()}-") for n in names)
    assert store.flush(10)
    assert store.spool.pending() == 0


def test_database_outage_loses_nothing_and_writes_everything_once(
    store: AuditStore, db_url: str, tmp_path: Path
) -> None:
    for _ in range(5):
        f.record(store, f.evaluation("KAP-CI-010"))
    assert store.flush(10)

    dead = dead_engine(db_url, tmp_path)
    store.writer.engine = dead  # the database goes away mid-run
    instances, card_uuids = [], []
    for i in range(200):
        ev = f.evaluation("KAP-CI-010", "KAP-DR-001")
        instance = f"outage-{i}"
        store.record_evaluation(
            service_id="kap-order-sign",
            hook="order-sign",
            hook_instance=instance,
            patient_id=f"p{i}",
            data=f.patient_data(),
            evaluation=ev,
            latency_ms=2.0,
        )
        store.record_feedback(
            service_id="kap-order-sign", items=[f.feedback_item(ev.cards[0].uuid)]
        )
        instances.append(instance)
        card_uuids.extend(c.uuid for c in ev.cards)

    assert wait_for(lambda: store.writer.failures > 0)
    assert not store.healthy()
    assert counts(store.engine) == (5, 5, 0)  # nothing new got through...
    assert store.spool.pending() > 0  # ...and everything waits in the spool

    store.writer.engine = store.engine  # the database is back
    assert store.flush(20)
    dead.dispose()
    assert store.healthy()
    assert counts(store.engine) == (205, 405, 200)
    recorded = [i for i in column(store.engine, evaluations.c.hook_instance) if i.startswith("out")]
    assert sorted(recorded) == sorted(instances)  # each exactly once
    assert set(card_uuids) <= set(column(store.engine, cards.c.card_uuid))
    assert not any(column(store.engine, feedback.c.unknown_card))


def test_spool_left_by_a_dead_process_is_replayed_once(settings: Settings, tmp_path: Path) -> None:
    first = open_fast(settings)
    dead = dead_engine(settings.database_url, tmp_path)
    first.writer.engine = dead
    evs = [f.evaluation("KAP-CI-010") for _ in range(20)]
    for ev in evs:
        f.record(first, ev)
    first.close(timeout=2)  # cannot flush: the records stay in the spool
    dead.dispose()
    assert list(settings.spool_dir.glob("seg-*.jsonl"))

    second = open_fast(settings)
    try:
        assert second.flush(20)
        assert counts(second.engine) == (20, 20, 0)
        second.close()
        third = open_fast(settings)  # nothing left to replay: still exactly once
        assert third.flush(20)
        assert counts(third.engine) == (20, 20, 0)
        third.close()
    finally:
        second.close()
    assert not list(settings.spool_dir.glob("seg-*.jsonl"))


def test_replaying_records_already_written_duplicates_nothing(
    settings: Settings, store: AuditStore
) -> None:
    ev = f.evaluation("KAP-CI-010", "KAP-DR-001")
    f.record(store, ev)
    store.record_feedback(service_id="kap-order-sign", items=[f.feedback_item(ev.cards[0].uuid)])
    [segment] = store.spool.segments()
    assert store.flush(10)
    # A process that died after committing but before deleting its segment leaves this behind:
    shutil.copy(segment.path, settings.spool_dir / "seg-999999-deadbeef-000001.jsonl")

    replayer = open_fast(settings)
    try:
        assert replayer.flush(10)
        assert replayer.writer.written == 2
    finally:
        replayer.close()
    assert counts(store.engine) == (1, 2, 1)
    assert not (settings.spool_dir / "seg-999999-deadbeef-000001.jsonl").exists()


def test_a_live_process_spool_is_never_claimed(settings: Settings, tmp_path: Path) -> None:
    live = open_fast(settings)
    dead = dead_engine(settings.database_url, tmp_path)
    live.writer.engine = dead
    for _ in range(5):
        f.record(live, f.evaluation("KAP-CI-010"))

    other = open_fast(settings)
    try:
        assert all(seg.owned for seg in other.spool.segments())
        assert other.flush(10)
        assert counts(other.engine) == (0, 0, 0)

        live.close(timeout=2)  # still down: "live" leaves its records behind and exits
        assert other.spool.claim_orphans() >= 1  # the writer also rescans periodically
        assert other.flush(10)
        assert counts(other.engine) == (5, 5, 0)
    finally:
        other.close()
        dead.dispose()


def test_unreadable_and_refused_lines_are_quarantined_not_lost(settings: Settings) -> None:
    good = records.evaluation_record(
        service_id="kap-order-sign",
        hook="order-sign",
        hook_instance="good",
        patient_id="p1",
        data=f.patient_data(),
        evaluation=f.evaluation("KAP-CI-010"),
        latency_ms=1.0,
    )
    refused = {**good, "id": "refused", "hook": None, "cards": []}  # NOT NULL violation
    settings.spool_dir.mkdir(parents=True)
    (settings.spool_dir / "seg-1-cafebabe-000001.jsonl").write_bytes(
        orjson.dumps(good) + b"\n" + b"{not json\n" + orjson.dumps(refused) + b"\n" + b'{"kind":'
    )
    s = open_fast(settings)
    try:
        assert s.flush(10)
        assert column(s.engine, evaluations.c.hook_instance) == ["good"]
        assert s.writer.quarantined == 3
        assert s.healthy()
    finally:
        s.close()
    [quarantine] = settings.spool_dir.glob("quarantine-*.jsonl")
    lines = quarantine.read_bytes().splitlines()
    assert lines[0] == b"{not json"
    assert len(lines) == 3
    assert any(b'"refused"' in line for line in lines)


@pytest.mark.postgres
def test_database_down_at_start_up_does_not_stop_the_service(pg_url: str, tmp_path: Path) -> None:
    down = make_url(pg_url).set(port=closed_port()).render_as_string(hide_password=False)
    spool_dir = tmp_path / "spool"
    s = open_fast(Settings(database_url=down, spool_dir=spool_dir))
    try:
        f.record(s, f.evaluation("KAP-CI-010"))
        assert wait_for(lambda: s.writer.failures > 0)
        assert not s.healthy()
    finally:
        s.close(timeout=2)
    # The records wait for the next start with a reachable database.
    s2 = open_fast(Settings(database_url=pg_url, spool_dir=spool_dir))
    try:
        assert s2.flush(10)
        assert counts(s2.engine) == (1, 1, 0)
    finally:
        s2.close()
