"""Service settings, read from the environment (prefix ``KAP_CDS_``).

Settings are built by ``Settings()`` inside ``create_app`` or the CLI, never at import time, so
tests can construct their own with ``Settings(_env_file=None, ...)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
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

    # The only directory kap-cds creates directories in (the default audit file and spool live
    # here); any other configured directory must already exist (cds.startup checks).
    state_dir: Path = Field(default_factory=default_state_dir)
    # Audit store: an embedded SQLite file by default, postgresql://... in production.
    # Default: sqlite:///<state_dir>/audit.sqlite3 (filled in by _state_defaults).
    database_url: str = ""
    # False in a deployment that migrates as its own step (`kap-cds db upgrade`, a Kubernetes
    # Job): the pods then wait for the schema, spooling records, and never migrate it.
    migrate_on_start: bool = True
    # Where audit records wait when the store is unreachable (replayed once it is back).
    # Default: <state_dir>/spool.
    spool_dir: Path = Path()

    # When empty the service runs open (no JWT) and binds to loopback; it says so at start-up.
    trusted_issuers: list[TrustedIssuer] = Field(default_factory=list)
    # Public URL of this service as EHRs see it; JWT `aud` must be it followed by the path called.
    # In JWT mode it (or accepted_audiences) is required: the Host header is the caller's choice.
    public_base_url: str | None = None
    # More base URLs the service is reachable under (several host names); same rule as above.
    accepted_audiences: list[str] = Field(default_factory=list)
    # Development only: fetch a trusted issuer's keys over plain http (anyone on the path could
    # swap them).
    allow_insecure_jwks_url: bool = False
    jwt_clock_skew_seconds: int = 60
    jwt_max_lifetime_seconds: int = 3600
    # Replay guard when a PostgreSQL audit store is unreachable: "local" checks token ids in a
    # SQLite file on this node (reconciled when PostgreSQL is back), "refuse" answers 503.
    replay_when_store_down: Literal["local", "refuse"] = "local"
    # Per-issuer rate limit, shared by every replica (0 turns it off): calls per window.
    rate_limit_requests: int = Field(default=3000, ge=0)
    rate_limit_window_seconds: int = Field(default=60, ge=1)

    rules_dir: Path = DEFAULT_RULES_DIR
    policy_file: Path | None = None
    # A site's own codes merged into the shipped value sets (a YAML file or a directory).
    valueset_overlay: Path | None = None
    # IANA zone of the clinic: every "same day", "today" and calendar-day interval is judged in
    # it (catalog 3.2). Required outside development (``kap-cds serve`` refuses to start
    # without it unless it runs open on loopback); unset, days are UTC days and the service says
    # so at start-up and in /readyz.
    facility_timezone: str | None = None

    # Laptop try-out of the image only: run open (no JWT) on a non-loopback address such as
    # 0.0.0.0 inside a container. Said loudly at start-up and in /readyz; never in production.
    open_tryout: bool = False

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1

    # Discovery's prefetch templates: "narrow" asks only for what the rules read (codes,
    # statuses); "broad" for EHRs whose prefetch cannot filter (a whole resource type each).
    prefetch_templates: Literal["narrow", "broad"] = "narrow"

    # Development only: allow http:// fhirServer URLs (production data must use https).
    allow_insecure_fhir_server: bool = False
    fhir_timeout_seconds: float = 2.0
    fhir_max_pages: int = 5
    fhir_max_response_bytes: int = 20_000_000

    # Bytes and resources read from fhirServer per request, across every prefetch key and page.
    fhir_max_resources: int = Field(default=20_000, ge=1)

    max_body_bytes: int = 10_000_000
    max_json_depth: int = 64
    # A call past it gets 503 + Retry-After (the work still running in its thread is dropped).
    request_timeout_seconds: float = 10.0
    # Threads that parse, gather and evaluate (the event loop only moves bytes).
    evaluation_threads: int = Field(default=4, ge=1, le=64)
    # Calls whose body is larger are evaluated one at a time per process, in a thread of their
    # own: a 5,000-resource chart is ~40 MB of Python objects while it is evaluated, and the
    # interpreter runs one thread at a time anyway, so taking turns costs no throughput and
    # bounds a worker's memory (cds.api.work.WorkPool).
    large_call_bytes: int = Field(default=500_000, ge=65_536)
    # CDS calls in progress per process; beyond it 503 + Retry-After at once.
    max_concurrent_calls: int = Field(default=16, ge=1)
    retry_after_seconds: int = Field(default=2, ge=1)
    # Feedback items per call (CDS Hooks sends one per card); more is a 400.
    max_feedback_items: int = Field(default=100, ge=1)
    # HTTP connection guards (kap-cds serve): request line + headers, time to send them, idle
    # keep-alive connections.
    max_header_bytes: int = Field(default=32_768, ge=1024)
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    keep_alive_timeout_seconds: float = Field(default=5.0, gt=0)

    # Logs: one JSON object per line (default), or plain text for a terminal.
    log_format: Literal["json", "text"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # /docs, /redoc, /openapi.json and /metrics can be switched off (404) where not wanted.
    expose_docs: bool = True
    expose_metrics: bool = True
    cors_origins: list[str] = Field(default_factory=list)
    # /governance (rule catalog, per-rule counts; no patient data) without a JWT, for sites that
    # put it behind their own authenticating proxy. Open anyway when the service runs open.
    governance_open: bool = False
    # People sign in to /governance at the site's authenticating reverse proxy, which passes
    # the user in this header (e.g. X-Forwarded-User); believed only from these addresses
    # (IPs or CIDR networks). See cds/security/proxy_login.py.
    governance_user_header: str | None = None
    governance_trusted_proxies: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _state_defaults(self) -> Settings:
        # Derived here, not as field defaults, so that KAP_CDS_STATE_DIR alone moves them.
        if not self.database_url:
            self.database_url = f"sqlite:///{self.state_dir / 'audit.sqlite3'}"
        if self.spool_dir == Path():
            self.spool_dir = self.state_dir / "spool"
        return self

    # Opt-in input archive for `kap-cds replay` (encrypted; see cds.audit.archive). Off unless a
    # Fernet key is given, in the environment or in a file (comma-separated keys: newest first).
    archive_key: str | None = Field(default=None, repr=False)
    archive_key_file: Path | None = None
    archive_retention_days: int = Field(default=30, ge=1)

    @field_validator("public_base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return None if value is None else _absolute_base_url(value, "public_base_url")

    @field_validator("accepted_audiences")
    @classmethod
    def _audience_urls(cls, values: list[str]) -> list[str]:
        return [_absolute_base_url(v, "accepted_audiences") for v in values]

    @model_validator(mode="after")
    def _jwks_over_https(self) -> Settings:
        if self.allow_insecure_jwks_url:
            return self
        for issuer in self.trusted_issuers:
            if issuer.jwks_url is not None and urlsplit(issuer.jwks_url).scheme != "https":
                raise ValueError(
                    f"trusted issuer {issuer.iss!r}: jwks_url must be https (set "
                    "KAP_CDS_ALLOW_INSECURE_JWKS_URL=true for development only)"
                )
        return self

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

    @property
    def audience_bases(self) -> list[str]:
        """The base URLs a token's ``aud`` may name (followed by the path called)."""
        bases = [self.public_base_url] if self.public_base_url else []
        return bases + [a for a in self.accepted_audiences if a not in bases]


def _absolute_base_url(value: str, name: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"{name}: {value!r} is not an absolute http(s) URL without query")
    return value.rstrip("/")
