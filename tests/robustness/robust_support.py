"""Helpers for the robustness suite: settings, response checks, a loopback FHIR server.

Kept free of fixtures so every test module (and the soak's load generator) can import it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from pydantic import ValidationError
from shared_data import third_party_bundles_or_empty

from cds.config import Settings
from cds.hooks.cards import CardsResponse, fired_by_rule

Json = dict[str, Any]

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "fhir_examples"
THIRD_PARTY_BUNDLES = third_party_bundles_or_empty()

# `make fuzz` sets this (2000): the long runs use it, the normal run uses small fixed numbers.
FUZZ_EXAMPLES = int(os.environ.get("KAP_CDS_FUZZ_EXAMPLES") or 0)
CLEAN_ERRORS = frozenset({400, 412, 413})
INDICATORS = frozenset({"info", "warning", "critical"})


def fuzz_examples(normal: int) -> int:
    """``normal`` in the everyday run, ``KAP_CDS_FUZZ_EXAMPLES`` under ``make fuzz``."""
    return FUZZ_EXAMPLES or normal


def isolated_settings(state_dir: Path, **overrides: Any) -> Settings:
    """Settings that ignore the developer's environment, with the audit store in state_dir."""
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{state_dir / 'audit.sqlite3'}",
        "spool_dir": state_dir / "spool",
        **overrides,
    }
    return Settings(_env_file=None, **values)


def load_json(path: Path) -> Json:
    data: Json = json.loads(path.read_text(encoding="utf-8"))
    return data


# --- response checks -----------------------------------------------------------------------


def card_problems(card: Any, where: str = "card") -> list[str]:
    """What is wrong with one card against the card contract (docs/contracts.md "Cards");
    empty when fine."""
    if not isinstance(card, dict):
        return [f"{where} is not an object"]
    problems: list[str] = []
    summary = card.get("summary")
    if not isinstance(summary, str) or not 0 < len(summary) < 140:
        problems.append(f"{where}.summary must be 1..139 characters, got {summary!r:.160}")
    if card.get("indicator") not in INDICATORS:
        problems.append(f"{where}.indicator {card.get('indicator')!r} not in {sorted(INDICATORS)}")
    source = card.get("source")
    if not isinstance(source, dict) or source.get("label") != "KAP Safety Rules":
        problems.append(f"{where}.source.label must be 'KAP Safety Rules', got {source!r:.160}")
    elif not isinstance(source.get("topic"), dict) or not source["topic"].get("code"):
        problems.append(f"{where}.source.topic must name the rule id or checklist")
    if card.get("indicator") in ("warning", "critical"):
        reasons = card.get("overrideReasons")
        if not reasons or not all(isinstance(r, dict) and r.get("display") for r in reasons):
            problems.append(f"{where} ({card.get('indicator')}) needs overrideReasons with display")
    if card.get("suggestions") and not card.get("selectionBehavior"):
        problems.append(f"{where} has suggestions but no selectionBehavior")
    problems += _rule_extension_problems(card, where)
    return problems


def _rule_extension_problems(card: dict[str, Any], where: str) -> list[str]:
    """A single-rule card names its rule; a consolidated card lists each rule (DESIGN.md)."""
    extension = card.get("extension") or {}
    entries = extension.get("org.kapcds.rules")
    if entries is None:
        rule = extension.get("org.kapcds.rule") or {}
        if not all(rule.get(k) for k in ("id", "version", "family", "ruleset")):
            return [f"{where}.extension['org.kapcds.rule'] incomplete: {rule!r:.160}"]
        return []
    keys = ("id", "version", "family", "variant", "indicator", "ruleset")
    if not entries or not all(all(e.get(k) for k in keys) for e in entries):
        return [f"{where}.extension['org.kapcds.rules'] incomplete: {entries!r:.160}"]
    highest = max(entries, key=lambda e: ["info", "warning", "critical"].index(e["indicator"]))
    if highest["indicator"] != card.get("indicator"):
        return [f"{where}.indicator is not the highest of its rules' indicators"]
    return []


def cards_problems(body: Any) -> list[str]:
    """Problems with a 200 body: the response model plus the per-card contract."""
    if not isinstance(body, dict) or not isinstance(body.get("cards"), list):
        return [f"200 body is not {{'cards': [...]}}: {str(body)[:200]}"]
    problems: list[str] = []
    try:
        CardsResponse.model_validate(body)
    except ValidationError as exc:
        problems.append(f"CardsResponse invalid: {exc.errors(include_input=False)[:3]}")
    uuids = [c.get("uuid") for c in body["cards"] if isinstance(c, dict)]
    if len(set(uuids)) != len(uuids):
        problems.append("card uuids are not unique")
    for i, card in enumerate(body["cards"]):
        problems += card_problems(card, f"cards[{i}]")
    return problems


def outcome_problems(body: Any) -> list[str]:
    """Problems with an error body, which must be an OperationOutcome with one coded issue."""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return [f"error body is not an OperationOutcome: {str(body)[:200]}"]
    issues = body.get("issue")
    if not isinstance(issues, list) or not issues:
        return ["OperationOutcome has no issue"]
    details = issues[0].get("details") or {}
    if not (details.get("coding") and details.get("text")):
        return [f"OperationOutcome issue lacks coded details: {issues[0]!r:.200}"]
    return []


def response_problems(
    status: int, content: bytes, allowed: frozenset[int] = CLEAN_ERRORS
) -> list[str]:
    """A service answer is a 200 with valid cards or an allowed clean error; nothing else."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return [f"HTTP {status} body is not JSON: {content[:200]!r}"]
    if status == 200:
        return cards_problems(body)
    if status in allowed:
        return outcome_problems(body)
    return [f"unexpected HTTP {status}: {content[:300]!r}"]


def fired_rules(body: Json) -> dict[str, str]:
    """rule id -> indicator of each card (the strongest when a rule gives several cards)."""
    return fired_by_rule(body.get("cards", []))


# --- a loopback FHIR server ------------------------------------------------------------------


@dataclass
class Reply:
    """One answer of the fake EHR: status, headers, body; ``delay`` seconds before answering;
    ``stream`` yields the body in chunks (no Content-Length) instead of ``body``."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    stream: Callable[[], Iterator[bytes]] | None = None


def fhir_json(value: Json, status: int = 200) -> Reply:
    return Reply(status, orjson.dumps(value), {"Content-Type": "application/fhir+json"})


Route = Callable[[str, dict[str, list[str]]], Reply]  # (path under the base, query) -> reply


class _Handler(BaseHTTPRequestHandler):
    server: _FhirHttpServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        parts = urlsplit(self.path)
        self.server.hits.append(self.path)
        path = parts.path.removeprefix("/fhir/").removeprefix("/fhir")
        try:
            reply = self.server.route(path, parse_qs(parts.query))
        except Exception as exc:  # a bug in a test route: answer 599 so the test notices
            reply = Reply(599, repr(exc).encode())
        if reply.delay and self.server.released.wait(reply.delay):
            return  # the test is over: drop the connection
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._send(reply)  # the client may have given up (timeouts, size caps): expected

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.stream is None:
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in reply.stream():
            self.wfile.write(f"{len(chunk):X}\r\n".encode() + chunk + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class _FhirHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # The fallback opens one connection per prefetch key at once (12); with the default backlog
    # of 5 the kernel drops SYNs and the client retries after 1 s, which looks like a slow EHR.
    request_queue_size = 64

    def __init__(self, route: Route) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.route = route
        self.hits: list[str] = []
        self.released = threading.Event()


@dataclass
class FhirServer:
    url: str  # the base, e.g. http://127.0.0.1:PORT/fhir
    hits: list[str]
    server: _FhirHttpServer

    def set_route(self, route: Route) -> None:
        self.server.route = route


@contextmanager
def fhir_server(route: Route) -> Iterator[FhirServer]:
    """A FHIR server on 127.0.0.1 in a thread, answering GETs under ``/fhir`` with ``route``."""
    server = _FhirHttpServer(route)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        port = server.server_address[1]
        yield FhirServer(f"http://127.0.0.1:{port}/fhir", server.hits, server)
    finally:
        server.released.set()  # wake handlers sleeping in a "slow" reply
        server.shutdown()
        server.server_close()


def searchset(resources: list[Json], next_url: str | None = None) -> Json:
    bundle: Json = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r} for r in resources],
    }
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


def resources_route(resources: list[Json], patient_id: str, max_pages: int) -> Route:
    """Serves ``Type/{id}`` reads and ``Type?patient={id}`` searches from ``resources``, with
    ``Bundle.link[next]`` paging (at most ``max_pages`` pages, at least 2 when there is more than
    one page's worth)."""
    by_type: dict[str, list[Json]] = {}
    for resource in resources:
        by_type.setdefault(resource["resourceType"], []).append(resource)

    def route(path: str, query: dict[str, list[str]]) -> Reply:
        resource_type, _, resource_id = path.partition("/")
        if resource_id:
            found = [r for r in by_type.get(resource_type, []) if r.get("id") == resource_id]
            return fhir_json(found[0]) if found else fhir_json(_not_found(), 404)
        if query.get("patient") != [patient_id]:
            return fhir_json(searchset([]))
        matches = by_type.get(resource_type, [])
        size = max(25, math.ceil(len(matches) / max_pages))
        page = int(query.get("_page", ["0"])[0])
        chunk = matches[page * size : (page + 1) * size]
        more = (page + 1) * size < len(matches)
        next_url = f"{resource_type}?patient={patient_id}&_page={page + 1}" if more else None
        return fhir_json(searchset(copy.deepcopy(chunk), next_url))

    return route


def _not_found() -> Json:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "not-found"}],
    }


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started
