"""CDS Hooks client JWT: every way a token can be wrong gets the same bare 401."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from httpx import Response
from security_helpers import (
    BASE,
    DISCOVERY,
    FEEDBACK,
    ISS,
    REMOVE,
    SERVICE,
    Minter,
    SigningKey,
    bearer,
    build_app,
    make_settings,
    new_es384,
)

from cds.config import TrustedIssuer


def assert_refused(response: Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    (issue,) = body["issue"]
    assert issue["code"] == "login"
    assert issue["details"]["coding"][0]["code"] == "CDS-1401"
    assert issue["details"]["text"] == "Authentication failed"


def post_service(client: TestClient, token: str) -> Response:
    return client.post(
        "/cds-services/kap-order-sign", json={"hook": "order-sign"}, headers=bearer(token)
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def alg_none(m: Minter, rs384: SigningKey) -> str:
    return _unsigned({"alg": "none", "typ": "JWT", "kid": m.key.kid}, m.claims(SERVICE)) + "."


def hs256_with_public_key(m: Minter, rs384: SigningKey) -> str:
    """The key-confusion attack: HMAC keyed with the issuer's public key, which anyone has."""
    pem = rs384.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = _unsigned({"alg": "HS256", "typ": "JWT", "kid": rs384.kid}, m.claims(SERVICE))
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def tampered_signature(m: Minter, rs384: SigningKey) -> str:
    head, payload, signature = m.token().split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    return f"{head}.{payload}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"


def tampered_payload(m: Minter, rs384: SigningKey) -> str:
    head, _, signature = m.token().split(".")
    other = _b64(json.dumps(m.claims(SERVICE, iss="https://other.example.org")).encode())
    return f"{head}.{other}.{signature}"


def signed_by_impostor(m: Minter, rs384: SigningKey) -> str:
    """Right kid, wrong private key."""
    impostor = SigningKey(m.key.kid, "ES384", ec.generate_private_key(ec.SECP384R1()))
    return m.token(key=impostor)


def wrong_curve(m: Minter, rs384: SigningKey) -> str:
    """ES256 on a P-256 key, presented under the kid of our P-384 key."""
    p256 = SigningKey(m.key.kid, "ES256", ec.generate_private_key(ec.SECP256R1()))
    return m.token(key=p256)


def now() -> int:
    return int(time.time())


Build = Callable[[Minter, SigningKey], str]

# Each bad token, and the reason the log must give (so a case cannot pass for the wrong reason).
REFUSED: dict[str, tuple[Build, str]] = {
    "expired": (lambda m, k: m.token(iat=now() - 600, exp=now() - 120), "expired"),
    "nbf in the future": (lambda m, k: m.token(nbf=now() + 300), "not yet valid (nbf)"),
    "iat in the future": (
        lambda m, k: m.token(iat=now() + 300, exp=now() + 600),
        "not yet valid (iat)",
    ),
    "aud of another service": (
        lambda m, k: m.token(f"{BASE}/cds-services/kap-patient-view"),
        "Audience",
    ),
    "aud of discovery": (lambda m, k: m.token(DISCOVERY), "Audience"),
    "aud with trailing slash": (lambda m, k: m.token(SERVICE + "/"), "Audience"),
    "aud list without us": (lambda m, k: m.token([DISCOVERY, FEEDBACK]), "Audience"),
    "aud https not http": (lambda m, k: m.token(SERVICE.replace("http:", "https:")), "Audience"),
    "wrong iss": (lambda m, k: m.token(iss="https://evil.example.org/fhir"), "issuer not trusted"),
    "unknown kid": (lambda m, k: m.token(key=new_es384("not-published")), "unknown kid"),
    "alg none": (alg_none, "alg 'none' not allowed"),
    "HS256 with the public key as secret": (hs256_with_public_key, "alg 'HS256' not allowed"),
    "signature tampered": (tampered_signature, "bad signature"),
    "payload swapped": (tampered_payload, "issuer not trusted"),
    "right kid, other private key": (signed_by_impostor, "bad signature"),
    "curve does not match the key": (wrong_curve, "curve"),
    "missing iss": (lambda m, k: m.token(iss=REMOVE), "issuer not trusted"),
    "missing aud": (lambda m, k: m.token(aud=REMOVE), 'missing the "aud" claim'),
    "missing exp": (lambda m, k: m.token(exp=REMOVE), 'missing the "exp" claim'),
    "missing iat": (lambda m, k: m.token(iat=REMOVE), 'missing the "iat" claim'),
    "missing jti": (lambda m, k: m.token(jti=REMOVE), 'missing the "jti" claim'),
    "empty jti": (lambda m, k: m.token(jti=""), "jti not a non-empty string"),
    "jti not a string": (lambda m, k: m.token(jti=12345), "JWT ID must be a string"),
    "exp as a string": (lambda m, k: m.token(exp=str(now() + 300)), "not NumericDate"),
    "lifetime too long": (lambda m, k: m.token(iat=now(), exp=now() + 3601), "lifetime"),
    "jku outside the allowlist": (
        lambda m, k: m.token(headers={"jku": "https://evil.example.org/jwks"}),
        "jku",
    ),
    "missing kid": (lambda m, k: m.token(headers={"kid": REMOVE}), "no kid"),
    "typ not JWT": (lambda m, k: m.token(headers={"typ": "at+jwt"}), "typ"),
    "typ absent": (lambda m, k: m.token(headers={"typ": REMOVE}), "typ"),
    "not a JWT at all": (lambda m, k: "not.a.jwt", "malformed token"),
}


@pytest.mark.parametrize(("build", "reason"), REFUSED.values(), ids=REFUSED.keys())
def test_bad_token_refused(
    client: TestClient,
    minter: Minter,
    rs384: SigningKey,
    build: Build,
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="cds.security")
    assert_refused(post_service(client, build(minter, rs384)))
    refusals = [r.getMessage() for r in caplog.records if "JWT refused" in r.getMessage()]
    assert len(refusals) == 1 and reason in refusals[0], refusals


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic dXNlcjpwdw=="},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer " + "a" * 20_000},
    ],
    ids=["no header", "basic", "empty bearer", "oversized"],
)
def test_missing_or_foreign_credentials_refused(
    client: TestClient, headers: dict[str, str]
) -> None:
    assert_refused(client.get("/cds-services", headers=headers))


@pytest.mark.parametrize("alg_key", ["es384", "rs384"])
def test_valid_tokens_accepted_on_every_endpoint_kind(
    client: TestClient, alg_key: str, request: pytest.FixtureRequest
) -> None:
    m = Minter(request.getfixturevalue(alg_key))
    assert client.get("/cds-services", headers=bearer(m.token(DISCOVERY))).status_code == 200
    service = post_service(client, m.token(SERVICE))
    assert service.status_code == 200
    assert service.json()["iss"] == ISS  # the verified client reaches the endpoint
    feedback = client.post(
        "/cds-services/kap-order-sign/feedback",
        json={"feedback": []},
        headers=bearer(m.token(FEEDBACK)),
    )
    assert feedback.status_code == 200


TIME_CLAIMS = ("iat", "exp", "nbf")


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": [DISCOVERY, SERVICE]},
        # Epic: sub is the client id, nbf is iat - 5 min.
        {"sub": "epic-client-id", "nbf": -300},
        {"tenant": "any-tenant"},  # no tenant configured for this issuer: not restricted
        {"iat": 30, "exp": 330},  # EHR clock a little ahead, within the skew
    ],
    ids=["aud list", "epic sub and nbf", "tenant", "iat within skew"],
)
def test_tolerated_variants_accepted(
    client: TestClient, minter: Minter, claims: dict[str, Any]
) -> None:
    # Times are offsets from the moment the test runs, not from collection: a long suite run
    # must not expire the token before it is sent.
    resolved = {k: now() + v if k in TIME_CLAIMS else v for k, v in claims.items()}
    assert post_service(client, minter.token(**resolved)).status_code == 200


def test_typ_is_case_insensitive(client: TestClient, minter: Minter) -> None:
    assert post_service(client, minter.token(headers={"typ": "jwt"})).status_code == 200


def test_replayed_jti_refused(client: TestClient, minter: Minter) -> None:
    token = minter.token()
    assert post_service(client, token).status_code == 200
    assert_refused(post_service(client, token))
    # The same jti from the same issuer stays refused even in a freshly signed token.
    jti = "fixed-jti"
    assert post_service(client, minter.token(jti=jti)).status_code == 200
    assert_refused(post_service(client, minter.token(jti=jti)))


def test_refused_token_does_not_burn_its_jti(client: TestClient, minter: Minter) -> None:
    """Only verified tokens enter the replay cache, so forged ones cannot block real ones."""
    assert_refused(post_service(client, minter.token(jti="j-1", aud=DISCOVERY)))
    assert post_service(client, minter.token(jti="j-1")).status_code == 200


def test_tenant_must_match_the_issuers_tenant(es384: SigningKey) -> None:
    jwks = {"keys": [es384.jwk()]}
    settings = make_settings(
        trusted_issuers=[
            TrustedIssuer(iss=ISS, jwks=jwks, tenant="clinic-a"),
            TrustedIssuer(iss=ISS, jwks=jwks, tenant="clinic-b"),
        ]
    )
    m = Minter(es384)
    with TestClient(build_app(settings), base_url=BASE) as client:
        assert post_service(client, m.token(tenant="clinic-a")).status_code == 200
        assert post_service(client, m.token(tenant="clinic-b")).status_code == 200
        assert_refused(post_service(client, m.token(tenant="clinic-c")))
        assert_refused(post_service(client, m.token(tenant=REMOVE)))


def test_open_paths_need_no_token(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200


def test_every_other_path_is_protected(client: TestClient) -> None:
    # "//cds-services" as a bare reference would be host "cds-services", path "/": spell the URL.
    for path in ("/cds-services/", f"{BASE}//cds-services", "/cds-services/x/feedback", "/unknown"):
        assert_refused(client.get(path))


def test_public_base_url_behind_a_proxy(es384: SigningKey) -> None:
    public = "https://cds.example.org/kap"
    settings = make_settings(
        trusted_issuers=[TrustedIssuer(iss=ISS, jwks={"keys": [es384.jwk()]})],
        public_base_url=public + "/",  # a trailing slash in the setting is tolerated
    )
    m = Minter(es384)
    with TestClient(build_app(settings), base_url=BASE) as client:
        token = m.token(f"{public}/cds-services/kap-order-sign")
        assert post_service(client, token).status_code == 200
        # The URL as the internal hop sees it is not what the EHR called.
        assert_refused(post_service(client, m.token(SERVICE)))


def test_audience_from_host_header_drops_the_default_port(
    client: TestClient, minter: Minter
) -> None:
    token = minter.token("http://cds.example.org/cds-services")
    response = client.get("/cds-services", headers={**bearer(token), "Host": "cds.example.org:80"})
    assert response.status_code == 200


def test_unauthenticated_huge_body_gets_401_without_being_read(client: TestClient) -> None:
    """Auth runs before the body limit: a stranger cannot make us buffer anything."""
    response = client.post("/cds-services/kap-order-sign", content=b"x" * 20_000_000)
    assert_refused(response)
