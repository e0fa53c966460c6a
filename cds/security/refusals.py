"""Refused tokens, made visible to an operator: one WARNING line per refusal with its reason,
throttled per reason so a flood cannot fill the disk, and a bounded reason code for metrics.

The token itself is never logged; ``iss`` and ``kid`` are logged as the token claims them
(unverified, quoted and truncated), because "which EHR and which key" is what an integrator
needs to fix a wrong-key or wrong-audience setup.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("cds.security.auth")

# Reason text (TokenRejected.reason, or PyJWT's exception name) -> (metric label, log text).
# Checked in order, by prefix; the label set is closed so Prometheus series stay bounded.
_REASONS: tuple[tuple[str, str, str], ...] = (
    ("no bearer token", "no_token", "no bearer token"),
    ("malformed", "malformed", "malformed token"),
    ("alg differs", "alg_mismatch", "alg differs from the key's alg"),
    ("alg ", "alg_not_allowed", "signing algorithm not allowed"),
    ("no kid", "no_kid", "no kid in the header"),
    ("typ ", "bad_typ", "typ is not JWT"),
    ("issuer not trusted", "untrusted_issuer", "issuer not trusted"),
    ("tenant", "tenant_not_allowed", "tenant not allowed for this issuer"),
    ("jku", "jku_not_allowed", "jku not allowed for this issuer"),
    ("unknown kid", "unknown_kid", "unknown kid (no such key in the issuer's key set)"),
    ("bad signature", "bad_signature", "bad signature (signed with another key)"),
    ("ExpiredSignatureError", "expired", "expired"),
    ("ImmatureSignatureError", "not_yet_valid", "not valid yet (nbf/iat in the future)"),
    ("InvalidAudienceError", "wrong_audience", "wrong audience (aud is not this service's URL)"),
    ("MissingRequiredClaimError", "missing_claim", "a required claim is missing"),
    ("InvalidIssuedAtError", "bad_iat", "iat is not a valid time"),
    ("InvalidIssuerError", "untrusted_issuer", "issuer not trusted"),
    ("exp/iat", "bad_time_claims", "exp/iat not NumericDate"),
    ("lifetime", "lifetime_too_long", "token lifetime too long"),
    ("jti", "bad_jti", "jti missing or not a string"),
    ("replayed", "replay", "replayed jti (token used twice)"),
)
REASON_CODES = frozenset(code for _, code, _ in _REASONS) | {"other"}


def classify(reason: str) -> tuple[str, str]:
    """(metric label, operator text) for a refusal reason: our own reasons are already plain
    words; PyJWT's ("ExpiredSignatureError: Signature has expired") get a plain name first."""
    for prefix, code, text in _REASONS:
        if reason.startswith(prefix):
            if prefix.endswith("Error"):
                return code, f"{text}: {reason.partition(': ')[2]}".rstrip(": ")
            return code, reason[:160]
    return "other", reason[:160]


@dataclass
class _Bucket:
    tokens: float
    updated: float
    suppressed: int = 0


@dataclass
class RefusalLog:
    """Logs each refusal at WARNING; per reason, ``burst`` lines at once and then ``per_minute``.

    The first refusal of every reason is always logged (that is the one an integrator needs);
    the count of lines held back is reported in the next line of that reason.
    """

    burst: int = 10
    per_minute: float = 6.0
    clock: Callable[[], float] = time.monotonic
    on_refusal: Callable[[str], None] | None = None
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def refused(self, reason: str, *, iss: Any, kid: Any, path: str) -> None:
        code, text = classify(reason)
        if self.on_refusal is not None:
            self.on_refusal(code)
        suppressed = self._take(code)
        if suppressed is None:
            return
        logger.warning(
            "JWT refused: reason=%s code=%s iss=%s kid=%s path=%s%s",
            text,
            code,
            safe(iss),
            safe(kid),
            safe(path),
            f" ({suppressed} more refusals of this kind not logged)" if suppressed else "",
        )

    def _take(self, code: str) -> int | None:
        """How many lines were held back since the last one, or None to hold this one back."""
        now = self.clock()
        with self._lock:
            bucket = self._buckets.setdefault(code, _Bucket(float(self.burst), now))
            bucket.tokens = min(
                float(self.burst), bucket.tokens + (now - bucket.updated) * self.per_minute / 60
            )
            bucket.updated = now
            if bucket.tokens < 1:
                bucket.suppressed += 1
                return None
            bucket.tokens -= 1
            suppressed, bucket.suppressed = bucket.suppressed, 0
            return suppressed


def safe(value: Any) -> str:
    """A claimed (unverified) value, made safe for one log line: quoted, escaped, truncated."""
    if value is None:
        return "-"
    return repr(value if isinstance(value, str) else type(value).__name__)[:100]
