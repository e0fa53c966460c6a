"""The functions behind ``kap-cds audit export`` and ``kap-cds audit summary``."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest

from cds.audit import AuditStore
from cds.audit.cli import EXIT_OK, EXIT_STORE, EXIT_USAGE, export_command, summary_command
from cds.config import Settings

from . import factories as f
from .conftest import closed_port


def test_export_command_writes_jsonl(store: AuditStore, settings: Settings) -> None:
    ev = f.evaluation("KAP-CI-010")
    f.record(store, ev)
    assert store.flush(10)
    out = io.StringIO()
    assert export_command(settings, "2000-01-01T00:00:00", "jsonl", out) == EXIT_OK
    [line] = out.getvalue().splitlines()
    assert orjson.loads(line)["card_uuid"] == ev.cards[0].uuid


def test_summary_command_text_and_json(store: AuditStore, settings: Settings) -> None:
    ev = f.evaluation("KAP-CI-010")
    f.record(store, ev)
    store.record_feedback(service_id="kap-order-sign", items=[f.feedback_item(ev.cards[0].uuid)])
    assert store.flush(10)

    text = io.StringIO()
    assert summary_command(settings, None, None, "text", text) == EXIT_OK
    # "clinician-reviewed" is not among KAP-CI-010's override reasons: flagged as not offered.
    assert (
        "| KAP-CI-010 | 1.2.0 | 1 | 1 | 0 | 1 | 0 | Clinician-Reviewed (not offered) (1) |"
        in text.getvalue()
    )

    js = io.StringIO()
    assert summary_command(settings, None, "2999-01-01", "json", js) == EXIT_OK
    [rule] = orjson.loads(js.getvalue())["rules"]
    assert (rule["rule_id"], rule["fired"], rule["overridden"]) == ("KAP-CI-010", 1, 1)


@pytest.mark.parametrize(
    ("since", "fmt", "message"),
    [("yesterday", "jsonl", "--since"), (None, "xml", "--format")],
)
def test_export_command_usage_errors(
    settings: Settings,
    since: str | None,
    fmt: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert export_command(settings, since, fmt, io.StringIO()) == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_unreachable_store_is_reported_without_the_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"postgresql://auditor:s3cret@127.0.0.1:{closed_port()}/audit"
    settings = Settings(database_url=url, spool_dir=tmp_path)
    assert export_command(settings, None, "jsonl", io.StringIO()) == EXIT_STORE
    err = capsys.readouterr().err
    assert "unavailable" in err and "s3cret" not in err
