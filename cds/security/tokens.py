"""CDS Hooks client JWT verification (CDS Hooks 2.0, "Trusting CDS Clients"), with PyJWT.

Order of checks: header (algorithm allowlist, ``kid``, ``typ``) → ``iss`` on the allowlist →
``jku`` acceptable for that issuer → key by ``kid`` → signature, ``aud``, ``exp``, ``iat``, ``nbf``
and required claims (PyJWT) → token lifetime → ``tenant`` → ``jti`` not seen before. The replay
cache comes last so that only fully verified tokens consume a ``jti``.

The ``jku`` rule: the keys that verify a token always come from the settings (``jwks_url`` or
inline ``jwks``); a token's ``jku`` is never fetched, it is only checked for consistency. It is
accepted when it is the issuer's ``jwks_url``, or one of its ``allowed_jku``. An issuer with
pinned inline keys and no ``allowed_jku`` accepts a ``jku`` on the issuer's own https origin
(the CDS Hooks sandbox names ``https://sandbox.cds-hooks.org/.well-known/jwks.json``): the
pinned keys still decide, so naming the issuer's own published set gains an attacker nothing.
Anything else is refused as suspicious: an honest client names its own key set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jwt

from cds.config import Settings, TrustedIssuer
from cds.security.jwks import KeySource, RemoteJwks, StaticKeys, VerificationKey
from cds.security.replay import JtiReplayCache

logger = logging.getLogger(__name__)

# CDS Hooks: ES384 and RS384 recommended; "none" and every HMAC algorithm are forbidden. HMAC is
# also what the key-confusion attack needs (HS256 "signed" with our RSA public key as secret).
ALLOWED_ALGORITHMS = frozenset({"ES384", "RS384", "ES256", "RS256", "PS384"})
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "jti")


class TokenRejected(Exception):
    """Why a token was refused, for the log only. ``iss`` and ``kid`` are as the token claims
    them (unverified). ``suspicious`` marks reasons an honest client does not produce."""

    def __init__(
        self, reason: str, *, iss: Any = None, kid: Any = None, suspicious: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.iss = iss
        self.kid = kid
        self.suspicious = suspicious


@dataclass(frozen=True)
class CdsClient:
    """The verified caller: what the audit trail and the rules may rely on."""

    iss: str
    jti: str
    kid: str
    tenant: str | None = None
    sub: str | None = None
    claims: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class _Trust:
    """One ``trusted_issuers`` entry, resolved."""

    iss: str
    tenant: str | None
    jwks_url: str | None
    keys: KeySource
    allowed_jku: frozenset[str] = frozenset()

    def accepts_jku(self, jku: Any) -> bool:
        if not isinstance(jku, str):
            return False
        if jku == self.jwks_url or jku in self.allowed_jku:
            return True
        pinned_without_list = self.jwks_url is None and not self.allowed_jku
        return pinned_without_list and _same_https_origin(jku, self.iss)


class TokenVerifier:
    def __init__(
        self,
        trusts: list[_Trust],
        *,
        clock_skew_seconds: int,
        max_lifetime_seconds: int,
        replay_cache: JtiReplayCache | None = None,
    ) -> None:
        self._trusts: dict[str, list[_Trust]] = {}
        for trust in trusts:
            self._trusts.setdefault(trust.iss, []).append(trust)
        self.clock_skew_seconds = clock_skew_seconds
        self.max_lifetime_seconds = max_lifetime_seconds
        self.replay_cache = replay_cache if replay_cache is not None else JtiReplayCache()

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        # One cache per JWKS URL: several tenants of one EHR vendor often share it.
        remote: dict[str, RemoteJwks] = {}
        trusts = [_resolve(issuer, remote) for issuer in settings.trusted_issuers]
        return cls(
            trusts,
            clock_skew_seconds=settings.jwt_clock_skew_seconds,
            max_lifetime_seconds=settings.jwt_max_lifetime_seconds,
        )

    def key_sources(self) -> list[KeySource]:
        return [trust.keys for trusts in self._trusts.values() for trust in trusts]

    async def verify(self, token: str, audience: str) -> CdsClient:
        """The verified client, or ``TokenRejected`` (``audience``: the exact URL called)."""
        header = _checked_header(token)
        kid: str = header["kid"]
        unverified = _unverified_claims(token, kid)
        iss = unverified.get("iss")
        trust = self._trust_for(iss, unverified.get("tenant"), kid)
        key = await self._key_for(trust, header, kid)
        claims = self._decode(token, key, header["alg"], audience, trust)
        return self._accept(claims, trust, kid)

    def _trust_for(self, iss: Any, tenant: Any, kid: str) -> _Trust:
        candidates = self._trusts.get(iss) if isinstance(iss, str) else None
        if not candidates:
            raise TokenRejected("issuer not trusted", iss=iss, kid=kid)
        for trust in candidates:
            if trust.tenant is not None and trust.tenant == tenant:
                return trust
        for trust in candidates:
            if trust.tenant is None:
                return trust
        raise TokenRejected("tenant not allowed for this issuer", iss=iss, kid=kid)

    async def _key_for(self, trust: _Trust, header: dict[str, Any], kid: str) -> VerificationKey:
        # jku is never followed (that would let the token choose the key that verifies it);
        # it must only be consistent with the keys the settings pin for this issuer.
        if "jku" in header and not trust.accepts_jku(header["jku"]):
            raise TokenRejected(
                "jku not allowed for this issuer", iss=trust.iss, kid=kid, suspicious=True
            )
        key = await trust.keys.get(kid)
        if key is None:
            raise TokenRejected("unknown kid", iss=trust.iss, kid=kid)
        if key.alg is not None and key.alg != header["alg"]:
            raise TokenRejected(
                "alg differs from the key's alg", iss=trust.iss, kid=kid, suspicious=True
            )
        return key

    def _decode(
        self, token: str, key: VerificationKey, alg: str, audience: str, trust: _Trust
    ) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=audience,
                issuer=trust.iss,
                leeway=self.clock_skew_seconds,
                options={"require": list(REQUIRED_CLAIMS), "verify_sub": False},
            )
        except jwt.InvalidSignatureError as error:
            raise TokenRejected(
                "bad signature", iss=trust.iss, kid=key.kid, suspicious=True
            ) from error
        except (jwt.PyJWTError, ValueError, TypeError) as error:
            # PyJWT's messages name the failed check, never the token's content.
            raise TokenRejected(
                f"{type(error).__name__}: {error}", iss=trust.iss, kid=key.kid
            ) from error
        return claims

    def _accept(self, claims: dict[str, Any], trust: _Trust, kid: str) -> CdsClient:
        exp, iat = claims["exp"], claims["iat"]
        if not (_is_number(exp) and _is_number(iat)):
            raise TokenRejected("exp/iat not NumericDate", iss=trust.iss, kid=kid)
        if exp - iat > self.max_lifetime_seconds:
            raise TokenRejected(
                f"lifetime {exp - iat:.0f} s over {self.max_lifetime_seconds} s",
                iss=trust.iss,
                kid=kid,
            )
        tenant = claims.get("tenant")
        if trust.tenant is not None and tenant != trust.tenant:
            raise TokenRejected("tenant not allowed for this issuer", iss=trust.iss, kid=kid)
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti:
            raise TokenRejected("jti not a non-empty string", iss=trust.iss, kid=kid)
        if not self.replay_cache.first_use(trust.iss, jti, exp + self.clock_skew_seconds):
            raise TokenRejected("replayed jti", iss=trust.iss, kid=kid, suspicious=True)
        sub = claims.get("sub")
        return CdsClient(
            iss=trust.iss,
            jti=jti,
            kid=kid,
            tenant=tenant if isinstance(tenant, str) else None,
            sub=sub if isinstance(sub, str) else None,
            claims=claims,
        )


def _resolve(issuer: TrustedIssuer, remote: dict[str, RemoteJwks]) -> _Trust:
    keys: KeySource
    if issuer.jwks_url is not None:
        keys = remote.setdefault(issuer.jwks_url, RemoteJwks(issuer.jwks_url))
    else:
        keys = StaticKeys(issuer.jwks or {}, issuer.iss)
    return _Trust(issuer.iss, issuer.tenant, issuer.jwks_url, keys, frozenset(issuer.allowed_jku))


def _same_https_origin(url: str, iss: str) -> bool:
    """Whether ``url`` is an https URL on the issuer's own origin (scheme, host and port)."""
    try:
        a, b = urlsplit(url), urlsplit(iss)
        same = (a.hostname, a.port) == (b.hostname, b.port)
    except ValueError:  # an invalid port
        return False
    return a.scheme == "https" and b.scheme == "https" and bool(a.hostname) and same


def _checked_header(token: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise TokenRejected(f"malformed token: {type(error).__name__}") from error
    kid = header.get("kid")
    alg = header.get("alg")
    if alg not in ALLOWED_ALGORITHMS:
        raise TokenRejected(f"alg {str(alg)[:20]!r} not allowed", kid=kid, suspicious=True)
    if not isinstance(kid, str) or not kid:
        raise TokenRejected("no kid in header")
    # CDS Hooks makes typ REQUIRED ("JWT"); media type names are case-insensitive (RFC 7515
    # 4.1.9). An absent typ is refused: every conformant client sends it, and it keeps other
    # JWT kinds the issuer signs (access tokens, "at+jwt") from being accepted here.
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.upper() != "JWT":
        raise TokenRejected("typ is not JWT", kid=kid)
    return header


def _unverified_claims(token: str, kid: str) -> dict[str, Any]:
    """The claims before verification: only to find the issuer (and tenant) whose key to use."""
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as error:
        raise TokenRejected(f"malformed payload: {type(error).__name__}", kid=kid) from error
    return claims


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
