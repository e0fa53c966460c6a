"""Helpers for the security tests: signing keys, a token minter, a tiny app, a JWKS server state.

A uniquely named module (not conftest) so test modules can import it unambiguously."""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI, Request
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from cds.config import Settings
from cds.security.web import install

BASE = "http://testserver"
ISS = "https://ehr.example.org/fhir"
DISCOVERY = f"{BASE}/cds-services"
SERVICE = f"{BASE}/cds-services/kap-order-sign"
FEEDBACK = f"{BASE}/cds-services/kap-order-sign/feedback"
REMOVE = object()  # a claim or header value meaning "leave this one out"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: PrivateKey

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            data = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            data = RSAAlgorithm.to_jwk(public, as_dict=True)
        return {**data, "kid": self.kid, "use": "sig"}


def new_es384(kid: str = "es384-1") -> SigningKey:
    return SigningKey(kid, "ES384", ec.generate_private_key(ec.SECP384R1()))


def new_rs384(kid: str = "rs384-1") -> SigningKey:
    return SigningKey(kid, "RS384", rsa.generate_private_key(public_exponent=65537, key_size=2048))


@dataclass
class Minter:
    """Makes CDS Hooks client JWTs; every claim and header can be overridden or REMOVEd."""

    key: SigningKey
    iss: str = ISS

    def claims(self, aud: Any, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.iss,
            "aud": aud,
            "iat": now,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
        }
        return _apply(claims, overrides)

    def token(
        self,
        aud: Any = SERVICE,
        *,
        key: SigningKey | None = None,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        signer = key or self.key
        header = _apply({"kid": signer.kid, "typ": "JWT"}, headers or {})
        if "typ" not in header:
            header["typ"] = None  # PyJWT adds typ JWT unless told to drop it
        return jwt.encode(
            self.claims(aud, **claims), signer.private, algorithm=signer.alg, headers=header
        )


def _apply(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = {**base, **overrides}
    return {name: value for name, value in merged.items() if value is not REMOVE}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_settings(**values: Any) -> Settings:
    """Settings for the security tests: the test client's base URL is the token audience, the
    loopback JWKS server speaks plain http, and a private SQLite store holds the replay guard and
    rate limit."""
    values.setdefault("public_base_url", BASE)
    values.setdefault("allow_insecure_jwks_url", True)
    state = Path(tempfile.mkdtemp(prefix="kap-cds-security-"))
    values.setdefault("database_url", f"sqlite:///{state / 'audit.sqlite3'}")
    values.setdefault("spool_dir", state / "spool")
    return Settings(**values)


def build_app(settings: Settings) -> FastAPI:
    """The three CDS Hooks endpoint kinds plus the open ones, behind the security stack."""
    app = FastAPI()

    @app.get("/cds-services")
    async def discovery() -> dict[str, Any]:
        return {"services": []}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        await asyncio.sleep(5)
        return {"status": "late"}

    @app.post("/cds-services/{service_id}")
    async def service(service_id: str, request: Request) -> dict[str, Any]:
        body = await request.body()
        client = getattr(request.state, "cds_client", None)
        return {"cards": [], "bytes": len(body), "iss": client.iss if client else None}

    @app.post("/cds-services/{service_id}/feedback")
    async def feedback(service_id: str) -> dict[str, Any]:
        return {}

    install(app, settings)
    return app


@dataclass
class JwksServer:
    """A real HTTP server on 127.0.0.1 publishing a JWKS that tests can rotate."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    hits: int = 0
    url: str = ""
    status: int = 200
    delay_seconds: float = 0.0

    def publish(self, *keys: SigningKey) -> None:
        self.keys = [key.jwk() for key in keys]


@contextmanager
def serve_jwks(*keys: SigningKey) -> Iterator[JwksServer]:
    state = JwksServer()
    state.publish(*keys)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            state.hits += 1
            time.sleep(state.delay_seconds)
            body = json.dumps({"keys": state.keys}).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # keep test output clean

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True  # a handler still sleeping must not hold up the teardown
    state.url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
