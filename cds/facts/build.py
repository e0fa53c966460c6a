"""Build every fact for one evaluation: one registry of builders, run in order.

Builders are pure functions ``(FactContext) -> list[fact]``. The data-gap builder runs last
because the others record the resources that failed R4 validation while they read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cds.facts import (
    clinical,
    dose,
    dosing_day,
    gaps,
    history,
    labs,
    patient,
    procedures,
    quality,
    reproductive,
    review,
    vitals,
    weight,
)
from cds.facts.context import FactContext

Fact = dict[str, Any]
Builder = Callable[[FactContext], list[Fact]]

BUILDERS: tuple[tuple[str, Builder], ...] = (
    ("plan", patient.build_plan),
    ("patient", patient.build_patient),
    ("conditions", clinical.build_conditions),
    ("medications", clinical.build_medications),
    ("allergies", clinical.build_allergies),
    ("procedures", procedures.build),  # thyroid ablation etc.
    ("vitals", vitals.build),  # bp
    ("weight", weight.build),
    ("dose", dose.build),
    ("reproductive", reproductive.build),  # pregnancy, breastfeeding
    ("labs", labs.build),  # egfr, drug screen
    ("history", history.build),  # KAP sessions and courses
    ("dosing_day", dosing_day.build),  # dosing_session, intake, escort
    ("quality", quality.build),  # consent, rems, visits, depression score, LFTs
    ("review", review.build),  # long-term exposure review documented
    ("gaps", gaps.build_gaps),
)


def build_facts(ctx: FactContext) -> list[Fact]:
    facts: list[Fact] = []
    for _name, builder in BUILDERS:
        facts.extend(builder(ctx))
    return [{k: v for k, v in fact.items() if v is not None} for fact in facts]
