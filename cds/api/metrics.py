"""Prometheus metrics: request counts and latency per service id, refused tokens by reason, FHIR
fallback reads by prefetch key, cards by rule (never patient data in labels; every label comes
from a closed set: service ids, reason codes, prefetch keys, rule ids of the loaded rule set).

Each app gets its own registry, so several apps (tests) can live in one process. With several
uvicorn workers each process reports its own numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from time import perf_counter

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from cds.hooks.registry import SERVICES, SERVICES_BY_ID
from cds.security.refusals import REASON_CODES

PREFETCH_KEYS = frozenset(key.name for descriptor in SERVICES for key in descriptor.prefetch)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# The spec asks for ~500 ms; we aim at 5 ms, so the buckets are fine-grained at the low end.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class Observation:
    """Filled in by the route: ``outcome`` is evaluated, not_kap or error."""

    outcome: str = "evaluated"
    status: int = 200


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "kap_cds_service_requests",
            "CDS service calls by service, HTTP status and outcome",
            ["service", "status", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "kap_cds_service_latency_seconds",
            "CDS service call latency by service",
            ["service"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.auth_refusals = Counter(
            "kap_cds_auth_refusals",
            "Refused CDS Hooks JWTs (HTTP 401) by reason",
            ["reason"],
            registry=self.registry,
        )
        self.fhir_fallbacks = Counter(
            "kap_cds_fhir_fallback_reads",
            "Prefetch keys read from the EHR's fhirServer, by key and outcome",
            ["key", "outcome"],
            registry=self.registry,
        )
        self.cards = Counter(
            "kap_cds_rule_cards",
            "Cards by rule: fired, and feedback accepted or overridden",
            ["rule", "event"],
            registry=self.registry,
        )

        self.rate_limited = Counter(
            "kap_cds_rate_limited",
            "Calls refused with 429 by the per-issuer rate limit",
            ["issuer"],
            registry=self.registry,
        )

    def rate_limited_call(self, issuer: str) -> None:
        # Issuers are the configured trusted ones (verified before counting): a bounded set.
        self.rate_limited.labels(issuer).inc()

    @contextmanager
    def track(self, service_id: str) -> Iterator[Observation]:
        """Count and time one call; an exception is counted with its HTTP status."""
        # Only known ids become labels: an attacker must not be able to grow the label set.
        label = service_id if service_id in SERVICES_BY_ID else "unknown"
        observation = Observation()
        started = perf_counter()
        try:
            yield observation
        except Exception as exc:
            observation.outcome = "error"
            observation.status = getattr(exc, "http_status", 500)
            raise
        finally:
            self.requests.labels(label, str(observation.status), observation.outcome).inc()
            self.latency.labels(label).observe(perf_counter() - started)

    def auth_refused(self, reason_code: str) -> None:
        self.auth_refusals.labels(reason_code if reason_code in REASON_CODES else "other").inc()

    def fhir_fallback(self, key: str, outcome: str) -> None:
        self.fhir_fallbacks.labels(key if key in PREFETCH_KEYS else "other", outcome).inc()

    def card_event(self, rule_id: str, event: str) -> None:
        self.cards.labels(rule_id, event).inc()

    def watch_calls_in_progress(self, read: Callable[[], float]) -> None:
        gauge = Gauge(
            "kap_cds_calls_in_progress",
            "CDS calls admitted and not yet finished (their work may outlive a timed-out answer)",
            registry=self.registry,
        )
        gauge.set_function(read)

    def render(self) -> bytes:
        return generate_latest(self.registry)
