"""Numbers of any magnitude in the clinical values: evaluated (or refused with a 400), never a 500.

The rules engine's JSON parser refuses ``1e16``-style numbers, and a refused fact used to crash
the process or answer 500 (cds/engine/durable.py, quirk 9). Each value is written into the JSON
text as is, the way an EHR would send it.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from robust_support import EXAMPLES, load_json

ELIGIBLE = load_json(EXAMPLES / "requests" / "eligible-patient-ketamine-iv.json")
MARKER = 987654.25  # replaced by the raw number text after json.dumps
RAW_NUMBERS = [
    "1e16",
    "1E16",
    "1e+20",
    "1e308",
    "-1e308",
    "1.7976931348623157e308",
    "5e-324",
    "1e-320",
    "-0",
    "-0.0",
    "123456789012345678901234567890",
    "18446744073709551616",
    "99999999999999",
]


def _order(request: dict[str, Any]) -> dict[str, Any]:
    order: dict[str, Any] = request["context"]["draftOrders"]["entry"][0]["resource"]
    return order


def _observation(request: dict[str, Any], obs_id: str) -> dict[str, Any]:
    for entry in request["prefetch"]["observations"]["entry"]:
        if entry["resource"]["id"] == obs_id:
            resource: dict[str, Any] = entry["resource"]
            return resource
    raise KeyError(obs_id)


def _place(where: str, request: dict[str, Any]) -> None:
    if where == "systolic":
        _observation(request, "bp-recent")["component"][0]["valueQuantity"]["value"] = MARKER
    elif where == "weight":
        _observation(request, "weight-recent")["valueQuantity"]["value"] = MARKER
    elif where == "dose":
        _order(request)["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = MARKER
    elif where == "duration":
        _order(request)["dosageInstruction"][0]["timing"]["repeat"]["duration"] = MARKER


def _body(where: str, raw: str) -> str:
    request = copy.deepcopy(ELIGIBLE)
    _place(where, request)
    text = json.dumps(request)
    assert text.count(str(MARKER)) == 1
    return text.replace(str(MARKER), raw)


def _post(client: TestClient, body: str) -> Any:
    return client.post(
        "/cds-services/kap-order-sign", content=body, headers={"Content-Type": "application/json"}
    )


@pytest.mark.parametrize("where", ["systolic", "weight", "dose", "duration"])
def test_every_magnitude_is_answered_with_cards_or_a_400(client: TestClient, where: str) -> None:
    for raw in RAW_NUMBERS:
        response = _post(client, _body(where, raw))
        assert response.status_code in (200, 400), (where, raw, response.text)
        if response.status_code == 200:
            for card in response.json()["cards"]:
                assert len(card["summary"]) < 140, (where, raw, card["summary"])
    assert client.get("/healthz").status_code == 200  # the process survived every one


@pytest.mark.parametrize("raw", ["1e16", "1e308", "123456789012345678901234567890"])
def test_an_absurd_blood_pressure_is_evaluated_as_above_the_hard_stop(
    client: TestClient, raw: str
) -> None:
    response = _post(client, _body("systolic", raw))
    assert response.status_code == 200
    summaries = [card["summary"] for card in response.json()["cards"]]
    assert any(s.startswith("BP ") and "hard-stop" in s for s in summaries), summaries
    assert not any(len(s) >= 140 for s in summaries)


def test_an_absurd_weight_is_called_implausible(client: TestClient) -> None:
    response = _post(client, _body("weight", "1e16"))
    assert response.status_code == 200
    summaries = [card["summary"] for card in response.json()["cards"]]
    assert any("1e+16 kg looks implausible" in s for s in summaries), summaries
