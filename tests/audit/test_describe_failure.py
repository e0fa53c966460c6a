"""Database errors name where (host and port, or the file) and a fixed cause phrase, never the
password, the SQL or its parameters."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from cds.audit import db

from .conftest import closed_port


def test_unreachable_postgres_names_host_port_and_cause() -> None:
    url = f"postgresql://kap:pw-never-shown@127.0.0.1:{closed_port()}/kap"
    engine = db.create_audit_engine(url)
    with pytest.raises(OperationalError) as caught, engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    engine.dispose()
    said = db.describe_failure(url, caught.value)
    assert said.startswith("postgresql host 127.0.0.1 port ")
    assert said.endswith(": connection refused (OperationalError)")
    assert "pw-never-shown" not in said


def test_unknown_messages_say_only_unreachable() -> None:
    exc = OperationalError("INSERT ...", {"patient": "p-123"}, Exception("Key (id)=(p-123)"))
    said = db.describe_failure("postgresql://u@db.internal/kap", exc)
    assert said == "postgresql host db.internal port 5432: unreachable (OperationalError)"


def test_sqlite_directory_is_created_only_inside_the_state_dir(tmp_path: Path) -> None:
    inside = tmp_path / "state" / "deep" / "a.db"
    db.create_audit_engine(f"sqlite:///{inside}", tmp_path / "state").dispose()
    assert inside.parent.is_dir()
    outside = tmp_path / "other" / "a.db"
    with pytest.raises(ValueError, match="does not exist"):
        db.create_audit_engine(f"sqlite:///{outside}", tmp_path / "state")
    assert not outside.parent.exists()
