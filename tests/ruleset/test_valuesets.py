"""The shipped value sets (rules/valuesets/*.yaml): contracted ids and membership spot checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds.errors import RuleLoadError
from cds.ruleset.valuesets import ValueSet, ValueSetFile, load_valuesets

VS_DIR = Path(__file__).resolve().parents[2] / "rules" / "valuesets"

SCT = "http://snomed.info/sct"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
LNC = "http://loinc.org"
NDC = "http://hl7.org/fhir/sid/ndc"
OBS = "urn:kap-cds:obs"
APPT = "urn:kap-cds:appointment-type"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
V2_0136 = "http://terminology.hl7.org/CodeSystem/v2-0136"
V3_INTERP = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"

DRUGS = {"VS-KETAMINE", "VS-ESKETAMINE"}
CONDITIONS = {
    "VS-ANEURYSM",
    "VS-AVM",
    "VS-ICH",
    "VS-ICH-OTHER",
    "VS-PSYCHOSIS",
    "VS-MANIA",
    "VS-BIPOLAR",
    "VS-HTN",
    "VS-HTN-CRISIS",
    "VS-CARDIAC-ACUTE",
    "VS-CARDIAC-CHRONIC",
    "VS-MI",
    "VS-ICP",
    "VS-HTN-ENCEPHALOPATHY",
    "VS-STROKE-ISCHEMIC",
    "VS-HYPERTHYROID",
    "VS-HYPOTHYROID",
    "VS-HEPATIC-SEVERE",
    "VS-HEPATIC-MODERATE",
    "VS-RENAL-SEVERE",
    "VS-SUD",
    "VS-SUD-REMISSION",
    "VS-PREGNANCY",
    "VS-PREGNANCY-END",
    "VS-BREASTFEEDING",
    "VS-CYSTITIS",
    "VS-LUTS",
    "VS-COGNITIVE",
    "VS-GLAUCOMA",
    "VS-MDD",
    "VS-MDD-SI",
    "VS-INFERTILITY",
}
MEDICATIONS = {
    "VS-MOOD-STABILIZER",
    "VS-BIPOLAR-ANTIPSYCHOTIC",
    "VS-LAMOTRIGINE",
    "VS-BENZODIAZEPINE",
    "VS-OPIOID",
    "VS-ZDRUG",
    "VS-BARBITURATE",
    "VS-GABAPENTINOID",
    "VS-MUSCLE-RELAXANT-SEDATING",
    "VS-MAOI",
    "VS-MAOI-IRREVERSIBLE",
    "VS-METHYLENE-BLUE",
    "VS-STIMULANT",
    "VS-XANTHINE",
    "VS-CYP3A4-INHIB-STRONG",
    "VS-CYP-INDUCER",
    "VS-ANTITHYROID",
    "VS-THYROID-HORMONE",
    "VS-NASAL-STEROID-DECONGESTANT",
}
OBSERVATIONS = {
    "VS-BP-PANEL",
    "VS-BP-SYSTOLIC",
    "VS-BP-DIASTOLIC",
    "VS-HEART-RATE",
    "VS-SPO2",
    "VS-BODY-WEIGHT",
    "VS-PREGNANCY-STATUS",
    "VS-HCG-QUALITATIVE",
    "VS-HCG-QUANTITATIVE",
    "VS-BREASTFEEDING-STATUS",
    "VS-DEPRESSION-SCORE",
    "VS-EGFR",
    "VS-LFT",
    "VS-URINE-DRUG-SCREEN",
    "VS-FASTING-STATUS",
    "VS-LAST-SOLID-INTAKE",
    "VS-LAST-LIQUID-INTAKE",
    "VS-ESCORT-CONFIRMED",
    "VS-REMS-ENROLLED",
    "VS-POST-DOSE-STABLE",
}
ANSWERS = {
    "VS-ANSWER-PREGNANT",
    "VS-ANSWER-NOT-PREGNANT",
    "VS-ANSWER-UNKNOWN",
    "VS-ANSWER-POSITIVE",
    "VS-ANSWER-NEGATIVE",
    "VS-ANSWER-BREASTFEEDING-YES",
    "VS-ANSWER-BREASTFEEDING-NO",
    "VS-ANSWER-YES",
    "VS-ANSWER-NO",
}
PROCEDURES = {"VS-PREGNANCY-END-PROCEDURE", "VS-THYROID-ABLATION", "VS-HYSTERECTOMY"}
VISITS = {"VS-KAP-DOSING", "VS-KAP-PREPARATION", "VS-KAP-INTEGRATION"}
CONSENT = {"VS-CONSENT-KAP", "VS-CONSENT-SCOPE-TREATMENT"}
ALL_IDS = DRUGS | CONDITIONS | MEDICATIONS | OBSERVATIONS | ANSWERS | PROCEDURES | VISITS | CONSENT


@pytest.fixture(scope="module")
def loaded() -> tuple[dict[str, ValueSet], dict[str, ValueSetFile]]:
    return load_valuesets(VS_DIR)


@pytest.fixture(scope="module")
def vs(loaded: tuple[dict[str, ValueSet], dict[str, ValueSetFile]]) -> dict[str, ValueSet]:
    return loaded[0]


@pytest.fixture(scope="module")
def sources(loaded: tuple[dict[str, ValueSet], dict[str, ValueSetFile]]) -> dict[str, ValueSetFile]:
    return loaded[1]


def test_every_contracted_id_exists(vs: dict[str, ValueSet]) -> None:
    missing = ALL_IDS - vs.keys()
    assert not missing, f"missing value sets: {sorted(missing)}"
    extra = vs.keys() - ALL_IDS
    assert not extra, f"value sets nobody asked for: {sorted(extra)}"


# --- membership, both ways ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vs_id", "system", "code", "expected"),
    [
        # ICD-10-CM prefixes, with and without the dot
        ("VS-BIPOLAR", ICD, "F31.81", True),
        ("VS-BIPOLAR", ICD, "F3181", True),
        ("VS-BIPOLAR", ICD, "f31.81", True),
        ("VS-BIPOLAR", ICD, "F32.9", False),
        ("VS-BIPOLAR", SCT, "F31.81", False),  # right code, wrong system
        ("VS-MANIA", ICD, "F31.11", True),
        ("VS-MANIA", ICD, "F31.73", False),  # in partial remission, most recent episode manic
        ("VS-MANIA", ICD, "F31.81", False),
        # SUD: nicotine excluded, remission split out
        ("VS-SUD", ICD, "F17.210", False),
        ("VS-SUD", ICD, "F10.20", True),
        ("VS-SUD", ICD, "F11.21", True),
        ("VS-SUD", SCT, "7200002", True),
        ("VS-SUD-REMISSION", ICD, "F10.21", True),
        ("VS-SUD-REMISSION", ICD, "F1211", True),
        ("VS-SUD-REMISSION", ICD, "F19.91", True),
        ("VS-SUD-REMISSION", ICD, "F10.20", False),
        ("VS-SUD-REMISSION", ICD, "F17.211", False),
        # psychosis incl. substance-induced psychotic disorder F1x.x5x
        ("VS-PSYCHOSIS", ICD, "F20.0", True),
        ("VS-PSYCHOSIS", ICD, "F10.259", True),
        ("VS-PSYCHOSIS", ICD, "F12.950", True),
        ("VS-PSYCHOSIS", ICD, "F10.20", False),
        ("VS-PSYCHOSIS", ICD, "F32.3", True),
        ("VS-PSYCHOSIS", ICD, "F32.2", False),
        # ICH: critical set vs warning extension
        ("VS-ICH", ICD, "I61.9", True),
        ("VS-ICH", ICD, "I69.151", True),
        ("VS-ICH", ICD, "I60.9", False),
        ("VS-ICH", SCT, "274100004", True),
        ("VS-ICH-OTHER", ICD, "I62.00", True),
        ("VS-ICH-OTHER", ICD, "I61.9", False),
        ("VS-ANEURYSM", ICD, "I71.40", True),
        ("VS-ANEURYSM", ICD, "I67.1", True),
        ("VS-AVM", ICD, "Q28.2", True),
        ("VS-AVM", ICD, "Q27.31", True),
        ("VS-CARDIAC-ACUTE", ICD, "I21.4", True),
        ("VS-CARDIAC-ACUTE", ICD, "I50.22", False),
        ("VS-CARDIAC-CHRONIC", ICD, "I50.22", True),
        ("VS-CARDIAC-CHRONIC", ICD, "I25.2", True),
        ("VS-MI", ICD, "I21.4", True),
        ("VS-MI", ICD, "I22.0", True),
        ("VS-MI", SCT, "22298006", True),
        ("VS-MI", ICD, "I25.2", False),
        ("VS-ICP", ICD, "G93.6", True),
        ("VS-STROKE-ISCHEMIC", ICD, "I63.9", True),
        ("VS-HTN-CRISIS", ICD, "I16.1", True),
        ("VS-HTN-CRISIS", ICD, "I10", False),
        ("VS-HTN-ENCEPHALOPATHY", ICD, "I67.4", True),
        ("VS-HEPATIC-SEVERE", ICD, "K72.90", True),
        ("VS-HEPATIC-SEVERE", ICD, "K74.60", False),
        ("VS-HEPATIC-MODERATE", ICD, "K74.60", True),
        ("VS-HEPATIC-MODERATE", SCT, "19943007", True),
        ("VS-RENAL-SEVERE", ICD, "N18.5", True),
        ("VS-RENAL-SEVERE", ICD, "N18.30", False),
        ("VS-RENAL-SEVERE", SCT, "709044004", False),
        # pregnancy: whole O chapter, minus codes that mean the pregnancy is over
        ("VS-PREGNANCY", ICD, "O09.90", True),
        ("VS-PREGNANCY", ICD, "O26.891", True),
        ("VS-PREGNANCY", ICD, "Z3A.20", True),
        ("VS-PREGNANCY", ICD, "O80", False),
        ("VS-PREGNANCY", ICD, "O03.9", False),
        ("VS-PREGNANCY", ICD, "Z37.0", False),
        ("VS-PREGNANCY", SCT, "77386006", True),
        ("VS-PREGNANCY-END", ICD, "Z37.0", True),
        ("VS-PREGNANCY-END", ICD, "Z39.2", True),
        ("VS-PREGNANCY-END", ICD, "O80", True),
        ("VS-BREASTFEEDING", ICD, "Z39.1", True),
        ("VS-BREASTFEEDING", SCT, "413712001", True),
        ("VS-CYSTITIS", ICD, "N30.10", True),
        ("VS-CYSTITIS", ICD, "N30.00", False),
        ("VS-LUTS", ICD, "R39.15", True),
        ("VS-LUTS", ICD, "R35.0", True),
        ("VS-LUTS", ICD, "R31.9", True),
        ("VS-COGNITIVE", ICD, "G30.9", True),
        ("VS-GLAUCOMA", ICD, "H40.9", True),
        ("VS-MDD", ICD, "F33.1", True),
        ("VS-MDD", ICD, "F32.A", True),
        ("VS-MDD", ICD, "F32.81", False),
        ("VS-MDD-SI", ICD, "R45.851", True),
        ("VS-INFERTILITY", ICD, "Z90.710", True),
        ("VS-INFERTILITY", ICD, "Z90.712", False),  # cervix gone, uterus remains
        ("VS-INFERTILITY", ICD, "Z90.721", False),  # one ovary
        ("VS-INFERTILITY", ICD, "Z78.0", True),
        # drugs
        ("VS-KETAMINE", RX, "6130", True),
        ("VS-KETAMINE", SCT, "373464007", True),
        ("VS-KETAMINE", RX, "2119365", False),
        ("VS-ESKETAMINE", NDC, "50458-028-02", True),
        ("VS-ESKETAMINE", NDC, "50458-028-03", True),
        ("VS-ESKETAMINE", NDC, "50458-0028-02", True),
        ("VS-ESKETAMINE", NDC, "50458002802", True),
        ("VS-ESKETAMINE", NDC, "50458-029-02", False),
        ("VS-ESKETAMINE", SCT, "789489008", True),
        ("VS-ESKETAMINE", RX, "6130", False),
        ("VS-MOOD-STABILIZER", RX, "6448", True),
        ("VS-MOOD-STABILIZER", RX, "28439", True),
        ("VS-LAMOTRIGINE", RX, "28439", True),
        ("VS-BENZODIAZEPINE", RX, "596", True),
        ("VS-OPIOID", RX, "1819", True),
        ("VS-CYP-INDUCER", RX, "2002", True),
        # observations: system + code (2106-3 is also the CDC race code "White")
        ("VS-HCG-QUALITATIVE", LNC, "2106-3", True),
        ("VS-HCG-QUALITATIVE", "urn:oid:2.16.840.1.113883.6.238", "2106-3", False),
        ("VS-BP-PANEL", LNC, "85354-9", True),
        ("VS-BP-SYSTOLIC", LNC, "8480-6", True),
        ("VS-BP-SYSTOLIC", LNC, "8462-4", False),
        ("VS-DEPRESSION-SCORE", LNC, "44261-6", True),
        ("VS-DEPRESSION-SCORE", OBS, "madrs-total", True),
        ("VS-POST-DOSE-STABLE", OBS, "clinically-stable", True),
        ("VS-LAST-SOLID-INTAKE", OBS, "last-liquid-intake", False),
        ("VS-ANSWER-YES", V2_0136, "Y", True),
        ("VS-ANSWER-NO", V2_0136, "Y", False),
        ("VS-ANSWER-POSITIVE", LNC, "LA6576-8", True),
        ("VS-KAP-DOSING", APPT, "kap-dosing", True),
        ("VS-KAP-DOSING", APPT, "kap-integration", False),
        ("VS-CONSENT-SCOPE-TREATMENT", CONSENT_SCOPE, "treatment", True),
    ],
)
def test_coding_membership(
    vs: dict[str, ValueSet], vs_id: str, system: str, code: str, expected: bool
) -> None:
    assert vs[vs_id].matches_coding(system, code) is expected


@pytest.mark.parametrize(
    ("vs_id", "text", "expected"),
    [
        ("VS-KETAMINE", "ketamine hydrochloride 50 MG/ML Injectable Solution", True),
        ("VS-KETAMINE", "Ketalar 10 MG/ML Injectable Solution", True),
        ("VS-KETAMINE", "KETAMINE HCL 100 MG TROCHE (compounded)", True),
        ("VS-KETAMINE", "esketamine 28 MG nasal spray", False),
        ("VS-KETAMINE", "SPRAVATO 56 MG Dose Pack", False),
        ("VS-ESKETAMINE", "esketamine 28 MG nasal spray", True),
        ("VS-ESKETAMINE", "SPRAVATO 56 MG Dose Pack", True),
        ("VS-ESKETAMINE", "ketamine hydrochloride 50 MG/ML Injectable Solution", False),
        ("VS-MOOD-STABILIZER", "Depakote ER 500 MG", True),
        ("VS-MOOD-STABILIZER", "lithium carbonate 300 MG Oral Capsule", True),
        ("VS-MOOD-STABILIZER", "oxcarbazepine 300 MG Oral Tablet", False),
        ("VS-BENZODIAZEPINE", "Xanax 0.5 MG Oral Tablet", True),
        ("VS-BENZODIAZEPINE", "clonazePAM 1 MG", True),
        ("VS-BENZODIAZEPINE", "buspirone 10 MG Oral Tablet", False),
        ("VS-OPIOID", "Suboxone 8 MG / 2 MG Sublingual Film", True),
        ("VS-OPIOID", "naltrexone 50 MG Oral Tablet", False),
        ("VS-STIMULANT", "Adderall XR 20 MG", True),
        ("VS-STIMULANT", "dextroamphetamine sulfate 5 MG", True),
        ("VS-MAOI", "Emsam 6 MG/24HR Transdermal System", True),
        ("VS-THYROID-HORMONE", "levothyroxine sodium 0.05 MG Oral Tablet", True),
        ("VS-THYROID-HORMONE", "antithyroid therapy", False),
        (
            "VS-NASAL-STEROID-DECONGESTANT",
            "fluticasone propionate 0.05 MG/ACTUAT Nasal Spray",
            True,
        ),
        ("VS-XANTHINE", "Theo-24 300 MG", True),
        ("VS-CYP3A4-INHIB-STRONG", "Paxlovid (nirmatrelvir/ritonavir)", True),
        ("VS-BIPOLAR", "bipolar disorder", False),  # condition sets never match on text
        ("VS-KETAMINE", None, False),
        ("VS-KETAMINE", "", False),
    ],
)
def test_text_membership(
    vs: dict[str, ValueSet], vs_id: str, text: str | None, expected: bool
) -> None:
    assert vs[vs_id].matches_text(text) is expected


# --- quality of the files -------------------------------------------------------------------------


def test_every_verify_code_carries_a_note(
    sources: dict[str, ValueSetFile], vs: dict[str, ValueSet]
) -> None:
    for vs_id, src in sources.items():
        for entry in [*src.include, *src.exclude]:
            if entry.confidence == "V":
                where = (vs_id, entry.code or entry.prefix)
                assert entry.note and "verify" in entry.note.lower(), where
        n_verify = sum(1 for en in src.include if en.confidence == "V")
        assert len(vs[vs_id].verify_codes) == n_verify


def test_known_verify_codes_are_marked(vs: dict[str, ValueSet]) -> None:
    assert f"{RX}|2119365" in vs["VS-ESKETAMINE"].verify_codes
    assert f"{HCPCS}|S0013" in vs["VS-ESKETAMINE"].verify_codes
    assert f"{LNC}|2118-8" in vs["VS-HCG-QUALITATIVE"].verify_codes
    assert f"{LNC}|21198-7" in vs["VS-HCG-QUANTITATIVE"].verify_codes
    assert f"{LNC}|98979-8" in vs["VS-EGFR"].verify_codes
    assert f"{ICD}|F10.91" in vs["VS-SUD-REMISSION"].verify_codes
    assert f"{ICD}|F10.21" not in vs["VS-SUD-REMISSION"].verify_codes


def test_names_only_on_drug_and_medication_sets(sources: dict[str, ValueSetFile]) -> None:
    for vs_id, src in sources.items():
        if src.names:
            assert vs_id in DRUGS | MEDICATIONS, vs_id
    for vs_id in DRUGS | MEDICATIONS:
        assert sources[vs_id].names, f"{vs_id} needs ingredient/brand names for SCD/SBD codes"


def test_local_codes_are_marked_local(sources: dict[str, ValueSetFile]) -> None:
    for vs_id, src in sources.items():
        for entry in src.include:
            if entry.system.startswith("urn:kap-cds:"):
                assert entry.confidence == "local", (vs_id, entry.code)
            else:
                assert entry.confidence != "local", (vs_id, entry.code)


def test_descriptions_say_what_uses_them(sources: dict[str, ValueSetFile]) -> None:
    for vs_id, src in sources.items():
        assert "KAP-" in src.description or "context" in src.description.lower(), vs_id


def test_valid_systems_only(sources: dict[str, ValueSetFile]) -> None:
    allowed = {
        SCT,
        ICD,
        RX,
        LNC,
        NDC,
        OBS,
        APPT,
        "urn:kap-cds:consent",
        HCPCS,
        V2_0136,
        V3_INTERP,
        CONSENT_SCOPE,
    }
    for vs_id, src in sources.items():
        for entry in [*src.include, *src.exclude]:
            assert entry.system in allowed, (vs_id, entry.system)


# --- malformed files are rejected, naming file and field ------------------------------------------

GOOD_ENTRY = "  - {system: http://loinc.org, code: 8480-6, confidence: K}\n"


def _write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("name", "body", "field"),
    [
        (
            "VS-BAD.yaml",
            "id: VS-BAD\ntitle: t\ndescription: d\ninclude:\n"
            "  - {system: http://loinc.org, code: 8480-6, confidence: X}\n",
            "include.0.confidence",
        ),
        (
            "VS-BAD.yaml",
            "id: VS-BAD\ntitle: t\ndescription: d\ninclude:\n"
            "  - {system: http://hl7.org/fhir/sid/icd-10-cm, code: F31.81, prefix: F31}\n",
            "include.0",
        ),
        ("VS-BAD.yaml", "id: VS-BAD\ntitle: t\ndescription: d\ninclude: []\n", "include"),
        ("VS-BAD.yaml", "id: VS-BAD\ndescription: d\ninclude:\n" + GOOD_ENTRY, "title"),
        (
            "VS-BAD.yaml",
            "id: VS-BAD\ntitle: t\ndescription: d\nsynonyms: [x]\ninclude:\n" + GOOD_ENTRY,
            "synonyms",
        ),
        ("VS-OTHER.yaml", "id: VS-BAD\ntitle: t\ndescription: d\ninclude:\n" + GOOD_ENTRY, "id"),
    ],
)
def test_malformed_file_is_rejected(tmp_path: Path, name: str, body: str, field: str) -> None:
    path = _write(tmp_path, name, body)
    with pytest.raises(RuleLoadError) as info:
        load_valuesets(tmp_path)
    assert info.value.file == str(path)
    assert info.value.field == field
    assert name in str(info.value.detail)


def test_invalid_yaml_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, "VS-BAD.yaml", "id: [unclosed\n")
    with pytest.raises(RuleLoadError) as info:
        load_valuesets(tmp_path)
    assert info.value.file == str(path)
    assert "YAML" in info.value.reason


def test_the_good_minimal_file_loads(tmp_path: Path) -> None:
    _write(tmp_path, "VS-OK.yaml", "id: VS-OK\ntitle: t\ndescription: d\ninclude:\n" + GOOD_ENTRY)
    compiled, _ = load_valuesets(tmp_path)
    assert compiled["VS-OK"].matches_coding(LNC, "8480-6")
