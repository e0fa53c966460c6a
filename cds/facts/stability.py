"""Post-dose clinical stability (KAP-DRV-003/004): documented as an assessment, or shown by the
vital signs of the monitoring period.

EHRs seldom record a yes/no "clinically stable" observation; what they record is the monitoring
itself. Stability counts as documented when

* the newest post-dose assessment in VS-POST-DOSE-STABLE (the local ``clinically-stable`` code,
  or the discharge-readiness assessment a site maps into that value set) answers yes, or
* there is no such assessment and the post-dose vital signs cover the monitoring period: a
  blood pressure taken in the last ``stability_vitals_window_minutes`` of the period or later
  (up to discharge), the newest of them below the hard-stop BP, and the newest post-dose SpO2,
  when one is charted, at or above ``stability_spo2_min_percent``.

An assessment answered "not stable" after the dose decides against discharge whatever the vitals
say: the clinician saw the patient.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cds.facts.context import FactContext
from cds.facts.fhir import Resource, display_time, observation_time
from cds.facts.labs import USABLE_STATUS, coded_in
from cds.facts.vitals import Reading, readings


@dataclass(frozen=True)
class Stability:
    documented: bool
    basis: str | None  # what showed it, in clinician words
    concern: str | None  # why it is not shown

    @property
    def display(self) -> str:
        return f"shown by {self.basis}" if self.documented else f"not shown: {self.concern}"


def assess(ctx: FactContext, first_dose: datetime, monitoring_end: datetime) -> Stability:
    answer = _newest_assessment(ctx, first_dose)
    if answer is not None:
        stable, at = answer
        when = display_time(at, ctx.tz)
        if stable:
            return Stability(True, f"stability assessment at {when}", None)
        return Stability(False, None, f"assessed as not yet stable at {when}")
    return _from_vitals(ctx, first_dose, monitoring_end)


def _newest_assessment(ctx: FactContext, first_dose: datetime) -> tuple[bool, datetime] | None:
    found: list[tuple[datetime, bool]] = []
    for observation in ctx.with_code("Observation", "VS-POST-DOSE-STABLE"):
        at = observation_time(observation, ctx.tz)
        if observation.get("status") not in USABLE_STATUS or at is None:
            continue
        # An assessment from before the dose says nothing about the post-dose state.
        if not first_dose <= at <= ctx.t0 or not ctx.valid(observation):
            continue
        answer = _yes_no(observation, ctx)
        if answer is not None:
            found.append((at, answer))
    if not found:
        return None
    at, answer = max(found, key=lambda f: f[0])
    return answer, at


def _yes_no(observation: Resource, ctx: FactContext) -> bool | None:
    value = observation.get("valueBoolean")
    if isinstance(value, bool):
        return value
    concept = observation.get("valueCodeableConcept")
    if coded_in(concept, ctx, "VS-ANSWER-YES"):
        return True
    if coded_in(concept, ctx, "VS-ANSWER-NO"):
        return False
    return None


def _from_vitals(ctx: FactContext, first_dose: datetime, monitoring_end: datetime) -> Stability:
    window = timedelta(minutes=ctx.policy.number("stability_vitals_window_minutes"))
    # Newest first, up to T0; a session and its monitoring lie within the day before discharge.
    post = [r for r in readings(ctx, lookback_days=1.0) if r.at > first_dose]
    if not post:
        return Stability(False, None, "no blood pressure after the dose")
    newest = post[0]
    if newest.at < monitoring_end - window:
        late = display_time(monitoring_end - window, ctx.tz)
        last = display_time(newest.at, ctx.tz)
        return Stability(False, None, f"no blood pressure from {late} on (last at {last})")
    high = _high_bp(newest, ctx)
    if high:
        return Stability(False, None, high)
    low = _low_spo2(ctx, first_dose)
    if low:
        return Stability(False, None, low)
    bp = f"{_num(newest.sbp)}/{_num(newest.dbp)} at {display_time(newest.at, ctx.tz)}"
    return Stability(True, f"post-dose vital signs, last blood pressure {bp}", None)


def _high_bp(reading: Reading, ctx: FactContext) -> str | None:
    systolic = ctx.policy.number("bp_hard_stop_systolic")
    diastolic = ctx.policy.number("bp_hard_stop_diastolic")
    if reading.sbp < systolic and reading.dbp < diastolic:
        return None
    return (
        f"the last blood pressure ({_num(reading.sbp)}/{_num(reading.dbp)} at "
        f"{display_time(reading.at, ctx.tz)}) is at or above {_num(systolic)}/{_num(diastolic)}"
    )


def _low_spo2(ctx: FactContext, first_dose: datetime) -> str | None:
    newest: tuple[datetime, float] | None = None
    for observation in ctx.with_code("Observation", "VS-SPO2"):
        at = observation_time(observation, ctx.tz)
        value = _percent(observation.get("valueQuantity"))
        if observation.get("status") not in USABLE_STATUS or at is None or value is None:
            continue
        later = newest is None or at > newest[0]
        if first_dose < at <= ctx.t0 and later and ctx.valid(observation):
            newest = (at, value)
    minimum = ctx.policy.number("stability_spo2_min_percent")
    if newest is None or newest[1] >= minimum:
        return None
    at, value = newest
    when = display_time(at, ctx.tz)
    return f"the last SpO2 ({_num(value)} % at {when}) is below {_num(minimum)} %"


def _percent(quantity: Any) -> float | None:
    if not isinstance(quantity, dict) or not isinstance(quantity.get("value"), int | float):
        return None
    unit = str(quantity.get("code") or quantity.get("unit") or "%").strip()
    return float(quantity["value"]) if unit == "%" else None


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"
