"""Requests built from the real third-party bundles in ``../shared/fhir/third-party`` (read in
place, never copied into the repository): each bundle's resources become the patient's data,
split into the ``kap-order-sign`` prefetch keys as an EHR would send them, with a draft IV
ketamine order. Resource types no key asks for (Claim, ExplanationOfBenefit, Immunization...)
are left out, and counted."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.synthetic import ketamine_order, order_sign_request, resource_count, split_prefetch
from cds.fhir.bundles import bundle_resources

Json = dict[str, Any]

# ../shared beside the repository, or KAP_CDS_SHARED_DIR (the same rule as tests/shared_data.py).
SHARED_DIR = Path(
    os.environ.get("KAP_CDS_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared")
)
DEFAULT_DIR = SHARED_DIR / "fhir" / "third-party"
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@dataclass(frozen=True)
class ThirdPartyCase:
    name: str
    request: Json
    bundle_resources: int  # resources in the source bundle
    sent_resources: int  # resources in the prefetch


def third_party_dir() -> Path:
    """``../shared/fhir/third-party`` beside the repository (or under ``KAP_CDS_SHARED_DIR``)."""
    return DEFAULT_DIR


def load_cases(directory: Path | None = None) -> list[ThirdPartyCase]:
    directory = directory or third_party_dir()
    return [_case(path) for path in sorted(directory.glob("*.json"))]


def _case(path: Path) -> ThirdPartyCase:
    bundle: Json = orjson.loads(path.read_bytes())
    resources = _flatten(bundle)
    patient_id = _patient_id(resources)
    request = order_sign_request(ketamine_order(patient_id), split_prefetch(resources), patient_id)
    name = path.name.removesuffix(".json").removesuffix(".fhir")
    return ThirdPartyCase(name[:40], request, len(resources), resource_count(request))


def _flatten(bundle: Json, depth: int = 0) -> list[Json]:
    resources: list[Json] = []
    for resource in bundle_resources(bundle):
        if resource.get("resourceType") == "Bundle" and depth < 3:
            resources += _flatten(resource, depth + 1)
        else:
            resources.append(resource)
    return resources


def _patient_id(resources: list[Json]) -> str:
    for resource in resources:
        if resource.get("resourceType") == "Patient":
            value = str(resource.get("id") or "")
            if _FHIR_ID.match(value):
                return value
    return "third-party-patient"
