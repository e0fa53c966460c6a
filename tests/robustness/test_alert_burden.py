"""Alert burden as a figure (issue 13): cards per order on the 33 real charts.

Each real bundle (Synthea, Epic, MEDITECH, NHS: people never prepared for KAP) gets an IV ketamine
35 mg order signed for a dose 7 days ahead, prefetched under the service's own prefetch keys, and
posted to the real service. A week before the dose the preparation gaps are a to-do list: one
readiness card (warning), the fasting instruction, and the contraindications of the chart.

Before the readiness checklist (commit af8d2fe): median 8 cards per order, max 9, min 7
(7: 8 charts, 8: 17, 9: 8), two of them critical on every chart (consent, weight).
Run with -s for the distribution.
"""

from __future__ import annotations

import copy
import statistics
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import orjson
from conftest import ClientFactory, Clock
from robust_support import EXAMPLES, load_json
from shared_data import third_party_bundles

from cds.ruleset.cases import Case, build_request

NOW = datetime.fromisoformat("2026-11-20T15:00:00+00:00")
WEEK_AHEAD = NOW + timedelta(days=7)
ORDER = load_json(EXAMPLES / "orders" / "ketamine-iv.json")  # 35 mg IV over 40 min


def order_for(patient_id: str, dose_at: datetime) -> dict[str, Any]:
    order = copy.deepcopy(ORDER)
    order["subject"] = {"reference": f"Patient/{patient_id}"}
    order["authoredOn"] = NOW.isoformat()
    order["dosageInstruction"][0]["timing"]["event"] = [dose_at.isoformat()]
    return order


def chart_request(resources: list[dict[str, Any]] | None, dose_at: datetime) -> dict[str, Any]:
    """order-sign with every prefetch key of the service (the real chart, or the base patient)."""
    if resources is None:  # the prepared, eligible patient of the fixtures
        case = Case(description="prepared", order=order_for("pat-eligible", dose_at))
    else:
        patient_id = next(r["id"] for r in resources if r["resourceType"] == "Patient")
        case = Case(
            description="chart",
            patient=None,
            order=order_for(patient_id, dose_at),
            resources=resources,
        )
    return build_request(case, EXAMPLES, "burden")


def chart_resources(path: Any) -> list[dict[str, Any]]:
    bundle = load_json(path)
    return [e["resource"] for e in bundle.get("entry", []) if isinstance(e.get("resource"), dict)]


def is_contraindication(card: dict[str, Any]) -> bool:
    rule = (card.get("extension") or {}).get("org.kapcds.rule") or {}
    return rule.get("family") == "contraindication"


def post(client: Any, request: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.post(
        "/cds-services/kap-order-sign",
        content=orjson.dumps(request),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text[:300]
    cards: list[dict[str, Any]] = response.json()["cards"]
    return cards


def distribution(counts: list[int]) -> str:
    histogram = ", ".join(f"{n} cards: {k}" for n, k in sorted(Counter(counts).items()))
    return f"median {statistics.median(counts)}, max {max(counts)}, min {min(counts)} ({histogram})"


def test_a_week_ahead_real_charts_get_few_cards_and_none_critical_but_contraindications(
    make_client: ClientFactory,
) -> None:
    bundles = third_party_bundles()
    clock = Clock()
    clock.now = NOW
    counts: list[int] = []
    problems: list[str] = []
    with make_client(clock=clock) as client:
        for path in bundles:
            cards = post(client, chart_request(chart_resources(path), WEEK_AHEAD))
            counts.append(len(cards))
            others = [c for c in cards if not is_contraindication(c)]
            if len(others) > 2:
                problems.append(f"{path.name}: {len(others)} cards besides contraindications")
            problems += [
                f"{path.name}: critical {c['summary']!r}"
                for c in others
                if c["indicator"] == "critical"
            ]
    print(
        f"\ncards per order, {len(counts)} real charts, dose 7 days ahead: {distribution(counts)}"
    )
    assert len(counts) == 33
    assert not problems, "\n".join(problems)
    assert statistics.median(counts) <= 3


def test_the_same_gaps_are_critical_when_the_dose_is_today(make_client: ClientFactory) -> None:
    """The other side of the readiness window: a dose 2 h away (and 25 h away) on one chart."""
    path = third_party_bundles()[0]
    clock = Clock()
    clock.now = NOW
    with make_client(clock=clock) as client:
        soon = post(client, chart_request(chart_resources(path), NOW + timedelta(hours=2)))
        later = post(client, chart_request(chart_resources(path), NOW + timedelta(hours=25)))
    [ready_soon] = [c for c in soon if c["source"]["topic"]["code"] == "readiness"]
    [ready_later] = [c for c in later if c["source"]["topic"]["code"] == "readiness"]
    assert ready_soon["indicator"] == "critical" and ready_later["indicator"] == "warning"
    assert "today at 17:00" in ready_soon["detail"]


def test_a_prepared_eligible_patient_gets_only_the_fasting_instruction(
    make_client: ClientFactory,
) -> None:
    clock = Clock()
    clock.now = NOW
    with make_client(clock=clock) as client:
        cards = post(client, chart_request(None, WEEK_AHEAD))
    assert [(c["source"]["topic"]["code"], c["indicator"]) for c in cards] == [
        ("KAP-FAST-001", "info")
    ]
    # A week ahead the stop time is still ahead: shown, beside the relative instruction.
    assert "nothing to eat for 4 h before the dose" in cards[0]["summary"]
    assert "no food after 27 Nov 2026 11:00 UTC" in cards[0]["detail"]
