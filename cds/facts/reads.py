"""What the fact builders read from the chart, per resource type: the statuses they keep and the
value sets whose codes they look for. Narrow prefetch templates (``cds.fhir.narrow``) are
generated from this and the loaded value sets, so an EHR sends only what a rule can use.

Only what every builder of a type filters on may appear here: one builder that reads a type
whatever its status or code (Condition: ICD-10 prefixes; medications: ingredient names; the
encounter and appointment links of a dosing day) keeps that type's template broad.
``tests/facts/test_reads.py`` records what the builders really read, on every fixture, so this
list cannot fall behind them.
"""

from __future__ import annotations

from cds.facts import clinical, dosing_day, labs, sessions, weight

# Observation.code value sets read (through FactContext.with_code: the only way builders see
# Observations).
OBSERVATION_VALUESETS: tuple[str, ...] = (
    "VS-BODY-WEIGHT",
    "VS-BP-DIASTOLIC",
    "VS-BP-PANEL",
    "VS-BP-SYSTOLIC",
    "VS-BREASTFEEDING",
    "VS-BREASTFEEDING-STATUS",
    "VS-COGNITIVE-SCREEN",
    "VS-DEPRESSION-SCORE",
    "VS-EGFR",
    "VS-ESCORT-CONFIRMED",
    "VS-EXPOSURE-REVIEW",
    "VS-FASTING-STATUS",
    "VS-HCG-QUALITATIVE",
    "VS-HCG-QUANTITATIVE",
    "VS-LAST-LIQUID-INTAKE",
    "VS-LAST-SOLID-INTAKE",
    "VS-LFT",
    "VS-POST-DOSE-STABLE",
    "VS-PREGNANCY-STATUS",
    "VS-REMS-ENROLLED",
    "VS-SPO2",
    "VS-URINALYSIS",
    "VS-URINE-DRUG-SCREEN",
)

# Statuses each builder keeps, by resource type (unions over the builders of that type).
STATUSES: dict[str, frozenset[str]] = {
    "Observation": frozenset(labs.USABLE_STATUS | dosing_day.USABLE | weight.USABLE_STATUS),
    # clinical.py: active/intended (interactions), also stopped/completed (MAOI washout);
    # sessions.py: completed (history).
    "MedicationStatement": frozenset(
        sessions.STATEMENT_STATUSES
        | clinical.TAKEN_STATUSES["MedicationStatement"]
        | {"active", "intended"}
    ),
    # clinical.py and sessions.py: completed/in-progress.
    "MedicationAdministration": frozenset(
        sessions.ADMIN_STATUSES
        | clinical.TAKEN_STATUSES["MedicationAdministration"]
        | {"completed", "in-progress"}
    ),
    # procedures.py, patient.py, reproductive.py: completed; sessions.py: also in-progress.
    "Procedure": frozenset(sessions.PROCEDURE_STATUSES | {"completed"}),
    # quality.py: only an active consent is a KAP consent.
    "Consent": frozenset({"active"}),
}
