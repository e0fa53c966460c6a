"""Fixtures for the audit store tests: every store test runs on SQLite and on PostgreSQL.

PostgreSQL tests read ``KAP_CDS_TEST_POSTGRES_URL``. Without it they skip, unless
``KAP_CDS_REQUIRE_POSTGRES=1`` (set by ``.ci/run``) makes them fail: CI cannot skip them silently.
Each test gets its own PostgreSQL schema (through ``search_path``), dropped afterwards.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from cds.audit import AuditStore, open_store
from cds.audit.db import create_audit_engine
from cds.config import Settings

PG_URL_ENV = "KAP_CDS_TEST_POSTGRES_URL"
PG_REQUIRED_ENV = "KAP_CDS_REQUIRE_POSTGRES"


def postgres_base_url() -> str:
    url = os.environ.get(PG_URL_ENV)
    if url:
        return url
    if os.environ.get(PG_REQUIRED_ENV) == "1":
        pytest.fail(f"{PG_REQUIRED_ENV}=1 but {PG_URL_ENV} is not set: PostgreSQL tests must run")
    pytest.skip(f"PostgreSQL tests skipped: {PG_URL_ENV} is not set")


@pytest.fixture
def pg_url() -> Iterator[str]:
    base = postgres_base_url()
    schema = f"audit_test_{uuid.uuid4().hex[:12]}"
    admin = create_audit_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        (tmp_path / "db").mkdir()  # kap-cds creates directories only in its state directory
        return f"sqlite:///{tmp_path / 'db' / 'audit.sqlite3'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=db_url, spool_dir=tmp_path / "spool", state_dir=tmp_path)


def open_fast(settings: Settings) -> AuditStore:
    """A store that retries within milliseconds, so outage tests finish quickly."""
    return open_store(settings, backoff_initial=0.01, backoff_max=0.05)


@pytest.fixture
def store(settings: Settings) -> Iterator[AuditStore]:
    s = open_fast(settings)
    try:
        yield s
    finally:
        s.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def dead_engine(db_url: str, tmp_path: Path) -> Engine:
    """An engine for the same kind of database that cannot be reached."""
    if db_url.startswith("sqlite"):
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("")
        # A database path under a regular file: every connect fails ("unable to open").
        return create_engine(f"sqlite:///{blocker / 'audit.sqlite3'}")
    url = make_url(db_url).set(drivername="postgresql+psycopg", port=closed_port())
    return create_engine(url, connect_args={"connect_timeout": 2})
