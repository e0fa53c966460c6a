"""Service settings, read from the environment (prefix ``KAP_CDS_``).

Settings are built by ``Settings()`` inside ``create_app`` or the CLI, never at import time, so
tests can construct their own with ``Settings(_env_file=None, ...)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cds.bundled import bundled_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
# The rule set shipped with the package (the repository's rules/ in a checkout).
DEFAULT_RULES_DIR = bundled_dir("rules")
EXAMPLES_DIR = bundled_dir("fhir_examples")


def default_state_dir() -> Path:
    """``var/`` in the directory kap-cds is started from: never inside the installed package."""
    return Path.cwd() / "var"


DEFAULT_FACILITY_ZONE = "UTC"


class TrustedIssuer(BaseModel):
    """One EHR allowed to call us: its JWT issuer and where its public keys are."""

    iss: str
    jwks_url: str | None = None
    jwks: dict[str, Any] | None = None
    tenant: str | None = None
    # ``jku`` header values this issuer's tokens may carry besides ``jwks_url``. Never fetched:
    # the keys always come from ``jwks_url`` or ``jwks``. Empty: see cds/security/tokens.py.
    allowed_jku: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_key_source(self) -> TrustedIssuer:
        if (self.jwks_url is None) == (self.jwks is None):
            raise ValueError(f"trusted issuer {self.iss!r} needs exactly one of jwks_url or jwks")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAP_CDS_", env_ignore_empty=True, extra="ignore")

    # Audit store: an embedded SQLite file by default, postgresql://... in production.
    database_url: str = Field(
        default_factory=lambda: f"sqlite:///{default_state_dir() / 'audit.sqlite3'}"
    )
    # Where audit records wait when the store is unreachable (replayed once it is back).
    spool_dir: Path = Field(default_factory=lambda: default_state_dir() / "spool")

    # When empty the service runs open (no JWT) and binds to loopback; it says so at start-up.
    trusted_issuers: list[TrustedIssuer] = Field(default_factory=list)
    # Public URL of this service as EHRs see it (behind a proxy); JWT `aud` is checked against it.
    public_base_url: str | None = None
    jwt_clock_skew_seconds: int = 60
    jwt_max_lifetime_seconds: int = 3600

    rules_dir: Path = DEFAULT_RULES_DIR
    policy_file: Path | None = None
    # IANA zone of the clinic: every "same day", "today" and calendar-day interval is judged in
    # it (catalog 3.2). Required outside development (``kap-cds serve`` refuses to start
    # without it unless it runs open on loopback); unset, days are UTC days and the service says
    # so at start-up and in /readyz.
    facility_timezone: str | None = None

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1

    # Development only: allow http:// fhirServer URLs (production data must use https).
    allow_insecure_fhir_server: bool = False
    fhir_timeout_seconds: float = 2.0
    fhir_max_pages: int = 5
    fhir_max_response_bytes: int = 20_000_000

    max_body_bytes: int = 10_000_000
    max_json_depth: int = 64
    request_timeout_seconds: float = 10.0
    cors_origins: list[str] = Field(default_factory=list)
    # /governance (rule catalog, per-rule counts; no patient data) without a JWT, for sites that
    # put it behind their own authenticating proxy. Open anyway when the service runs open.
    governance_open: bool = False

    # Opt-in input archive for `kap-cds replay` (encrypted; see cds.audit.archive). Off unless a
    # Fernet key is given, in the environment or in a file (comma-separated keys: newest first).
    archive_key: str | None = Field(default=None, repr=False)
    archive_key_file: Path | None = None
    archive_retention_days: int = Field(default=30, ge=1)

    @field_validator("facility_timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"KAP_CDS_FACILITY_TIMEZONE {value!r} is not an IANA time zone "
                "(e.g. America/Los_Angeles, Europe/Berlin)"
            ) from None
        return value

    @property
    def auth_enabled(self) -> bool:
        return bool(self.trusted_issuers)

    @property
    def facility_zone(self) -> str:
        """The zone days are judged in: the configured one, else UTC (development only)."""
        return self.facility_timezone or DEFAULT_FACILITY_ZONE
