"""Reading the files a command is given, with errors that name the file and what is wrong."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from cds.console.errors import CliError


def read_json(path: str | Path, what: str) -> Any:
    """The parsed JSON of ``path``; ``what`` says which argument it is (``--bundle``)."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise CliError(f"{what} {file}: file not found") from None
    except IsADirectoryError:
        raise CliError(f"{what} {file}: is a directory, not a JSON file") from None
    except OSError as exc:
        raise CliError(f"{what} {file}: cannot read ({exc.strerror})") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CliError(
            f"{what} {file}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


def read_resource(path: str | Path, what: str, resource_type: str) -> dict[str, Any]:
    """A FHIR resource of ``resource_type`` (``--order``: a MedicationRequest)."""
    value = read_json(path, what)
    found = value.get("resourceType") if isinstance(value, dict) else None
    if found != resource_type:
        raise CliError(f"{what} {path}: expected a {resource_type}, found {found or 'no resource'}")
    return value  # type: ignore[no-any-return]  # checked to be a dict above


def parse_time(value: str | None, what: str) -> datetime | None:
    """ISO 8601 with an offset (an evaluation time without one would be ambiguous)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(f"{what} {value!r}: not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise CliError(f"{what} {value!r}: give a UTC offset, e.g. {value}+00:00")
    return parsed
