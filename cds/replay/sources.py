"""Where replay inputs come from: the encrypted archive, the rule fixtures, real FHIR bundles.

Every input carries a label a reviewer can follow up (an audit evaluation id, a fixture name, a
bundle number), never a patient identifier: replay reports are shared in review meetings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from cds.audit.archive import ArchiveCipher, read_archive
from cds.config import Settings
from cds.fhir.gather import gather_sync
from cds.hooks.models import CdsRequest
from cds.pipeline_types import KeyOutcome, PatientData
from cds.ruleset.cases import Case, build_request, case_now, load_cases


@dataclass(frozen=True)
class ReplayInput:
    label: str
    service_id: str
    context: dict[str, Any]
    data: PatientData
    now: datetime


def archived_inputs(
    engine: Engine, cipher: ArchiveCipher, since: datetime | None
) -> Iterator[ReplayInput]:
    for row in read_archive(engine, cipher, since):
        inputs = row.inputs
        yield ReplayInput(
            label=f"audit evaluation {row.evaluation_id} ({inputs.service_id}, "
            f"{row.recorded_at:%Y-%m-%d %H:%M} UTC)",
            service_id=inputs.service_id,
            context=inputs.context,
            data=PatientData(
                inputs.resources, {k: KeyOutcome(v) for k, v in inputs.outcomes.items()}
            ),
            now=inputs.now,
        )


def fixture_inputs(examples_dir: Path, settings: Settings) -> Iterator[ReplayInput]:
    """Every rule fixture (fhir_examples/cases), gathered as the service would gather it."""
    for loaded in load_cases(examples_dir):
        yield _from_request(
            f"fixture {loaded.rule_id}/{loaded.name}",
            loaded.case.service,
            build_request(loaded.case, examples_dir),
            case_now(loaded.case),
            settings,
        )


# A first KAP order for each real chart: the situation where alert burden is felt most.
THIRD_PARTY_ORDERS = (("kap-order-sign", "ketamine-iv"), ("kap-order-sign", "esketamine-56"))


def third_party_inputs(
    bundles_dir: Path, examples_dir: Path, settings: Settings
) -> Iterator[ReplayInput]:
    """Each real bundle (Synthea, vendor examples) with a ketamine and an esketamine order."""
    bundles = sorted(bundles_dir.glob("*.json")) if bundles_dir.is_dir() else []
    for number, path in enumerate(bundles, start=1):
        resources = _bundle_resources(path)
        for service_id, order in THIRD_PARTY_ORDERS:
            case = Case(description=path.name, patient=None, order=order, resources=resources)
            yield _from_request(
                f"third-party bundle {number} of {len(bundles)} ({order} order)",
                service_id,
                build_request(case, examples_dir),
                case_now(case),
                settings,
            )


def _bundle_resources(path: Path) -> list[dict[str, Any]]:
    bundle = json.loads(path.read_text(encoding="utf-8"))
    return [e["resource"] for e in bundle.get("entry", []) if "resource" in e]


def _from_request(
    label: str, service_id: str, raw: dict[str, Any], now: datetime, settings: Settings
) -> ReplayInput:
    request = CdsRequest.model_validate(raw)
    return ReplayInput(
        label, service_id, dict(request.context), gather_sync(request, settings), now
    )
