"""Configuration checked at start-up: one problem per line, secrets masked, no directory
created outside the state directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds.startup import ConfigError, load_settings, mask


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("KAP_CDS_DATABASE_URL", "KAP_CDS_SPOOL_DIR", "KAP_CDS_RULES_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAP_CDS_STATE_DIR", str(tmp_path / "state"))


def problems(**env: str) -> list[str]:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(f"KAP_CDS_{name.upper()}", value)
        with pytest.raises(ConfigError) as caught:
            load_settings()
    return caught.value.lines()


def test_defaults_are_valid_and_create_only_the_state_dir(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.state_dir == tmp_path / "state"
    assert settings.state_dir.is_dir()
    assert settings.database_url == f"sqlite:///{tmp_path / 'state' / 'audit.sqlite3'}"
    assert settings.spool_dir == tmp_path / "state" / "spool"


def test_sqlite_outside_the_state_dir_in_a_missing_directory() -> None:
    [line] = problems(database_url="sqlite:////nonexistent-kap-dir/a.db")
    assert line.startswith(
        "configuration: KAP_CDS_DATABASE_URL=sqlite:////nonexistent-kap-dir/a.db"
    )
    assert "does not exist" in line
    assert not Path("/nonexistent-kap-dir").exists()


def test_sqlite_in_an_existing_directory_is_fine(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KAP_CDS_DATABASE_URL", f"sqlite:///{tmp_path / 'elsewhere' / 'a.db'}")
        assert load_settings().database_url.endswith("elsewhere/a.db")


def test_every_problem_is_listed_with_its_setting(tmp_path: Path) -> None:
    lines = problems(
        port="eighty",
        trusted_issuers='[{"iss": "https://ehr.example.org"}]',
    )
    assert len(lines) == 2
    assert any(line.startswith("configuration: KAP_CDS_PORT=eighty: ") for line in lines)
    assert any("KAP_CDS_TRUSTED_ISSUERS" in line and "jwks" in line for line in lines)


def test_machine_checks_are_listed_together(tmp_path: Path) -> None:
    lines = problems(
        rules_dir=str(tmp_path / "no-rules"),
        policy_file=str(tmp_path / "no-policy.yaml"),
        spool_dir="/nonexistent-kap-spool/x",
        workers="0",
    )
    settings = [line.split("=")[0].removeprefix("configuration: ") for line in lines]
    assert settings == [
        "KAP_CDS_SPOOL_DIR",
        "KAP_CDS_RULES_DIR",
        "KAP_CDS_POLICY_FILE",
        "KAP_CDS_WORKERS",
    ]


def test_database_password_is_masked() -> None:
    [line] = problems(database_url="mysql://audit:s3cret-pw@db.example.internal/kap")
    assert "s3cret-pw" not in line
    assert "mysql://audit:***@db.example.internal/kap" in line
    assert "unsupported database 'mysql'" in line


def test_postgres_url_without_host() -> None:
    [line] = problems(database_url="postgresql:///kap")
    assert "names no host" in line


@pytest.mark.parametrize(
    ("setting", "value", "shown"),
    [
        ("database_url", "postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
        ("oidc_client_secret", "abc", "***"),
        ("host", "x" * 300, "x" * 117 + "..."),
    ],
)
def test_mask(setting: str, value: str, shown: str) -> None:
    assert mask(setting, value) == shown


def test_governance_user_header_needs_trusted_proxies() -> None:
    [line] = problems(governance_user_header="X-Forwarded-User")
    assert "KAP_CDS_GOVERNANCE_TRUSTED_PROXIES" in line


def test_governance_trusted_proxies_must_be_addresses() -> None:
    [line] = problems(
        governance_user_header="X-Forwarded-User", governance_trusted_proxies='["proxy.local"]'
    )
    assert line.startswith("configuration: KAP_CDS_GOVERNANCE_TRUSTED_PROXIES=proxy.local: ")
