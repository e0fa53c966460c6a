"""Audit records as plain JSON-able dicts: what goes into the spool, one per line.

Built on the request thread, so they copy only what the audit needs and do no I/O. The raw
request (and with it the access token and the JWT) never reaches this module: callers pass the
decoded fields one by one.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Any

from cds.hooks.cards import RULE_EXTENSION, Card
from cds.pipeline_types import AuditCaller as Caller
from cds.pipeline_types import Evaluation, FiredRule, PatientData

EVALUATION = "evaluation"
FEEDBACK = "feedback"
QUARANTINE = "quarantine"
_INT64 = 2**63


def caller_fields(caller: Caller | None) -> dict[str, str | None]:
    """``caller_iss`` ... ``caller_tenant``; all None for calls made in open mode."""
    names = ("iss", "sub", "jti", "kid", "tenant")
    return {f"caller_{n}": getattr(caller, n) if caller is not None else None for n in names}


def escaped(value: Any) -> Any:
    """The record with every value the stores cannot take turned into text, not dropped.

    PostgreSQL refuses NUL in text and in JSONB (``\\u0000``): it is kept as the six characters
    ``\\u0000``. Lone surrogates (not UTF-8) become ``\\udXXX`` escapes. Integers beyond 64 bits
    (orjson's limit) and non-finite floats are kept as their decimal text.
    """
    if isinstance(value, str):
        return _escaped_text(value)
    if isinstance(value, dict):
        return {_escaped_text(str(k)): escaped(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [escaped(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int) and not -_INT64 <= value < _INT64:
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _escaped_text(text: str) -> str:
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def evaluation_record(
    *,
    service_id: str,
    hook: str,
    hook_instance: str,
    patient_id: str | None,
    data: PatientData,
    evaluation: Evaluation,
    latency_ms: float,
    sealed_inputs: tuple[str, str] | None = None,
    caller: Caller | None = None,
    user_id: str | None = None,
) -> dict[str, Any]:
    """``sealed_inputs`` is (key id, Fernet token) when the input archive is on."""
    record = {
        "kind": EVALUATION,
        "id": str(uuid.uuid4()),
        "recorded_at": datetime.now(UTC).isoformat(),
        "service_id": service_id,
        "hook": hook,
        "hook_instance": hook_instance,
        "patient_id": patient_id,
        "ruleset_digest": evaluation.ruleset_digest,
        "t0": evaluation.t0.isoformat() if evaluation.t0 else None,
        "kap": evaluation.kap,
        "latency_ms": float(latency_ms),
        "data_outcomes": {key: outcome.value for key, outcome in data.outcomes.items()},
        "cards": _card_entries(evaluation),
        "shadow": [_fired_only_entry(rule) for rule in evaluation.shadow],
        **caller_fields(caller),
        "user_id": user_id,
    }
    if sealed_inputs is not None:
        record["archive"] = {"key_id": sealed_inputs[0], "token": sealed_inputs[1]}
    return record


def _card_entries(evaluation: Evaluation) -> list[dict[str, Any]]:
    """One entry per rule per card, joined by card uuid: a readiness checklist card gives one
    entry for each rule it lists (in line order), so each is audited as fired.

    A fired rule whose card is absent from the response is still recorded: the trail must show
    every rule that fired, even if a later step dropped its card.
    """
    by_card: dict[str, list[FiredRule]] = {}
    for rule in evaluation.fired:
        by_card.setdefault(rule.card_uuid, []).append(rule)
    entries: list[dict[str, Any]] = []
    for card in evaluation.cards:
        rules = by_card.pop(card.uuid, [])
        if rules:
            entries.extend(_rule_entry(rule, card.summary) for rule in rules)
        else:
            entries.append(_unmatched_card_entry(card))
    entries.extend(_rule_entry(rule, None) for rules in by_card.values() for rule in rules)
    return entries


def _rule_entry(rule: FiredRule, summary: str | None) -> dict[str, Any]:
    return {
        "card_uuid": rule.card_uuid,
        "rule_id": rule.rule_id,
        "rule_version": rule.version,
        "variant": rule.variant or None,
        "family": rule.family,
        "indicator": rule.indicator,  # the rule's own line on a checklist card
        "summary": summary,
        "facts": rule.facts,
    }


def _unmatched_card_entry(card: Card) -> dict[str, Any]:
    ext = (card.extension or {}).get(RULE_EXTENSION) or {}
    return {
        "card_uuid": card.uuid,
        "rule_id": str(ext.get("id", "")),
        "rule_version": str(ext.get("version", "")),
        "variant": ext.get("variant"),
        "family": str(ext.get("family", "")),
        "indicator": card.indicator.value,
        "summary": card.summary,
        "facts": [],
    }


def feedback_records(
    *, service_id: str, items: list[dict[str, Any]], caller: Caller | None = None
) -> list[dict[str, Any]]:
    received_at = datetime.now(UTC).isoformat()
    who = caller_fields(caller)
    return [{**_feedback_record(service_id, received_at, item), **who} for item in items]


def _feedback_record(service_id: str, received_at: str, item: dict[str, Any]) -> dict[str, Any]:
    override = item.get("overrideReason") or {}
    reason = override.get("reason") or {}
    accepted = item.get("acceptedSuggestions") or []
    return {
        "kind": FEEDBACK,
        "id": str(uuid.uuid4()),
        "received_at": received_at,
        "service_id": service_id,
        "card_uuid": str(item.get("card", "")),
        "outcome": str(item.get("outcome", "")),
        "accepted_suggestions": [str(s.get("id")) for s in accepted if isinstance(s, dict)],
        "override_system": reason.get("system"),
        "override_code": reason.get("code"),
        "override_display": reason.get("display"),
        "user_comment": override.get("userComment"),
        # Kept as the EHR sent it; parsed when written (a bad value must not cost the item).
        "outcome_timestamp": item.get("outcomeTimestamp"),
    }


def _fired_only_entry(rule: FiredRule) -> dict[str, Any]:
    """A shadow rule's would-have-fired entry (audit_shadow_firing has no variant column)."""
    return {
        "card_uuid": rule.card_uuid,
        "rule_id": rule.rule_id,
        "rule_version": rule.version,
        "family": rule.family,
        "indicator": rule.indicator,
        "summary": None,
        "facts": rule.facts,
    }
