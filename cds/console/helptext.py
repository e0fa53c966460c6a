"""Help texts that say which ``KAP_CDS_*`` setting each command reads and its default, taken
from ``cds.config.Settings`` so that a new setting shows up without editing the CLI."""

from __future__ import annotations

import argparse
from pathlib import Path

from cds.config import REPO_ROOT, Settings
from cds.startup import env_name

# Defaults computed from another setting, said the way an operator reads them.
_DERIVED = {
    "database_url": "sqlite:///<KAP_CDS_STATE_DIR>/audit.sqlite3",
    "spool_dir": "<KAP_CDS_STATE_DIR>/spool",
}


def default_of(field: str) -> str:
    if field in _DERIVED:
        return _DERIVED[field]
    info = Settings.model_fields[field]
    value = info.get_default(call_default_factory=True)
    if isinstance(value, Path) and value.is_relative_to(REPO_ROOT):
        return f"<repository>/{value.relative_to(REPO_ROOT)}"
    if value in (None, [], ""):
        return "(unset)"
    return str(value).lower() if isinstance(value, bool) else str(value)


def setting_help(text: str, field: str) -> str:
    """``text (default: 8080; KAP_CDS_PORT)`` for an option that overrides a setting."""
    return f"{text} (default: {default_of(field)}; {env_name(field)})"


def settings_epilog(fields: list[str] | None = None) -> str:
    """The settings a command reads, one per line with its default."""
    names = fields if fields is not None else list(Settings.model_fields)
    width = max(len(env_name(n)) for n in names)
    lines = [f"  {env_name(n):<{width}}  default: {default_of(n)}" for n in names]
    return "settings (environment):\n" + "\n".join(lines)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the settings epilog's lines as written."""
