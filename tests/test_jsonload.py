"""JSON bodies are parsed with the cyclic garbage collector paused, and only paused."""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any
from unittest import mock

import orjson
import pytest

from cds import jsonload


def test_parses_like_orjson_and_resumes_the_collector() -> None:
    assert gc.isenabled()
    assert jsonload.loads(b'{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}
    assert gc.isenabled()


def test_the_collector_is_off_during_the_parse_only() -> None:
    seen: list[bool] = []
    real_loads = orjson.loads

    def spy(body: bytes) -> object:
        seen.append(gc.isenabled())
        return real_loads(body)

    with mock.patch.object(jsonload.orjson, "loads", spy):
        jsonload.loads(b"{}")
    assert seen == [False] and gc.isenabled()


def test_invalid_json_raises_and_resumes_the_collector() -> None:
    with pytest.raises(orjson.JSONDecodeError):
        jsonload.loads(b'{"a": ')
    assert gc.isenabled()


def test_a_collector_disabled_by_someone_else_stays_disabled() -> None:
    gc.disable()
    try:
        jsonload.loads(b"[]")
        assert not gc.isenabled()
    finally:
        gc.enable()


# ---- bodies above LEAN_ABOVE_BYTES: the standard library's parser, orjson's rules -----------


def _large(fragment: bytes) -> bytes:
    """``fragment`` inside a body just above the threshold."""
    pad = b"x" * (jsonload.LEAN_ABOVE_BYTES + 10)
    return b'{"pad": "' + pad + b'", "v": ' + fragment + b"}"


def test_a_large_body_parses_to_what_orjson_gives() -> None:
    body = _large(
        b'[1, -2.5, 1e3, true, null, "caf\\u00e9 \\ud83d\\ude00", 18446744073709551615,'
        b' {"a": 1, "a": 2}]'
    )
    assert jsonload.loads(body) == orjson.loads(body)
    assert gc.isenabled()


@pytest.mark.parametrize(
    "fragment",
    [b"NaN", b"-Infinity", b"1e400", b'"\\ud800 alone"', b"[1,]", b'"\xff"'],
    ids=["nan", "infinity", "overflow", "lone-surrogate", "trailing-comma", "not-utf8"],
)
def test_a_large_body_refuses_what_orjson_refuses(fragment: bytes) -> None:
    body = _large(fragment)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)
    with pytest.raises(orjson.JSONDecodeError):
        jsonload.loads(body)
    assert gc.isenabled()


def test_a_large_body_needs_far_less_memory_than_orjson() -> None:
    entry = (
        b'{"resource": {"resourceType": "Observation", "id": "o", "valueQuantity": {"value": 1}}}'
    )
    body = b'{"entry": [' + b",".join([entry] * 30_000) + b"]}"
    assert len(body) > jsonload.LEAN_ABOVE_BYTES

    def peak(parse: Any) -> int:
        tracemalloc.start()
        try:
            parse(body)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    assert peak(jsonload.loads) < peak(orjson.loads) / 2
