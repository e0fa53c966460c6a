"""The data that crosses from the web layer into the domain, and back.

The web layer gathers FHIR data (prefetch, then the EHR's FHIR server) into ``PatientData``, calls
``Evaluator.evaluate`` and serializes ``Evaluation.cards``. Nothing here knows about HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from cds.hooks.cards import Card

if TYPE_CHECKING:
    from cds.audit.archive import ArchivedInputs


class KeyOutcome(StrEnum):
    """How one prefetch key was satisfied (kept in the audit trail)."""

    prefetched = "prefetched"  # the EHR sent it
    empty = "empty"  # the EHR sent null: "no data", not "missing"
    fetched = "fetched"  # we read it from fhirServer
    failed = "failed"  # OperationOutcome from the EHR, or our fetch failed: data unknown
    missing = "missing"  # not sent and no fhirServer to ask


@dataclass(frozen=True)
class PatientData:
    """Raw FHIR R4 JSON gathered for one request.

    ``resources`` maps resourceType to resources (deduplicated by id); entries of searchset,
    collection and transaction Bundles are flattened into it. ``outcomes`` says, per prefetch key,
    where the data came from; a key that is ``failed`` or ``missing`` means some checks cannot run
    and the evaluation must say so on a card.
    """

    resources: dict[str, list[dict[str, Any]]]
    outcomes: dict[str, KeyOutcome] = field(default_factory=dict)
    # For a key that is failed or missing: why, in words a clinician can read on the data card
    # (no URLs, ids or setting names).
    reasons: dict[str, str] = field(default_factory=dict)

    def of_type(self, resource_type: str) -> list[dict[str, Any]]:
        return self.resources.get(resource_type, [])

    @property
    def unavailable_keys(self) -> tuple[str, ...]:
        bad = (KeyOutcome.failed, KeyOutcome.missing)
        return tuple(k for k, v in self.outcomes.items() if v in bad)


@dataclass(frozen=True)
class FiredRule:
    """One rule that produced a card, with the facts that made it fire (for the audit trail)."""

    rule_id: str
    version: str
    family: str
    indicator: str
    card_uuid: str
    facts: list[dict[str, Any]]
    variant: str = ""


@dataclass(frozen=True)
class Evaluation:
    cards: list[Card]
    fired: list[FiredRule]
    t0: datetime
    kap: bool  # False: not a KAP order/visit; cards is [] and no rule ran
    ruleset_digest: str
    # Shadow rules that would have fired: audited, never in ``cards``.
    shadow: list[FiredRule] = field(default_factory=list)


class Evaluator(Protocol):
    def evaluate(
        self,
        *,
        service_id: str,
        context: dict[str, Any],
        data: PatientData,
        now: datetime,
    ) -> Evaluation: ...


class AuditCaller(Protocol):
    """The verified CDS client of a call (``cds.security.tokens.CdsClient``)."""

    @property
    def iss(self) -> str: ...
    @property
    def sub(self) -> str | None: ...
    @property
    def jti(self) -> str: ...
    @property
    def kid(self) -> str: ...
    @property
    def tenant(self) -> str | None: ...


class AuditSink(Protocol):
    """Where every decision and every feedback item goes (``cds.audit`` implements it).

    Both calls return once the record is durable (synced to the local spool, or written to the
    database), in a millisecond or so: the database being down must not block clinical care.
    When neither can keep it they raise ``cds.errors.AuditUnavailable`` (HTTP 503): a decision
    that is not in the audit trail is not answered. ``caller`` is None in open mode.
    """

    def record_evaluation(
        self,
        *,
        service_id: str,
        hook: str,
        hook_instance: str,
        patient_id: str | None,
        data: PatientData,
        evaluation: Evaluation,
        latency_ms: float,
        caller: AuditCaller | None = None,
        user_id: str | None = None,
        inputs: ArchivedInputs | None = None,
    ) -> None: ...

    def record_feedback(
        self,
        *,
        service_id: str,
        items: list[dict[str, Any]],
        caller: AuditCaller | None = None,
    ) -> None: ...

    def healthy(self) -> bool: ...

    def accepting(self) -> bool:
        """False when a new record could be kept nowhere (``/readyz`` then answers 503)."""
        ...

    def stats(self) -> dict[str, int]: ...

    def close(self) -> None: ...
