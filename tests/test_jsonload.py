"""JSON bodies are parsed with the cyclic garbage collector paused, and only paused."""

from __future__ import annotations

import gc
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
