"""The input archive: opt-in, encrypted at rest, key outside the database, purged on schedule,
never readable over HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from replay_support import EXAMPLES
from sqlalchemy import select, update

from cds.app import create_app
from cds.audit.archive import (
    ArchiveCipher,
    ArchiveKeyError,
    count_archive,
    new_key,
    purge_archive,
    read_archive,
)
from cds.audit.schema import input_archive
from cds.config import Settings

HIGH_BP = EXAMPLES / "requests" / "uncontrolled-bp.json"
NOT_KAP = {
    "hook": "order-sign",
    "hookInstance": "x",
    "context": {
        "userId": "Practitioner/1",
        "patientId": "p1",
        "draftOrders": {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [
                {
                    "resource": {
                        "resourceType": "MedicationRequest",
                        "id": "amox",
                        "status": "draft",
                        "intent": "order",
                        "subject": {"reference": "Patient/p1"},
                        "medicationCodeableConcept": {"text": "amoxicillin 500 mg"},
                    }
                }
            ],
        },
    },
}


def _settings(tmp_path: Path, **extra: object) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite:///{tmp_path / 'audit.sqlite3'}",
        spool_dir=tmp_path / "spool",
        **extra,
    )


def _post(settings: Settings, *bodies: bytes) -> object:
    app = create_app(settings)
    with TestClient(app) as client:
        for body in bodies:
            answer = client.post(
                "/cds-services/kap-order-sign",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            assert answer.status_code == 200
        store = app.state.runtime.audit
        assert store.flush(10)
        routes = [getattr(r, "path", "") for r in app.routes]
    return store, routes


def test_archive_is_off_without_a_key(tmp_path: Path) -> None:
    store, _ = _post(_settings(tmp_path), HIGH_BP.read_bytes())
    assert count_archive(store.engine) == 0  # type: ignore[attr-defined]


def test_archived_rows_are_encrypted_and_open_with_the_key(tmp_path: Path) -> None:
    key = new_key()
    store, routes = _post(
        _settings(tmp_path, archive_key=key), HIGH_BP.read_bytes(), json.dumps(NOT_KAP).encode()
    )
    engine = store.engine  # type: ignore[attr-defined]
    assert count_archive(engine) == 1  # KAP evaluations only: a non-KAP order reads no data
    with engine.connect() as conn:
        [(token, key_id)] = conn.execute(
            select(input_archive.c.token, input_archive.c.key_id)
        ).all()
    raw = HIGH_BP.read_text(encoding="utf-8")
    patient_id = json.loads(raw)["context"]["patientId"]
    assert patient_id not in token and "Observation" not in token and key not in token
    assert key_id != key
    [row] = read_archive(engine, ArchiveCipher([key.encode()]))
    assert row.inputs.context["patientId"] == patient_id
    assert row.inputs.service_id == "kap-order-sign"
    assert row.inputs.resources["Observation"]
    # Nothing on the web side serves the archive.
    assert not [path for path in routes if "archive" in path]


def test_a_rotated_key_still_opens_old_rows_and_a_wrong_key_is_refused(tmp_path: Path) -> None:
    old = new_key()
    store, _ = _post(_settings(tmp_path, archive_key=old), HIGH_BP.read_bytes())
    engine = store.engine  # type: ignore[attr-defined]
    rotated = ArchiveCipher.from_settings(f"{new_key()},{old}", None)
    assert rotated is not None
    assert len(list(read_archive(engine, rotated))) == 1
    with pytest.raises(ArchiveKeyError, match="configured keys"):
        list(read_archive(engine, ArchiveCipher([new_key().encode()])))


def test_key_from_a_file_and_bad_keys(tmp_path: Path) -> None:
    key_file = tmp_path / "archive.key"
    key_file.write_text(new_key() + "\n", encoding="utf-8")
    assert ArchiveCipher.from_settings(None, key_file) is not None
    assert ArchiveCipher.from_settings(None, None) is None
    with pytest.raises(ArchiveKeyError, match="not a Fernet key") as bad:
        ArchiveCipher.from_settings("not-a-key", None)
    assert "not-a-key" not in str(bad.value)  # the message never repeats the key
    with pytest.raises(ArchiveKeyError, match="cannot be read"):
        ArchiveCipher.from_settings(None, tmp_path / "missing.key")


def test_purge_removes_rows_past_the_retention_window(tmp_path: Path) -> None:
    store, _ = _post(
        _settings(tmp_path, archive_key=new_key()), HIGH_BP.read_bytes(), HIGH_BP.read_bytes()
    )
    engine = store.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        oldest = conn.execute(select(input_archive.c.evaluation_id).limit(1)).scalar_one()
        conn.execute(
            update(input_archive)
            .where(input_archive.c.evaluation_id == oldest)
            .values(recorded_at=datetime.now(UTC) - timedelta(days=40))
        )
    assert purge_archive(engine, retention_days=30) == 1
    assert count_archive(engine) == 1
