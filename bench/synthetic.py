"""Synthetic FHIR R4 patient data with Synthea-like shapes, and the CDS Hooks requests built on it.

``patient_resources(n)`` returns exactly ``n`` resources (the Patient included): a handful that the
KAP rules read (a recent BP panel, a weight, a negative pregnancy test, earlier ketamine doses with
their dosing encounters) and a Synthea-like mix of everything else (vital-sign panels, labs,
surveys, conditions with ICD-10-CM and SNOMED codes in various clinical statuses, RxNorm
medication requests and statements, encounters, procedures, allergies). ``kap_request(n)`` splits
them into the ``kap-order-sign`` prefetch keys as searchset Bundles and adds a draft IV ketamine
order; ``fast_path_request()`` is the same call for an amoxicillin order.

Everything is deterministic for a given seed, and every resource validates with
``fhir.resources.R4B`` (tests/bench/test_synthetic.py checks a sample).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from cds.hooks.registry import SERVICES_BY_ID
from cds.ruleset.cases import PREFETCH_KEY_BY_TYPE

Json = dict[str, Any]

REPO_ROOT = Path(__file__).resolve().parent.parent
ORDERS_DIR = REPO_ROOT / "fhir_examples" / "orders"
SERVICE_ID = "kap-order-sign"
PATIENT_ID = "bench-patient"
T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # the planned dose time of the ketamine order
HISTORY_DAYS = 5 * 365

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CLINICAL_STATUS = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
KAP_VISIT = "urn:kap-cds:appointment-type"
IV_ROUTE = {"coding": [{"system": SNOMED, "code": "47625008", "display": "Intravenous route"}]}

# (LOINC, display, UCUM unit, low, high, decimals)
VITALS = (
    ("8867-4", "Heart rate", "/min", 55, 100, 0),
    ("9279-1", "Respiratory rate", "/min", 12, 20, 0),
    ("8310-5", "Body temperature", "Cel", 36.1, 37.5, 1),
    ("29463-7", "Body Weight", "kg", 55, 95, 1),
    ("8302-2", "Body Height", "cm", 150, 190, 1),
    ("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", 19, 32, 2),
    ("2708-6", "Oxygen saturation in Arterial blood", "%", 94, 100, 0),
)
LABS = (
    ("2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", 70, 110, 0),
    ("2160-0", "Creatinine [Mass/volume] in Blood", "mg/dL", 0.6, 1.2, 2),
    ("33914-3", "Glomerular filtration rate/1.73 sq M.predicted", "mL/min/{1.73_m2}", 60, 120, 0),
    ("6299-2", "Urea nitrogen [Mass/volume] in Blood", "mg/dL", 7, 20, 0),
    ("2947-0", "Sodium [Moles/volume] in Blood", "mmol/L", 135, 145, 0),
    ("6298-4", "Potassium [Moles/volume] in Blood", "mmol/L", 3.5, 5.0, 1),
    ("2069-3", "Chloride [Moles/volume] in Blood", "mmol/L", 98, 107, 0),
    (
        "1742-6",
        "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
        "U/L",
        7,
        40,
        0,
    ),
    (
        "1920-8",
        "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
        "U/L",
        10,
        40,
        0,
    ),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 12, 16, 1),
    ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 4, 11, 1),
    ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 150, 400, 0),
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4.8, 6.0, 1),
    ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 150, 240, 0),
)
SURVEYS = (
    ("44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]", 0, 27),
    ("70274-6", "Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]", 0, 21),
)
# (SNOMED, ICD-10-CM, display)
CONDITIONS = (
    ("38341003", "I10", "Hypertensive disorder, systemic arterial (disorder)"),
    ("44054006", "E11.9", "Diabetes mellitus type 2 (disorder)"),
    ("195967001", "J45.909", "Asthma (disorder)"),
    ("370143000", "F33.1", "Major depressive disorder (disorder)"),
    ("197480006", "F41.9", "Anxiety disorder (disorder)"),
    ("55822004", "E78.5", "Hyperlipidemia (disorder)"),
    ("40055000", "J32.9", "Chronic sinusitis (disorder)"),
    ("10509002", "J20.9", "Acute bronchitis (disorder)"),
    ("444814009", "J01.90", "Viral sinusitis (disorder)"),
    ("15777000", "R73.03", "Prediabetes (finding)"),
    ("271737000", "D64.9", "Anemia (disorder)"),
    ("162864005", "E66.9", "Body mass index 30+ - obesity (finding)"),
    ("59621000", "I10", "Essential hypertension (disorder)"),
    ("233604007", "J18.9", "Pneumonia (disorder)"),
)
CONDITION_STATUSES = ("active", "active", "resolved", "resolved", "remission", "inactive")
# (RxNorm, display)
MEDICATIONS = (
    ("197361", "amlodipine 5 MG Oral Tablet"),
    ("860975", "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet"),
    ("314076", "lisinopril 10 MG Oral Tablet"),
    ("312938", "sertraline 100 MG Oral Tablet"),
    ("308182", "amoxicillin 250 MG Oral Capsule"),
    ("617314", "atorvastatin 10 MG Oral Tablet"),
    ("245314", "albuterol 5 MG/ML Inhalation Solution"),
    ("310965", "Ibuprofen 200 MG Oral Tablet"),
    ("313782", "Acetaminophen 325 MG Oral Tablet"),
    ("966222", "Levothyroxine Sodium 0.075 MG Oral Tablet"),
    ("993503", "bupropion hydrochloride 150 MG 12 HR Extended Release Oral Tablet"),
    ("1310197", "escitalopram 10 MG Oral Tablet"),
)
ENCOUNTER_TYPES = (
    ("185349003", "Encounter for check up (procedure)"),
    ("162673000", "General examination of patient (procedure)"),
    ("185345009", "Encounter for symptom (procedure)"),
    ("390906007", "Follow-up encounter (procedure)"),
)
PROCEDURES = (
    ("430193006", "Medication Reconciliation (procedure)"),
    ("710824005", "Assessment of health and social care needs (procedure)"),
    ("171207006", "Depression screening (procedure)"),
    ("428191000124101", "Documentation of current medications (procedure)"),
    ("73761001", "Colonoscopy (procedure)"),
    ("430701006", "Resuscitation using intravenous fluid (procedure)"),
)
ALLERGIES = (
    ("300916003", "Latex allergy (finding)", "environment"),
    ("91936005", "Allergy to penicillin (finding)", "medication"),
    ("419474003", "Allergy to mould (finding)", "environment"),
    ("232347008", "Dander (animal) allergy (finding)", "environment"),
    ("417532002", "Allergy to fish (finding)", "food"),
)
# Share of the filler resources per kind (Synthea-like; observations take the rest).
MIX: tuple[tuple[str, float], ...] = (
    ("encounter", 0.10),
    ("procedure", 0.10),
    ("condition", 0.08),
    ("medication_request", 0.10),
    ("medication_statement", 0.03),
    ("allergy", 0.02),
)
KETAMINE_SESSIONS_DAYS_AGO = (7, 14, 21, 28)
# Resources an EHR returns with a search through ``_include`` (MedicationRequest:medication).
INCLUDED_BY_TYPE = {"Medication": "medicationRequests"}


class Generator:
    """Builds the resources of one synthetic patient; ``rng`` makes every choice."""

    def __init__(self, seed: int = 0, patient_id: str = PATIENT_ID) -> None:
        self.rng = random.Random(seed)
        self.patient_id = patient_id
        self.encounter_ids: list[str] = []

    # ---- small helpers ----------------------------------------------------------------------

    def new_id(self) -> str:
        value = f"{self.rng.getrandbits(128):032x}"
        return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"

    def subject(self) -> Json:
        return {"reference": f"Patient/{self.patient_id}"}

    def when(self, max_days: float = HISTORY_DAYS, min_days: float = 1.0) -> datetime:
        """A moment between ``max_days`` and ``min_days`` before T0, on the minute."""
        seconds = self.rng.uniform(min_days, max_days) * 86_400
        return (T0 - timedelta(seconds=seconds)).replace(second=0, microsecond=0)

    def encounter_ref(self) -> Json | None:
        if not self.encounter_ids:
            return None
        return {"reference": f"Encounter/{self.rng.choice(self.encounter_ids)}"}

    def value(self, low: float, high: float, decimals: int) -> float | int:
        number = round(self.rng.uniform(low, high), decimals)
        return int(number) if decimals == 0 else number

    # ---- observations -----------------------------------------------------------------------

    def observation(
        self, category: str, code: str, display: str, at: datetime, **value: Any
    ) -> Json:
        resource: Json = {
            "resourceType": "Observation",
            "id": self.new_id(),
            "status": "final",
            "category": [
                {
                    "coding": [
                        {
                            "system": OBS_CATEGORY,
                            "code": category,
                            "display": category.replace("-", " ").title(),
                        }
                    ]
                }
            ],
            "code": {
                "coding": [{"system": LOINC, "code": code, "display": display}],
                "text": display,
            },
            "subject": self.subject(),
            "effectiveDateTime": _iso(at),
            "issued": _iso(at + timedelta(minutes=5)),
            **value,
        }
        encounter = self.encounter_ref()
        if encounter:
            resource["encounter"] = encounter
        return resource

    def bp_panel(self, at: datetime, sbp: int | None = None, dbp: int | None = None) -> Json:
        systolic = sbp if sbp is not None else self.rng.randint(105, 138)
        diastolic = dbp if dbp is not None else self.rng.randint(65, 88)
        return self.observation(
            "vital-signs",
            "85354-9",
            "Blood pressure panel with all children optional",
            at,
            component=[
                _bp_component("8480-6", "Systolic blood pressure", systolic),
                _bp_component("8462-4", "Diastolic blood pressure", diastolic),
            ],
        )

    def vital(self, at: datetime) -> Json:
        if self.rng.random() < 0.25:
            return self.bp_panel(at)
        code, display, unit, low, high, decimals = self.rng.choice(VITALS)
        return self.observation(
            "vital-signs",
            code,
            display,
            at,
            valueQuantity=_quantity(self.value(low, high, decimals), unit),
        )

    def lab(self, at: datetime) -> Json:
        code, display, unit, low, high, decimals = self.rng.choice(LABS)
        return self.observation(
            "laboratory",
            code,
            display,
            at,
            valueQuantity=_quantity(self.value(low, high, decimals), unit),
        )

    def survey(self, at: datetime) -> Json:
        code, display, low, high = self.rng.choice(SURVEYS)
        return self.observation(
            "survey",
            code,
            display,
            at,
            valueQuantity=_quantity(self.rng.randint(low, high), "{score}"),
        )

    def any_observation(self) -> Json:
        roll, at = self.rng.random(), self.when()
        if roll < 0.5:
            return self.vital(at)
        return self.lab(at) if roll < 0.95 else self.survey(at)

    # ---- other resource types ---------------------------------------------------------------

    def encounter(self, at: datetime | None = None, kap_dosing: bool = False) -> Json:
        start = at or self.when()
        code, display = self.rng.choice(ENCOUNTER_TYPES)
        types = [
            {"coding": [{"system": SNOMED, "code": code, "display": display}], "text": display}
        ]
        if kap_dosing:
            types = [
                {
                    "coding": [
                        {"system": KAP_VISIT, "code": "kap-dosing", "display": "KAP dosing session"}
                    ]
                }
            ]
        encounter_id = self.new_id()
        self.encounter_ids.append(encounter_id)
        return {
            "resourceType": "Encounter",
            "id": encounter_id,
            "status": "finished",
            "class": {"system": ACT_CODE, "code": "AMB", "display": "ambulatory"},
            "type": types,
            "subject": self.subject(),
            "period": {"start": _iso(start), "end": _iso(start + timedelta(minutes=45))},
            "serviceProvider": {"reference": "Organization/bench-clinic", "display": "Clinic"},
        }

    def condition(self) -> Json:
        snomed, icd10, display = self.rng.choice(CONDITIONS)
        status = self.rng.choice(CONDITION_STATUSES)
        onset = self.when()
        resource: Json = {
            "resourceType": "Condition",
            "id": self.new_id(),
            "clinicalStatus": {"coding": [{"system": CLINICAL_STATUS, "code": status}]},
            "verificationStatus": {"coding": [{"system": VERIFICATION, "code": "confirmed"}]},
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                            "code": "encounter-diagnosis",
                            "display": "Encounter Diagnosis",
                        }
                    ]
                }
            ],
            "code": {
                "coding": [
                    {"system": SNOMED, "code": snomed, "display": display},
                    {"system": ICD10, "code": icd10},
                ],
                "text": display,
            },
            "subject": self.subject(),
            "onsetDateTime": _iso(onset),
            "recordedDate": _iso(onset),
        }
        if status in ("resolved", "inactive", "remission"):
            resource["abatementDateTime"] = _iso(onset + timedelta(days=self.rng.randint(5, 200)))
        return resource

    def medication_request(self) -> Json:
        code, display = self.rng.choice(MEDICATIONS)
        status = self.rng.choice(("active", "completed", "completed", "stopped"))
        resource: Json = {
            "resourceType": "MedicationRequest",
            "id": self.new_id(),
            "status": status,
            "intent": "order",
            "medicationCodeableConcept": _rx(code, display),
            "subject": self.subject(),
            "authoredOn": _iso(self.when()),
            "requester": {"reference": "Practitioner/bench-prescriber"},
            "dosageInstruction": [
                {
                    "sequence": 1,
                    "text": "Take as directed",
                    "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                    "asNeededBoolean": False,
                }
            ],
        }
        encounter = self.encounter_ref()
        if encounter:
            resource["encounter"] = encounter
        return resource

    def medication_statement(self) -> Json:
        code, display = self.rng.choice(MEDICATIONS)
        start = self.when()
        return {
            "resourceType": "MedicationStatement",
            "id": self.new_id(),
            "status": self.rng.choice(("active", "completed")),
            "medicationCodeableConcept": _rx(code, display),
            "subject": self.subject(),
            "effectivePeriod": {"start": _iso(start)},
            "dateAsserted": _iso(start),
        }

    def procedure(self) -> Json:
        code, display = self.rng.choice(PROCEDURES)
        start = self.when()
        resource: Json = {
            "resourceType": "Procedure",
            "id": self.new_id(),
            "status": "completed",
            "code": {
                "coding": [{"system": SNOMED, "code": code, "display": display}],
                "text": display,
            },
            "subject": self.subject(),
            "performedPeriod": {"start": _iso(start), "end": _iso(start + timedelta(minutes=20))},
        }
        encounter = self.encounter_ref()
        if encounter:
            resource["encounter"] = encounter
        return resource

    def allergy(self) -> Json:
        code, display, category = self.rng.choice(ALLERGIES)
        return {
            "resourceType": "AllergyIntolerance",
            "id": self.new_id(),
            "clinicalStatus": {"coding": [{"system": ALLERGY_CLINICAL, "code": "active"}]},
            "verificationStatus": {
                "coding": [{"system": ALLERGY_VERIFICATION, "code": "confirmed"}]
            },
            "type": "allergy",
            "category": [category],
            "criticality": "low",
            "code": {
                "coding": [{"system": SNOMED, "code": code, "display": display}],
                "text": display,
            },
            "patient": self.subject(),
            "recordedDate": _iso(self.when()),
        }

    def ketamine_administration(self, at: datetime, encounter_id: str) -> Json:
        return {
            "resourceType": "MedicationAdministration",
            "id": self.new_id(),
            "status": "completed",
            "medicationCodeableConcept": _rx("6130", "ketamine"),
            "subject": self.subject(),
            "context": {"reference": f"Encounter/{encounter_id}"},
            "effectivePeriod": {"start": _iso(at), "end": _iso(at + timedelta(minutes=40))},
            "dosage": {"route": IV_ROUTE, "dose": _quantity(35, "mg")},
        }

    # ---- the patient ------------------------------------------------------------------------

    def patient(self) -> Json:
        return {
            "resourceType": "Patient",
            "id": self.patient_id,
            "identifier": [
                {
                    "system": "https://ehr.example.org/mrn",
                    "value": f"MRN-{self.rng.randint(1, 10**8):08d}",
                }
            ],
            "name": [{"use": "official", "family": "Bench", "given": ["Casey"]}],
            "gender": "female",
            "birthDate": "1990-05-14",
            "address": [{"city": "Springfield", "state": "MA", "country": "US"}],
        }

    def kap_resources(self) -> list[Json]:
        """What the KAP rules read: earlier ketamine sessions (each with its dosing encounter),
        a BP panel the day before T0, a weight and a negative pregnancy test."""
        resources: list[Json] = []
        for days in KETAMINE_SESSIONS_DAYS_AGO:
            at = (T0 - timedelta(days=days)).replace(minute=0)
            encounter = self.encounter(at, kap_dosing=True)
            resources += [encounter, self.ketamine_administration(at, encounter["id"])]
        # Values of this patient's own (no card fires on them): every seed is a new patient.
        sbp, dbp = self.rng.randint(108, 134), self.rng.randint(66, 84)
        resources.append(self.bp_panel(T0 - timedelta(hours=20), sbp=sbp, dbp=dbp))
        resources.append(
            self.observation(
                "vital-signs",
                "29463-7",
                "Body Weight",
                T0 - timedelta(days=3),
                valueQuantity=_quantity(round(self.rng.uniform(55, 95), 1), "kg"),
            )
        )
        resources.append(
            self.observation(
                "laboratory",
                "2106-3",
                "Choriogonadotropin (pregnancy test) [Presence] in Urine",
                T0 - timedelta(days=2),
                valueCodeableConcept={
                    "coding": [{"system": SNOMED, "code": "260385009", "display": "Negative"}]
                },
            )
        )
        return resources

    def filler(self, count: int) -> list[Json]:
        """``count`` resources of the Synthea-like mix (encounters first: others point at them)."""
        makers: dict[str, Callable[[], Json]] = {
            "encounter": self.encounter,
            "procedure": self.procedure,
            "condition": self.condition,
            "medication_request": self.medication_request,
            "medication_statement": self.medication_statement,
            "allergy": self.allergy,
        }
        resources: list[Json] = []
        for kind, share in MIX:
            resources += [makers[kind]() for _ in range(round(count * share))]
        resources = resources[:count]
        resources += [self.any_observation() for _ in range(count - len(resources))]
        return resources


def patient_resources(count: int, seed: int = 0, patient_id: str = PATIENT_ID) -> list[Json]:
    """Exactly ``count`` resources (at least 12): the Patient, the KAP ones, then the mix."""
    generator = Generator(seed, patient_id)
    core = [generator.patient(), *generator.kap_resources()]
    if count < len(core):
        raise ValueError(f"at least {len(core)} resources are needed, got {count}")
    return core + generator.filler(count - len(core))


# ---- requests --------------------------------------------------------------------------------


def searchset(resources: list[Json], included: list[Json] | None = None) -> Json:
    """A searchset Bundle: the matches, then ``_include``d resources (search.mode include)."""
    entries = [_entry(r, "match") for r in resources]
    entries += [_entry(r, "include") for r in included or ()]
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "link": [{"relation": "self", "url": "https://ehr.example.org/fhir/search"}],
        "entry": entries,
    }


def _entry(resource: Json, mode: str) -> Json:
    url = f"https://ehr.example.org/fhir/{resource['resourceType']}/{resource.get('id')}"
    return {"fullUrl": url, "resource": resource, "search": {"mode": mode}}


def split_prefetch(resources: list[Json], service_id: str = SERVICE_ID) -> dict[str, Json | None]:
    """The prefetch an EHR would send: the Patient, then one searchset per templated key
    (empty when the patient has none). Medication resources ride along with the
    MedicationRequests (``_include``); types no key asks for are left out."""
    by_key: dict[str, list[Json]] = {}
    included: dict[str, list[Json]] = {}
    patient: Json | None = None
    for resource in resources:
        resource_type = resource.get("resourceType")
        if resource_type == "Patient" and patient is None:
            patient = resource
        if resource_type in INCLUDED_BY_TYPE:
            included.setdefault(INCLUDED_BY_TYPE[resource_type], []).append(resource)
        key = PREFETCH_KEY_BY_TYPE.get(str(resource_type))
        if key:
            by_key.setdefault(key, []).append(resource)
    prefetch: dict[str, Json | None] = {"patient": patient}
    for key in SERVICES_BY_ID[service_id].templates:
        if key != "patient":
            prefetch[key] = searchset(by_key.get(key, []), included.get(key))
    return prefetch


def ketamine_order(patient_id: str = PATIENT_ID) -> Json:
    order: Json = orjson.loads((ORDERS_DIR / "ketamine-iv.json").read_bytes())
    order["id"] = f"{patient_id}-ketamine-order"
    order["subject"] = {"reference": f"Patient/{patient_id}"}
    return order


def amoxicillin_order(patient_id: str = PATIENT_ID) -> Json:
    return {
        "resourceType": "MedicationRequest",
        "id": "bench-amoxicillin-order",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": _rx("308182", "amoxicillin 250 MG Oral Capsule"),
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": _iso(T0 - timedelta(hours=1)),
        "dosageInstruction": [
            {
                "text": "250 mg by mouth every 8 hours for 10 days",
                "timing": {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}},
            }
        ],
    }


def order_sign_request(
    order: Json, prefetch: dict[str, Json | None] | None, patient_id: str = PATIENT_ID
) -> Json:
    request: Json = {
        "hookInstance": "00000000-0000-0000-0000-000000000000",
        "hook": "order-sign",
        "context": {
            "userId": "Practitioner/bench-prescriber",
            "patientId": patient_id,
            "draftOrders": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": copy.deepcopy(order)}],
            },
        },
    }
    if prefetch is not None:
        request["prefetch"] = prefetch
    return request


def kap_request(count: int, seed: int = 0, patient_id: str = PATIENT_ID) -> Json:
    """A ``kap-order-sign`` call for IV ketamine with ``count`` prefetched resources."""
    resources = patient_resources(count, seed, patient_id)
    return order_sign_request(ketamine_order(patient_id), split_prefetch(resources), patient_id)


def cold_kap_request(count: int, index: int) -> Json:
    """Request ``index`` of cold traffic: a patient never seen before, with ids and values of
    their own (the seed), so no cache keyed on content can answer any of its resources."""
    return kap_request(count, seed=1_000_003 + index, patient_id=f"bench-patient-{index}")


def fast_path_request(count: int = 0, seed: int = 0) -> Json:
    """The same call for amoxicillin; ``count`` > 0 sends a prefetch too, as an EHR configured
    with our templates does for every order it signs."""
    prefetch = split_prefetch(patient_resources(count, seed)) if count else None
    return order_sign_request(amoxicillin_order(), prefetch)


def resource_count(request: Json) -> int:
    """Resources in a request's prefetch (Bundles counted by their entries)."""
    total = 0
    for value in (request.get("prefetch") or {}).values():
        if isinstance(value, dict):
            total += len(value.get("entry") or []) if value.get("resourceType") == "Bundle" else 1
    return total


# ---- JSON helpers ----------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _quantity(value: float | int, unit: str) -> Json:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _rx(code: str, display: str) -> Json:
    return {"coding": [{"system": RXNORM, "code": code, "display": display}], "text": display}


def _bp_component(code: str, display: str, value: int) -> Json:
    return {
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
        "valueQuantity": {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
    }
