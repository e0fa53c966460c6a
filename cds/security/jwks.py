"""The public keys of a trusted issuer: inline in the settings, or fetched from its JWKS URL.

Only URLs from the settings are ever fetched (never a token's ``jku``). A fetched key set is
cached; an unknown ``kid`` triggers one refresh (key rotation at the issuer), and refreshes are at
least ``min_refresh_seconds`` apart so that tokens with made-up ``kid`` values cannot turn us
into a request generator against the issuer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt import PyJWK, PyJWTError

logger = logging.getLogger(__name__)

PublicKey = RSAPublicKey | EllipticCurvePublicKey

FETCH_TIMEOUT_SECONDS = 3.0
MIN_REFRESH_SECONDS = 30.0
MAX_AGE_SECONDS = 3600.0
MAX_JWKS_BYTES = 256 * 1024
MIN_RSA_BITS = 2048  # NIST SP 800-131A
# Symmetric ("oct") keys are never acceptable (CDS Hooks forbids HMAC); OKP (EdDSA) is not on
# our algorithm allowlist.
_KEY_TYPES = {"RSA", "EC"}


@dataclass(frozen=True)
class VerificationKey:
    kid: str
    key: PublicKey
    # The JWK's own "alg" when it states one: a token must then use exactly that algorithm.
    alg: str | None


class KeySource(Protocol):
    async def get(self, kid: str) -> VerificationKey | None: ...


def parse_jwks(document: Any, source: str) -> dict[str, VerificationKey]:
    """The usable signature keys of a JWK Set by ``kid``; unusable members are logged, skipped."""
    members = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(members, list):
        logger.warning("JWKS from %s has no 'keys' list", source)
        return {}
    keys: dict[str, VerificationKey] = {}
    for member in members:
        parsed = _parse_key(member, source)
        if parsed is not None:
            keys[parsed.kid] = parsed
    return keys


def _parse_key(member: Any, source: str) -> VerificationKey | None:
    if not isinstance(member, dict):
        return None
    kid = member.get("kid")
    reason = _unusable_reason(member, kid)
    if reason is None:
        try:
            key = PyJWK(member).key
        except (PyJWTError, ValueError, TypeError):
            reason = "malformed key"
        else:
            reason = _weak_key_reason(key)
            if reason is None and isinstance(key, PublicKey):
                alg = member.get("alg")
                return VerificationKey(str(kid), key, alg if isinstance(alg, str) else None)
    logger.warning("JWKS from %s: key kid=%.80r skipped (%s)", source, kid, reason)
    return None


def _unusable_reason(member: dict[str, Any], kid: Any) -> str | None:
    if not isinstance(kid, str) or not kid:
        return "no kid"
    if member.get("kty") not in _KEY_TYPES:
        return "key type not allowed"
    if member.get("use", "sig") != "sig":
        return "not a signature key"
    if "d" in member:
        # A private key published by mistake: refuse it loudly rather than use it.
        return "private key material"
    return None


def _weak_key_reason(key: Any) -> str | None:
    if not isinstance(key, PublicKey):
        return "not a public key"
    if isinstance(key, RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return f"RSA key under {MIN_RSA_BITS} bits"
    return None


class StaticKeys:
    """Keys given inline in the settings (``TrustedIssuer.jwks``)."""

    def __init__(self, document: dict[str, Any], source: str) -> None:
        self._keys = parse_jwks(document, source)
        if not self._keys:
            logger.warning("trusted issuer %s has no usable inline key", source)

    async def get(self, kid: str) -> VerificationKey | None:
        return self._keys.get(kid)


class RemoteJwks:
    """Keys fetched from a configured JWKS URL, cached and refreshed with a rate limit."""

    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float = FETCH_TIMEOUT_SECONDS,
        min_refresh_seconds: float = MIN_REFRESH_SECONDS,
        max_age_seconds: float = MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.timeout_seconds = timeout_seconds
        self.min_refresh_seconds = min_refresh_seconds
        self.max_age_seconds = max_age_seconds
        self._clock = clock
        self._keys: dict[str, VerificationKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()

    async def get(self, kid: str) -> VerificationKey | None:
        if self._is_stale():
            await self._refresh()
        key = self._keys.get(kid)
        if key is None:
            # Perhaps the issuer rotated its keys since our last fetch.
            await self._refresh()
            key = self._keys.get(kid)
        return key

    def _is_stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at > self.max_age_seconds

    def _may_fetch(self) -> bool:
        return (
            self._attempted_at is None
            or self._clock() - self._attempted_at >= self.min_refresh_seconds
        )

    async def _refresh(self) -> None:
        # Concurrent callers queue on the lock; once one has fetched, the others find the rate
        # limit closed and use its result, so a burst of unknown kids costs at most one fetch.
        async with self._lock:
            if not self._may_fetch():
                return
            self._attempted_at = self._clock()
            try:
                document = await self._fetch()
            except (httpx.HTTPError, TimeoutError, ValueError) as error:
                # Keep the keys we have: an issuer outage must not lock out tokens we can verify.
                logger.warning("JWKS fetch from %s failed: %s", self.url, type(error).__name__)
                return
            self._keys = parse_jwks(document, self.url)
            self._fetched_at = self._clock()
            logger.info("JWKS from %s loaded: %d key(s)", self.url, len(self._keys))

    async def _fetch(self) -> Any:
        # httpx's timeout bounds each network step; asyncio.timeout bounds the whole fetch.
        async with (
            asyncio.timeout(self.timeout_seconds),
            httpx.AsyncClient(timeout=self.timeout_seconds, follow_redirects=False) as client,
            client.stream("GET", self.url, headers={"Accept": "application/json"}) as response,
        ):
            response.raise_for_status()
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise ValueError("JWKS document too large")
        return json.loads(body)
