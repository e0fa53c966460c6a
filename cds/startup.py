"""Settings validated at start-up: one line per problem (setting, masked value, why), never a
traceback. ``kap-cds serve`` and every CLI command call ``load_settings()`` first.

Two layers: pydantic's own validation of each ``KAP_CDS_*`` value (types, the trusted-issuer
shape), then the checks in ``CHECKS``, which look at the machine (directories, the database
URL). A setting added elsewhere gets its type checked for free; a check that needs the machine
is one more function appended to ``CHECKS``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from cds.config import Settings

ENV_PREFIX = "KAP_CDS_"
# Settings whose whole value is a secret, and words that mark one in a setting's name.
_SECRET_NAME = re.compile(r"secret|password|token|private|credential|(^|_)key($|_)", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]*):(?P<pw>[^@/\s]*)@", re.I)
_MAX_SHOWN = 120


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration: which setting, its (masked) value, and why."""

    setting: str
    value: str
    why: str

    def line(self) -> str:
        return f"{self.setting}={self.value}: {self.why}"


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` has one entry per thing to fix."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.line() for p in problems))
        self.problems = problems

    def lines(self) -> list[str]:
        return [f"configuration: {p.line()}" for p in self.problems]


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def mask(setting: str, value: Any) -> str:
    """The value as it may be shown: passwords in URLs and secret settings hidden, long values
    cut (a JWKS document is long and says nothing useful in one line)."""
    text = value if isinstance(value, str) else repr(value)
    if _SECRET_NAME.search(setting):
        return "***"
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}:***@", text)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def load_settings(**overrides: Any) -> Settings:
    """``Settings()`` from the environment, checked; ``ConfigError`` lists every problem.

    Creates the state directory (the one place kap-cds creates directories in)."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(list(_from_validation(exc))) from None
    problems = [problem for check in CHECKS for problem in check(settings)]
    if problems:
        raise ConfigError(problems)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    return settings


def _from_validation(exc: ValidationError) -> Iterable[Problem]:
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else "settings"
        raw = os.environ.get(env_name(field), error.get("input", ""))
        where = ".".join(str(part) for part in error["loc"][1:])
        why = error["msg"] + (f" (at {where})" if where else "")
        yield Problem(env_name(field), mask(field, raw), why)


# ---- checks on the machine ------------------------------------------------------------------


def _inside(path: Path, directory: Path) -> bool:
    return path.resolve().is_relative_to(directory.resolve())


def _directory_problem(setting: str, path: Path, state_dir: Path) -> Problem | None:
    """A directory kap-cds writes in: it exists, or it will be created inside the state dir."""
    if path.exists():
        if not path.is_dir():
            return Problem(setting, str(path), "exists but is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            return Problem(setting, str(path), "directory is not writable by this user")
        return None
    if _inside(path, state_dir):
        return None
    return Problem(
        setting,
        str(path),
        f"directory does not exist (kap-cds creates directories only inside "
        f"{env_name('state_dir')}={state_dir})",
    )


def check_state_dir(settings: Settings) -> Iterable[Problem]:
    state = settings.state_dir
    if state.exists() and not state.is_dir():
        yield Problem(env_name("state_dir"), str(state), "exists but is not a directory")
    elif not state.exists() and not state.parent.is_dir():
        yield Problem(env_name("state_dir"), str(state), f"parent {state.parent} does not exist")


def check_spool_dir(settings: Settings) -> Iterable[Problem]:
    problem = _directory_problem(env_name("spool_dir"), settings.spool_dir, settings.state_dir)
    if problem:
        yield problem


def check_database_url(settings: Settings) -> Iterable[Problem]:
    setting, raw = env_name("database_url"), settings.database_url
    try:
        url = make_url(raw)
    except ArgumentError:
        yield Problem(
            setting, mask(setting, raw), "not a database URL (sqlite:///... or postgresql://...)"
        )
        return
    backend = url.get_backend_name()
    if backend == "postgres":
        backend = "postgresql"
    if backend not in ("sqlite", "postgresql"):
        yield Problem(
            setting,
            mask(setting, raw),
            f"unsupported database {backend!r}: use sqlite or postgresql",
        )
        return
    if backend == "postgresql" and not url.host:
        yield Problem(setting, mask(setting, raw), "PostgreSQL URL names no host")
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            yield Problem(setting, raw, "an in-memory database would lose the audit trail")
            return
        if url.database.startswith("file:"):
            return
        directory = Path(url.database).expanduser().parent
        problem = _directory_problem(setting, directory, settings.state_dir)
        if problem:
            yield Problem(setting, mask(setting, raw), f"{directory}: {problem.why}")


def check_rules_dir(settings: Settings) -> Iterable[Problem]:
    if not settings.rules_dir.is_dir():
        yield Problem(env_name("rules_dir"), str(settings.rules_dir), "not a directory")


def check_policy_file(settings: Settings) -> Iterable[Problem]:
    policy = settings.policy_file
    if policy is not None and not policy.is_file():
        yield Problem(env_name("policy_file"), str(policy), "file does not exist")


def check_listen(settings: Settings) -> Iterable[Problem]:
    if not 0 < settings.port < 65536:
        yield Problem(env_name("port"), str(settings.port), "not a TCP port (1-65535)")
    if settings.workers < 1:
        yield Problem(env_name("workers"), str(settings.workers), "must be at least 1")


def check_governance_proxy(settings: Settings) -> Iterable[Problem]:
    proxies = env_name("governance_trusted_proxies")
    for value in settings.governance_trusted_proxies:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            yield Problem(proxies, value, "not an IP address or CIDR network")
    if settings.governance_user_header and not settings.governance_trusted_proxies:
        yield Problem(
            env_name("governance_user_header"),
            settings.governance_user_header,
            f"needs {proxies}: the header is believed only from the proxy's addresses",
        )


CHECKS: list[Callable[[Settings], Iterable[Problem]]] = [
    check_state_dir,
    check_spool_dir,
    check_database_url,
    check_rules_dir,
    check_policy_file,
    check_listen,
    check_governance_proxy,
]
