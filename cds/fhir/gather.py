"""Turn a CDS Hooks request into ``PatientData``: prefetch first, then the EHR's FHIR server.

Per prefetch key (CDS Hooks 2.0, "Prefetch"): a value is ``prefetched``; ``null`` is ``empty``
("no data", not missing); an OperationOutcome means the EHR failed to fetch it (``failed``); an
absent key is read from ``fhirServer`` (``fetched`` or ``failed``), or is ``missing`` when there is
no server to ask, or none we may contact (not https: then only the prefetch is evaluated). A
required key that is failed or missing raises ``DataUnavailable`` (HTTP 412). Each key not had
carries a reason for the operator's log and one in plain words for the clinician's data card.
No FHIR model validation happens here: the domain validates only what the rules read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from cds.config import Settings
from cds.errors import DataUnavailable
from cds.fhir.bundles import ResourceIndex, is_operation_outcome
from cds.fhir.client import FetchFailed, FhirReader, new_client
from cds.fhir.templates import UnresolvableToken, render
from cds.hooks.models import CdsRequest
from cds.hooks.registry import PrefetchKey, ServiceDescriptor, service_for_hook
from cds.pipeline_types import KeyOutcome, PatientData
from cds.security.fhir_server import may_contact

logger = logging.getLogger(__name__)

Json = dict[str, Any]


@dataclass
class KeyResult:
    """How one key was satisfied. When it was not: ``reason`` for the log (safe: no token, no
    patient data) and ``plain``, the same in a clinician's words, for the data card."""

    outcome: KeyOutcome
    values: list[Json] = field(default_factory=list)
    reason: str = ""
    plain: str = ""


async def gather(
    request: CdsRequest,
    settings: Settings,
    *,
    service: ServiceDescriptor | None = None,
    context: Json | None = None,
    client: httpx.AsyncClient | None = None,
) -> PatientData:
    """Gather the data of one request. ``context`` defaults to ``request.context`` (pass the
    normalized one); ``client`` is the shared HTTP client, or a fresh one is opened."""
    service = service or service_for_hook(request.hook)
    context = request.context if context is None else context
    results = from_prefetch(request, service)
    absent = absent_keys(service, results)
    results |= await fetch_absent(absent, request, context, settings, client)
    return assemble(request, service, context, results)


def from_prefetch(request: CdsRequest, service: ServiceDescriptor) -> dict[str, KeyResult]:
    """What the prefetch says for each of the service's keys it carries (no I/O)."""
    prefetch = request.prefetch or {}
    return {
        k.name: _from_prefetch(prefetch[k.name]) for k in service.prefetch if k.name in prefetch
    }


def absent_keys(service: ServiceDescriptor, results: dict[str, KeyResult]) -> list[PrefetchKey]:
    return [k for k in service.prefetch if k.name not in results]


def without_reads(
    keys: list[PrefetchKey], request: CdsRequest, settings: Settings
) -> dict[str, KeyResult] | None:
    """The outcome of absent keys when no FHIR read is needed to know it (no key absent, no
    server to ask, or one we may not contact); None when they must be read."""
    if not keys or request.fhirServer is None or not may_contact(request.fhirServer, settings):
        return _unreadable(keys, request)
    return None


def assemble(
    request: CdsRequest, service: ServiceDescriptor, context: Json, results: dict[str, KeyResult]
) -> PatientData:
    """Every key accounted for -> the request's data (412 when a required key is not had).
    CPU-bound for a large prefetch: the web layer runs it off the event loop."""
    _require(service, results)
    return PatientData(
        resources=_index(context, request.prefetch or {}, service, results).as_dict(),
        outcomes={k.name: results[k.name].outcome for k in service.prefetch},
        reasons={name: result.plain for name, result in results.items() if result.plain},
    )


def gather_sync(
    request: CdsRequest, settings: Settings, *, service: ServiceDescriptor | None = None
) -> PatientData:
    """``gather`` for synchronous callers (the CLI): runs its own event loop."""
    return asyncio.run(gather(request, settings, service=service))


def _from_prefetch(value: Json | None) -> KeyResult:
    if value is None:
        return KeyResult(KeyOutcome.empty, reason="the prefetch value is null")
    if is_operation_outcome(value):
        return KeyResult(
            KeyOutcome.failed,
            reason="the EHR sent an OperationOutcome instead",
            plain="the EHR reported that it could not retrieve them",
        )
    return KeyResult(KeyOutcome.prefetched, [value])


def _index(
    context: Json,
    prefetch: dict[str, Json | None],
    service: ServiceDescriptor,
    results: dict[str, KeyResult],
) -> ResourceIndex:
    """Context resources first (a draft order is newer than any copy a search returns), then the
    templated keys, then extra prefetch values such as a full patient Bundle."""
    index = ResourceIndex()
    for value in context.values():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            index.add(value)
    for result in results.values():
        for value in result.values:
            index.add(value)
    for name, value in prefetch.items():
        if service.key(name) is None and value is not None:
            index.add(value)
    return index


def _require(service: ServiceDescriptor, results: dict[str, KeyResult]) -> None:
    # "No data" is fine for an optional key, but a required one (the patient) must exist: a
    # patient the EHR does not have cannot be evaluated (HTTP 412, not cards about nobody).
    unavailable = (KeyOutcome.failed, KeyOutcome.missing, KeyOutcome.empty)
    missing = [k for k in sorted(service.required_keys) if results[k].outcome in unavailable]
    if missing:
        reasons = "; ".join(f"{k}: {results[k].reason}" for k in missing)
        raise DataUnavailable(f"required data unavailable ({reasons})", missing=missing)


async def fetch_absent(
    keys: list[PrefetchKey],
    request: CdsRequest,
    context: Json,
    settings: Settings,
    client: httpx.AsyncClient | None,
) -> dict[str, KeyResult]:
    """The absent keys read from the EHR's FHIR server (the fallback, CDS Hooks 2.0), or their
    outcome without a read when there is no server we may contact."""
    known, server = without_reads(keys, request, settings), request.fhirServer
    if known is not None or server is None:
        return known or {}
    if client is not None:
        return await _fetch_keys(
            keys, FhirReader(client, server, request.access_token, settings), context, settings
        )
    async with new_client(settings) as own_client:
        reader = FhirReader(own_client, server, request.access_token, settings)
        return await _fetch_keys(keys, reader, context, settings)


def _unreadable(keys: list[PrefetchKey], request: CdsRequest) -> dict[str, KeyResult]:
    if not keys:
        return {}
    if request.fhirServer is None:
        return _all(
            keys,
            KeyOutcome.missing,
            "not in prefetch and no fhirServer to read it from",
            "not sent by the EHR, and the EHR named no FHIR server to read them from",
        )
    # The prefetch is still evaluated; only the reads (which carry the token) are skipped.
    logger.warning("fhirServer is not https: %d prefetch keys not fetched", len(keys))
    return _all(
        keys,
        KeyOutcome.failed,
        "fhirServer is not https, so it was not read",
        "not sent by the EHR, and its FHIR server was not contacted because its address "
        "is not secure (http, not https)",
    )


def _all(
    keys: Iterable[PrefetchKey], outcome: KeyOutcome, reason: str, plain: str
) -> dict[str, KeyResult]:
    return {k.name: KeyResult(outcome, reason=reason, plain=plain) for k in keys}


async def _fetch_keys(
    keys: list[PrefetchKey], reader: FhirReader, context: Json, settings: Settings
) -> dict[str, KeyResult]:
    """All absent keys concurrently; the whole fallback takes at most fhir_timeout_seconds."""
    results = await asyncio.gather(
        *(_fetch_key(k, reader, context, settings.fhir_timeout_seconds) for k in keys)
    )
    return dict(zip((k.name for k in keys), results, strict=True))


async def _fetch_key(
    key: PrefetchKey, reader: FhirReader, context: Json, deadline: float
) -> KeyResult:
    try:
        query = render(key.template, context)
    except UnresolvableToken as exc:
        return KeyResult(
            KeyOutcome.missing,
            reason=f"the request has no value for {{{{{exc}}}}}",
            plain="the request did not say which record to read",
        )
    try:
        async with asyncio.timeout(deadline):
            fetched = await reader.read(query)
    except (FetchFailed, httpx.HTTPError, httpx.InvalidURL, TimeoutError) as exc:
        reason = str(exc) if isinstance(exc, FetchFailed) else _http_reason(exc)
        # Key name and reason only: the URL holds patient ids, the headers hold the token.
        logger.warning("prefetch key %s could not be read from fhirServer: %s", key.name, reason)
        return KeyResult(KeyOutcome.failed, reason=reason, plain=_plain_failure(exc))
    if not fetched.complete:
        logger.warning("prefetch key %s has more than fhir_max_pages pages", key.name)
        return KeyResult(
            KeyOutcome.failed,
            fetched.values,
            "more pages than fhir_max_pages",
            "the EHR's FHIR server holds more of them than the service reads in one request",
        )
    if not fetched.values:  # a read of a resource the server does not have
        return KeyResult(KeyOutcome.empty, reason="the FHIR server does not have it")
    return KeyResult(KeyOutcome.fetched, fetched.values)


def _plain_failure(exc: Exception) -> str:
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return "the EHR's FHIR server did not answer in time"
    if isinstance(exc, FetchFailed):
        return "the EHR's FHIR server did not give a usable answer"
    return "the EHR's FHIR server could not be reached"


def _http_reason(exc: Exception) -> str:
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return "FHIR server did not answer in time"
    return f"FHIR server unreachable ({type(exc).__name__})"
