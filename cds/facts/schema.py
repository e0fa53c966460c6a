"""The fact types rules may match on: the contract between the fact builders and the rule files.

A rule file that names an unknown fact type or field is rejected at load, so a typo cannot
become a rule that silently never fires. Field kinds: ``number``, ``string``, ``bool``,
``valueset`` (a value-set id; the loader checks the id exists) and ``enum`` (listed values).

Conventions: ``*_days_ago`` / ``*_hours_ago`` are measured back from T0 (positive = in the past);
``*_display`` strings are for card texts only; ``ref`` is the source resource ("Condition/12").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["number", "string", "bool", "valueset", "enum"]


@dataclass(frozen=True)
class FieldSpec:
    kind: Kind
    doc: str
    values: tuple[str, ...] = ()  # for enum
    sample: str = ""  # longest plausible rendering, used to check summary length at load


@dataclass(frozen=True)
class FactType:
    name: str
    doc: str
    fields: dict[str, FieldSpec] = field(default_factory=dict)


def _n(doc: str, sample: str = "9999.9") -> FieldSpec:
    return FieldSpec("number", doc, sample=sample)


def _s(doc: str, sample: str = "x" * 24) -> FieldSpec:
    return FieldSpec("string", doc, sample=sample)


def _b(doc: str) -> FieldSpec:
    return FieldSpec("bool", doc, sample="false")


def _e(doc: str, *values: str) -> FieldSpec:
    return FieldSpec("enum", doc, values=values, sample=max(values, key=len))


def _vs(doc: str) -> FieldSpec:
    return FieldSpec("valueset", doc, sample="VS-XXXXXXXXXXXXXXXXXXXX")


DATE = "22 Sep 2026"
DATETIME = "22 Sep 2026 23:59 AKDT"  # the longest zone abbreviations have four letters
REF = _s("source resource, e.g. Observation/abc", sample="Observation/" + "x" * 20)

DRUGS = ("ketamine", "esketamine")
ROUTES = ("iv", "im", "sublingual", "buccal", "nasal", "oral", "unknown")
PHASES = ("order", "book", "session", "discharge", "view")

_TYPES = [
    FactType(
        "plan",
        "The KAP dose being ordered, booked, started, ended or (patient-view) most recently "
        "planned. Exactly one per evaluation of a KAP request.",
        {
            "phase": _e(
                "order (order-select/sign), book, session (encounter-start), "
                "discharge (encounter-discharge), view (patient-view)",
                *PHASES,
            ),
            "drug": _e("ketamine (racemic, any route) or esketamine", *DRUGS),
            "route": _e("route of administration", *ROUTES),
            "at_display": _s("planned dose time (local)", sample=DATETIME),
            "order_ref": REF,
            "at_home": _b(
                "self-administered at home: the local at-home flag, category community, a "
                "patient instruction to take it at home, or an outpatient order the patient "
                "administers (a dispensed quantity alone is not home use)"
            ),
            "home_evidence": _s("what in the order says it is taken at home", sample="x" * 60),
            "indication_mdsi": _b("reasonCode is MDD with suicidal ideation (VS-MDD-SI)"),
            "age_years": _n("patient age in years at T0", sample="120"),
        },
    ),
    FactType(
        "patient",
        "Demographics at T0.",
        {
            "age_years": _n("age in whole years at T0", sample="120"),
            "sex": _e(
                "sex for clinical use (falls back to administrative gender)",
                "female",
                "male",
                "other",
                "unknown",
            ),
            "reproductive_potential": _b(
                "female, within the policy age band and no documented permanent infertility"
            ),
            "ref": REF,
        },
    ),
    FactType(
        "dose",
        "The dose of the KAP order (or of today's administrations at session/discharge).",
        {
            "computable": _b("a mg dose could be computed"),
            "problem": _s(
                "why the dose is not computable (missing route, mL without "
                "concentration, unit not convertible, as directed)",
                sample="x" * 60,
            ),
            "mg": _n("total mg per session (supplemental doses summed)"),
            "mg_per_kg": _n("mg per kg of the newest usable weight", sample="99.99"),
            "weight_based": _b("the order itself is written in mg/kg"),
            "rate_mg_per_kg_min": _n("infusion rate in mg/kg/min", sample="99.999"),
            "duration_min": _n("infusion duration in minutes", sample="9999"),
            "has_duration": _b("an infusion duration or rate is given"),
            "devices": _n("esketamine: number of 28 mg devices", sample="99"),
        },
    ),
    FactType(
        "condition",
        "One Condition matching one value set (a Condition in two value sets gives two facts). "
        "Refuted and entered-in-error Conditions produce no fact.",
        {
            "vs": _vs("value set the code matched"),
            "active": _b("clinicalStatus active, recurrence or relapse"),
            "clinical_status": _s("clinicalStatus code (absent = active)", sample="recurrence"),
            "possible": _b("verificationStatus unconfirmed, provisional or differential"),
            "onset_days_ago": _n("days since onset (or recordedDate when no onset)"),
            "abated": _b("has an abatement date or boolean"),
            "code": _s("the matching code", sample="F31.81"),
            "display": _s("display of the diagnosis", sample="x" * 50),
            "date_display": _s("onset or recorded date", sample=DATE),
            "ref": REF,
            "mi": _b("a myocardial infarction (VS-MI), whatever its age"),
            "uncontrolled_coded": _b(
                "the local qualifier urn:kap-cds:condition-qualifier#uncontrolled is coded "
                "(not only the word in a title)"
            ),
            "normal_bp_since": _b(
                "hypertension titled uncontrolled: BP readings since it was recorded (two or "
                "more days, the newest within the BP look-back) are all within the warning limits"
            ),
            "mi_acute_by_code": _b(
                "coded ICD-10-CM I21/I22, which by definition means within 4 weeks of onset"
            ),
            "uncontrolled": _b(
                "qualified uncontrolled: local code urn:kap-cds:condition-qualifier"
                "#uncontrolled in code or severity, or the word in its text"
            ),
            "after_kap_start": _b(
                "onset (or recordedDate) is after the patient's first recorded KAP dose"
            ),
        },
    ),
    FactType(
        "medication",
        "One active, on-hold or recent medication matching one value set; stopped, completed, "
        "cancelled, entered-in-error and not-taken records produce no fact.",
        {
            "vs": _vs("value set the medication matched"),
            "active": _b(
                "active MedicationRequest, or active/intended MedicationStatement "
                "not ended before T0"
            ),
            "on_hold": _b("MedicationRequest status on-hold"),
            "source": _e(
                "resource type",
                "MedicationRequest",
                "MedicationStatement",
                "MedicationAdministration",
            ),
            "route": _e("route when recorded", *ROUTES),
            "minutes_before": _n("administrations: minutes between the dose and T0"),
            "washout": _b(
                "an MAOI no longer taken whose effect has not worn off: last taken within "
                "maoi_washout_days (irreversible MAOIs) or methylene_blue_days"
            ),
            "last_taken_display": _s("washout: date last taken", sample=DATE),
            "days_since_last_taken": _n("washout: calendar days since last taken", sample="99"),
            "name": _s("medication name", sample="x" * 50),
            "ref": REF,
            "daily_mg": _n(
                "prescribed maximum mg per day, when the dose (mg) and timing are structured",
                sample="9999.9",
            ),
            "diazepam_eq_mg_day": _n(
                "benzodiazepines: daily_mg as diazepam-equivalent mg/day", sample="9999.9"
            ),
        },
    ),
    FactType(
        "procedure",
        "One completed Procedure matching one value set (e.g. VS-THYROID-ABLATION). A copy "
        "with after_onset_of is added for each condition value set whose active Conditions "
        "all began on or before the procedure.",
        {
            "vs": _vs("value set the procedure code matched"),
            "days_ago": _n("days before T0 (performed date; absent when undated)", sample="99999"),
            "after_onset_of": _vs(
                "a condition value set: the procedure was done on or after the "
                "onset of every active Condition in it"
            ),
            "date_display": _s("when performed", sample=DATE),
            "ref": REF,
        },
    ),
    FactType(
        "allergy",
        "A usable AllergyIntolerance (active or no status; not refuted/entered-in-error).",
        {
            "vs": _vs("value set the substance matched"),
            "display": _s("substance", sample="x" * 40),
            "criticality": _s("low / high / unable-to-assess", sample="unable-to-assess"),
            "ref": REF,
        },
    ),
    FactType(
        "bp",
        "The newest usable blood pressure (panel, or systolic and diastolic within 5 min).",
        {
            "sbp": _n("systolic mmHg", sample="300"),
            "dbp": _n("diastolic mmHg", sample="200"),
            "days_ago": _n("days before T0", sample="999.9"),
            "same_day": _b("taken on T0's local calendar day, before T0"),
            "date_display": _s("when taken", sample=DATETIME),
            "ref": REF,
        },
    ),
    FactType(
        "weight",
        "The newest usable body weight, normalized to kg.",
        {
            "kg": _n("weight in kg", sample="999.9"),
            "days_ago": _n("days before T0", sample="9999"),
            "unit_inferred": _b("unit was missing or free text (e.g. 'lbs') and was inferred"),
            "original": _s("value and unit as recorded", sample="999.9 [lb_av]"),
            "change_pct": _n(
                "percent change vs the previous usable weight within the "
                "policy window (absent when none)",
                sample="999.9",
            ),
            "date_display": _s("when measured", sample=DATE),
            "ref": REF,
        },
    ),
    FactType(
        "pregnancy",
        "The newest usable pregnancy evidence within the policy look-back (status "
        "observation, hCG, pregnancy Condition); newer evidence supersedes older.",
        {
            "status": _e("what the newest evidence says", "pregnant", "not-pregnant", "unknown"),
            "days_ago": _n("days before T0", sample="999"),
            "stale_condition": _b("an active pregnancy Condition older than the look-back"),
            "source_display": _s("what the evidence is", sample="x" * 40),
            "later_answer_display": _s(
                "a sentence on a later status answer that does not refute a positive test, or "
                "empty",
                sample="x" * 90,
            ),
            "date_display": _s("when", sample=DATE),
            "ref": REF,
        },
    ),
    FactType(
        "breastfeeding",
        "The newest usable breastfeeding evidence within 12 months.",
        {
            "status": _e("newest answer", "yes", "no"),
            "days_ago": _n("days before T0", sample="999"),
            "date_display": _s("when", sample=DATE),
            "ref": REF,
        },
    ),
    FactType(
        "lab",
        "The newest usable lab result of a kind (eGFR, LFT, urine drug screen, depression score).",
        {
            "kind": _e("which lab", "egfr", "lft", "drug-screen", "depression-score"),
            "value": _n("numeric value when numeric", sample="999.9"),
            "positive": _b("qualitative positive (drug screen)"),
            "prescribable_vs": _vs(
                "drug screen: medication class whose prescription can "
                "explain the positive (absent: none can, e.g. cocaine)"
            ),
            "days_ago": _n("days before T0", sample="999"),
            "since_course_start": _b("taken on or after the current course's first session"),
            "course_day": _n(
                "days from the current course's first session to the result "
                "(absent when before it)",
                sample="999",
            ),
            "display": _s("what it is", sample="x" * 40),
            "date_display": _s("when", sample=DATE),
            "ref": REF,
        },
    ),
    FactType(
        "history",
        "The patient's KAP dosing history before T0, aggregated into sessions (doses within "
        "the policy aggregation window are one session) and courses (a gap over the policy "
        "course-reset days starts a new course). Exactly one per evaluation.",
        {
            "sessions_total": _n("all prior sessions", sample="999"),
            "hours_since_last": _n("hours from the previous session start to T0", sample="9999.9"),
            "days_since_last": _n(
                "calendar days (facility zone) from the previous session's date to T0's date",
                sample="9999",
            ),
            "last_display": _s("previous session start", sample=DATETIME),
            "last_drug": _e("drug of the previous session", *DRUGS),
            "new_course": _b("no prior session, or the previous one is older than course reset"),
            "course_sessions": _n("prior sessions in the current course", sample="999"),
            "course_days": _n(
                "calendar days since the current course's first session", sample="999"
            ),
            "maintenance_gap_days": _n(
                "calendar days between the last two sessions once a booster has followed the "
                "induction (the maintenance schedule); absent before the first booster",
                sample="999",
            ),
            "course_week": _n("week of the course T0 falls in (1 = first week)", sample="99"),
            "sessions_7d": _n(
                "sessions in the 7 calendar days up to T0, plus the planned one", sample="99"
            ),
            "sessions_42d": _n(
                "sessions in the 42 calendar days up to T0, plus the planned one", sample="99"
            ),
            "sessions_365d": _n(
                "sessions in the 365 calendar days up to T0, plus the planned one", sample="999"
            ),
            "course_had_56mg": _b("esketamine: a 56 mg session earlier in this course"),
            "course_months": _n("months of continuous treatment in this course", sample="99"),
        },
    ),
    FactType(
        "dosing_session",
        "Today's dosing session (encounter-start/discharge): the administrations of this "
        "encounter or day, aggregated.",
        {
            "drug": _e("drug given", *DRUGS),
            "route": _e("route", *ROUTES),
            "start_display": _s("first administration (first device)", sample=DATETIME),
            "end_display": _s("last administration end", sample=DATETIME),
            "minutes_since_start": _n("minutes from first administration to T0", sample="9999"),
            "minutes_since_end": _n("minutes from last administration end to T0", sample="9999"),
            "observe_until_display": _s("earliest discharge by policy", sample=DATETIME),
            "clearance_display": _s("driving clearance time by policy", sample=DATETIME),
            "stability_documented": _b(
                "post-dose stability is documented: an assessment, or vital signs through the "
                "end of the monitoring period"
            ),
            "stability_display": _s(
                "what shows stability, or why it is not shown", sample="x" * 90
            ),
            "post_dose_vitals": _b("at least one BP after the first administration"),
            "monitoring_missing": _s(
                "monitoring items not documented, comma separated", sample="x" * 60
            ),
            "at_home": _b("self-administered at home"),
        },
    ),
    FactType(
        "intake",
        "Food and liquid intake documented for the dosing day.",
        {
            "documented_today": _b("fasting status or last-intake time recorded today"),
            "solid_minutes_before": _n(
                "minutes from last solid food to the planned dose", sample="9999"
            ),
            "liquid_minutes_before": _n(
                "minutes from last liquid to the planned dose", sample="9999"
            ),
            "solid_display": _s("last solid food time", sample=DATETIME),
            "liquid_display": _s("last liquid time", sample=DATETIME),
            "food_ok_display": _s("earliest dose time given the policy food fast", sample=DATETIME),
            "liquid_ok_display": _s(
                "earliest dose time given the policy liquid fast", sample=DATETIME
            ),
            # Hours too: ketamine_food_fast_hours / ketamine_clear_liquid_hours are in hours
            # and conditions cannot convert units.
            "solid_hours_before": _n(
                "hours from last solid food to the planned dose", sample="999.99"
            ),
            "liquid_hours_before": _n(
                "hours from last liquid to the planned dose", sample="999.99"
            ),
            "not_fasting_display": _s(
                "when the newest fasting status today was answered 'not fasting' (absent "
                "otherwise)",
                sample=DATETIME,
            ),
            "food_stop_display": _s(
                "no food after this time (planned dose minus the policy "
                "food fast for the plan's drug)",
                sample=DATETIME,
            ),
            "liquid_stop_display": _s(
                "no liquids after this time (absent when the drug's policy has no liquid fast)",
                sample=DATETIME,
            ),
            "food_fast_display": _s(
                "how long before the dose not to eat ('4 h', '120 min')", sample="9999 min"
            ),
            "liquid_fast_display": _s(
                "how long before the dose not to drink (absent without a liquid fast)",
                sample="9999 min",
            ),
            "food_stop_note": _s(
                "' (no food after <time>)' when that time is still ahead of the request, else "
                "empty: instructions stay relative when no dose time is planned or it has passed",
                sample=" (no food after " + DATETIME + ")",
            ),
            "liquid_stop_note": _s(
                "' (no liquids after <time>)' when that time is still ahead, else empty",
                sample=" (no liquids after " + DATETIME + ")",
            ),
        },
    ),
    FactType(
        "escort",
        "A documented ride home / escort for the dosing day (local observation or "
        "appointment flag). Present only when confirmed.",
        {"date_display": _s("when documented", sample=DATE), "ref": REF},
    ),
    FactType(
        "consent",
        "The best usable KAP treatment Consent.",
        {
            "valid": _b("active and its provision period covers T0"),
            "expired": _b("active but its provision period ended before T0"),
            "expired_display": _s("when it ended", sample=DATE),
            "age_days": _n("days since the consent was given", sample="9999"),
            "covers_plan": _b("covers the planned drug and route (or is not specific)"),
            "date_display": _s("consent date", sample=DATE),
            "ref": REF,
        },
    ),
    FactType(
        "exposure_review",
        "The long-term exposure review documented within long_term_review_quiet_days: a review "
        "record, or a urinalysis and a cognitive screening both in the window.",
        {
            "days_ago": _n("days since the review (the older screening)", sample="999"),
            "date_display": _s("review date", sample=DATE),
            "source": _s("what documents it", sample="x" * 40),
            "ref": REF,
        },
    ),
    FactType(
        "rems",
        "SPRAVATO REMS patient enrollment documented. Present only when enrolled.",
        {
            "date_display": _s("when documented (absent: an undated REMS patient ID)", sample=DATE),
            "source": _s("which record shows it", sample="x" * 30),
            "ref": REF,
        },
    ),
    FactType(
        "visit",
        "A KAP preparation, dosing or integration Appointment/Encounter (booked, arrived, "
        "checked-in, fulfilled, in-progress or finished; cancelled/no-show ignored).",
        {
            "kind": _e("visit type", "preparation", "dosing", "integration"),
            "days_ago": _n("days before T0 (negative = in the future)", sample="-999"),
            "after_last_session_days": _n(
                "days after the previous dosing session (absent when before it or no session)",
                sample="99",
            ),
            "date_display": _s("when", sample=DATE),
            "ref": REF,
        },
    ),
    FactType(
        "data_gap",
        "Data some checks need could not be had (prefetch failed or missing, or a resource "
        "the rules read was not valid FHIR R4).",
        {
            "key": _s("prefetch key or resource", sample="x" * 40),
            "reason": _s("failed / missing / invalid", sample="x" * 20),
            "checks": _s("which checks could not run", sample="x" * 80),
            "what": _s("what could not be had and why, in plain words", sample="x" * 160),
        },
    ),
]

FACT_TYPES: dict[str, FactType] = {t.name: t for t in _TYPES}
