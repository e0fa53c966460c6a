"""Loopback servers for the CDS Hooks sandbox test: the sandbox's static files, and a small FHIR
R4 server for its patient (reads, ``GET`` searches and the sandbox's ``POST {Type}/_search``), both
with the CORS headers a browser needs, each in a daemon thread bound to 127.0.0.1."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

Json = dict[str, Any]

_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Dates of birth stay as recorded; everything else moves with the clinical timeline.
_FIXED = {"birthDate"}


def shifted(value: Any, delta: timedelta, key: str = "") -> Any:
    """A copy of FHIR JSON with every date and dateTime moved by ``delta`` (whole days for
    dates), so that an example recorded "yesterday" relative to its planned dose is yesterday
    relative to now."""
    if isinstance(value, dict):
        return {k: shifted(v, delta, k) for k, v in value.items()}
    if isinstance(value, list):
        return [shifted(v, delta, key) for v in value]
    if isinstance(value, str) and key not in _FIXED:
        if _DATETIME.match(value):
            moment = datetime.fromisoformat(value.replace("Z", "+00:00")) + delta
            return moment.isoformat()
        if _DATE.match(value):
            return (date.fromisoformat(value) + timedelta(days=delta.days)).isoformat()
    return value


@contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _Quiet:
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
        pass  # keep pytest's output for failures


class _StaticHandler(_Quiet, SimpleHTTPRequestHandler):
    pass


def static_server(directory: Path) -> ThreadingHTTPServer:
    return ThreadingHTTPServer(("127.0.0.1", 0), partial(_StaticHandler, directory=str(directory)))


class FhirStore:
    """One patient's resources; what was asked for is kept for the test to inspect."""

    def __init__(self, resources: list[Json]) -> None:
        self.by_type: dict[str, list[Json]] = {}
        for resource in resources:
            self.by_type.setdefault(resource["resourceType"], []).append(resource)
        self.requests: list[str] = []

    def read(self, resource_type: str, resource_id: str) -> Json | None:
        found = (r for r in self.by_type.get(resource_type, []) if r.get("id") == resource_id)
        return next(found, None)

    def search(self, resource_type: str, base: str) -> Json:
        entries = [
            {
                "fullUrl": f"{base}/{resource_type}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in self.by_type.get(resource_type, [])
        ]
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(entries),
            "entry": entries,
        }


class _FhirHandler(_Quiet, BaseHTTPRequestHandler):
    store: FhirStore

    def do_OPTIONS(self) -> None:  # noqa: N802 (stdlib name)
        self.send_response(204)
        self._cors()
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        self._answer(urlsplit(self.path).path)

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)  # the search parameters: one patient here, so all match
        self._answer(urlsplit(self.path).path.removesuffix("/_search"))

    def _answer(self, path: str) -> None:
        self.store.requests.append(f"{self.command} {path}")
        parts = [p for p in path.split("/") if p][1:]  # drop the "fhir" base segment
        base = f"http://{self.headers.get('Host')}/fhir"
        if parts == ["metadata"]:
            self._json(200, _capability())
        elif len(parts) == 1:
            self._json(200, self.store.search(parts[0], base))
        elif len(parts) == 2 and (found := self.store.read(parts[0], parts[1])) is not None:
            self._json(200, found)
        else:
            self._json(
                404,
                {
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "error", "code": "not-found"}],
                },
            )

    def _json(self, status: int, body: Json) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self._cors()
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _cors(self) -> None:
        self.send_header("Access-Control-Allow-Origin", self.headers.get("Origin") or "*")
        self.send_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
        self.send_header(
            "Access-Control-Allow-Headers",
            self.headers.get("Access-Control-Request-Headers") or "Authorization, Content-Type",
        )


def fhir_server(store: FhirStore) -> ThreadingHTTPServer:
    handler = type("FhirHandler", (_FhirHandler,), {"store": store})
    return ThreadingHTTPServer(("127.0.0.1", 0), handler)


def _capability() -> Json:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-01-01",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{"mode": "server"}],
    }
