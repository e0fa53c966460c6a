"""Logging for ``kap-cds serve``: one JSON object per line by default (python-json-logger), or
plain text (``KAP_CDS_LOG_FORMAT=text``), on stderr, for our loggers and uvicorn's alike.

Handed to uvicorn as its ``log_config``, so every worker process applies it at start. Nothing
here runs on import or in tests: a library that configures logging fights its host.
"""

from __future__ import annotations

from typing import Any

from cds.config import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"


def log_config(settings: Settings) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dictionary for the configured format and level."""
    formatter: dict[str, Any]
    if settings.log_format == "json":
        formatter = {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": JSON_FIELDS,
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            "timestamp": False,
        }
    else:
        formatter = {"format": TEXT_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": settings.log_level},
        "loggers": {
            # uvicorn's own handlers are replaced by ours: one format for the whole process.
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True},
        },
    }
