"""Body size, JSON depth and time limits, each answered with an OperationOutcome."""

from __future__ import annotations

import asyncio
import json
import timeit
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from hypothesis import given, settings
from hypothesis import strategies as st
from security_helpers import BASE, build_app, make_settings
from starlette.types import Message, Scope

from cds.security.json_depth import json_depth_exceeds
from cds.security.limits import BodyLimitMiddleware

LIMIT = 1000
DEPTH = 8


@pytest.fixture
def open_client() -> Iterator[TestClient]:
    """No trusted issuers: the limits alone are under test."""
    app = build_app(
        make_settings(max_body_bytes=LIMIT, max_json_depth=DEPTH, request_timeout_seconds=0.3)
    )
    with TestClient(app, base_url=BASE) as client:
        yield client


def outcome(response: Response, status: int, code: str, issue_type: str) -> str:
    assert response.status_code == status, response.text
    (issue,) = response.json()["issue"]
    assert issue["code"] == issue_type
    assert issue["details"]["coding"][0]["code"] == code
    detail: str = issue["details"]["text"]
    return detail


JSON = {"Content-Type": "application/json"}


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# -- body size ---------------------------------------------------------------------------------


def test_body_at_the_limit_reaches_the_app_intact(open_client: TestClient) -> None:
    body = json.dumps({"pad": "x" * (LIMIT - 11)}).encode()
    assert len(body) == LIMIT
    response = open_client.post("/cds-services/s", content=body, headers=JSON)
    assert response.status_code == 200
    assert response.json()["bytes"] == LIMIT  # the buffered body was replayed whole


def test_content_length_over_the_limit_is_413(open_client: TestClient) -> None:
    response = open_client.post("/cds-services/s", content=b"x" * (LIMIT + 1), headers=JSON)
    detail = outcome(response, 413, "CDS-1413", "too-costly")
    assert detail == f"Request body larger than {LIMIT} bytes"


def test_chunked_body_growing_over_the_limit_is_413(open_client: TestClient) -> None:
    chunks = iter([b"x" * 600, b"x" * 600, b"x" * 600])  # no Content-Length: chunked
    response = open_client.post("/cds-services/s", content=chunks, headers=JSON)
    outcome(response, 413, "CDS-1413", "too-costly")


def run_asgi(
    middleware: BodyLimitMiddleware, scope: Scope, messages: list[Message]
) -> tuple[list[Message], int]:
    """Drive a middleware by hand; returns what it sent and how many messages it read."""
    pending = list(messages)
    sent: list[Message] = []

    async def receive() -> Message:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(middleware(scope, receive, send))
    return sent, len(messages) - len(pending)


async def never_called(scope: Scope, receive: Any, send: Any) -> None:
    raise AssertionError("the app must not run")


def http_scope(headers: list[tuple[bytes, bytes]]) -> Scope:
    return {"type": "http", "method": "POST", "path": "/cds-services/s", "headers": headers}


def test_declared_oversize_is_refused_before_reading_the_body() -> None:
    middleware = BodyLimitMiddleware(never_called, max_body_bytes=LIMIT, max_json_depth=DEPTH)
    scope = http_scope([(b"content-length", b"10000000000")])
    sent, read = run_asgi(middleware, scope, [{"type": "http.request", "body": b"x"}])
    assert sent[0]["status"] == 413
    assert read == 0


def test_invalid_content_length_is_400() -> None:
    middleware = BodyLimitMiddleware(never_called, max_body_bytes=LIMIT, max_json_depth=DEPTH)
    sent, _ = run_asgi(middleware, http_scope([(b"content-length", b"-5")]), [])
    assert sent[0]["status"] == 400


def test_client_gone_mid_body_gets_no_answer() -> None:
    middleware = BodyLimitMiddleware(never_called, max_body_bytes=LIMIT, max_json_depth=DEPTH)
    sent, _ = run_asgi(
        middleware, http_scope([]), [{"type": "http.request", "body": b"x", "more_body": True}]
    )
    assert sent == []


# -- JSON depth ----------------------------------------------------------------------------------


def test_json_deeper_than_the_limit_is_400(open_client: TestClient) -> None:
    response = open_client.post(
        "/cds-services/s", content=nested(DEPTH + 1), headers={"Content-Type": "application/json"}
    )
    detail = outcome(response, 400, "CDS-1400", "invalid")
    assert detail == f"JSON nesting deeper than {DEPTH}"


def test_charset_parameter_is_accepted(open_client: TestClient) -> None:
    headers = {"Content-Type": "Application/JSON; charset=utf-8"}
    response = open_client.post("/cds-services/s", content=nested(DEPTH), headers=headers)
    assert response.status_code == 200


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/fhir+json"],
)
def test_bodies_not_declared_json_are_415_before_being_read(
    open_client: TestClient, content_type: str | None
) -> None:
    """A browser posts text/plain or a form cross-site without a CORS preflight."""
    headers = {"Content-Type": content_type} if content_type else {}
    response = open_client.post("/cds-services/s", content=nested(DEPTH + 1), headers=headers)
    detail = outcome(response, 415, "CDS-1415", "not-supported")
    assert detail == "Content-Type must be application/json"
    assert response.json()["issue"][0]["expression"] == ["Content-Type"]


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


# Strings full of the characters the scan must not be fooled by.
tricky_text = st.text(alphabet=st.sampled_from('ab[]{}"\\/:,\n\u00e9'), max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | tricky_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(tricky_text, children, max_size=4)
    ),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None, database=None)
@given(
    value=json_values,
    limit=st.integers(min_value=0, max_value=8),
    ensure_ascii=st.booleans(),
    indent=st.sampled_from([None, 1]),
)
def test_depth_scan_agrees_with_a_parser(
    value: Any, limit: int, ensure_ascii: bool, indent: int | None
) -> None:
    body = json.dumps(value, ensure_ascii=ensure_ascii, indent=indent).encode()
    assert json_depth_exceeds(body, limit) == (depth_of(json.loads(body)) > limit)


@pytest.mark.parametrize(
    ("body", "limit", "expected"),
    [
        (b'{"a": "[[[[[[[[[["}', 1, False),  # brackets in strings do not count
        (b'{"a": "\\"[[[[[[["}', 1, False),  # nor after an escaped quote
        (b'{"a": "\\\\", "b": [[[]]]}', 4, False),  # escaped backslash, then a real quote
        (b'{"a": "\\\\", "b": [[[]]]}', 3, True),
        (b"[" * 100_000, 64, True),  # unclosed: refused, the parser would recurse on it
        (nested(40_000), 64, True),  # long enough to take the linear path
        (b"[" + b"[]," * 40_000 + b"[]]", 64, False),  # wide, not deep, linear path
        (b"[" + b"[[[]]]," * 20_000 + b"[]]", 3, True),
        (b"", 0, False),
    ],
)
def test_depth_scan_edge_cases(body: bytes, limit: int, expected: bool) -> None:
    assert json_depth_exceeds(body, limit) is expected


def prefetch_like_body(target_bytes: int = 66_000) -> bytes:
    """A FHIR-shaped prefetch bundle: nested codings, narratives with escaped quotes."""
    entries: list[dict[str, Any]] = []
    n = 0
    while len(json.dumps(entries)) < target_bytes:
        n += 1
        entries.append(
            {
                "resource": {
                    "resourceType": "Observation",
                    "id": f"obs-{n}",
                    "status": "final",
                    "text": {
                        "status": "generated",
                        "div": f'<div xmlns="http://www.w3.org/1999/xhtml">Obs [{n}] {{x}}</div>',
                    },
                    "code": {
                        "coding": [
                            {
                                "system": "http://loinc.org",
                                "code": "8867-4",
                                "display": "Heart rate",
                            }
                        ]
                    },
                    "subject": {"reference": "Patient/p1"},
                    "effectiveDateTime": "2025-01-01T10:00:00Z",
                    "valueQuantity": {
                        "value": 60 + n % 40,
                        "unit": "/min",
                        "system": "http://unitsofmeasure.org",
                        "code": "/min",
                    },
                }
            }
        )
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
    return json.dumps({"hook": "order-sign", "prefetch": {"observations": bundle}}).encode()


def test_depth_scan_of_a_66_kb_prefetch_is_cheap() -> None:
    body = prefetch_like_body()
    assert 66_000 <= len(body) < 70_000
    assert not json_depth_exceeds(body, 64)
    # Best of several runs: other processes on a shared machine only ever make a run slower.
    best = min(timeit.repeat(lambda: json_depth_exceeds(body, 64), number=20, repeat=5)) / 20
    assert best < 0.0005, f"{best * 1e6:.0f} us"


# -- time limit ----------------------------------------------------------------------------------


def test_slow_request_is_503(open_client: TestClient) -> None:
    detail = outcome(open_client.get("/slow"), 503, "CDS-1503", "timeout")
    assert detail == "Request took longer than 0.3 s"


def test_fast_request_is_untouched(open_client: TestClient) -> None:
    assert open_client.get("/healthz").json() == {"status": "ok"}
