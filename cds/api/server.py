"""Starting the HTTP server (``kap-cds serve``): uvicorn with the application factory."""

from __future__ import annotations

import ipaddress
import logging

import uvicorn

from cds.api.routes.health import OPEN_WARNING
from cds.config import Settings

logger = logging.getLogger(__name__)

APP_FACTORY = "cds.app:create_app"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def check_bind(settings: Settings, host: str) -> None:
    """An open service (no JWT) only listens on loopback: nobody else can reach patient data."""
    if settings.auth_enabled:
        return
    logger.warning(OPEN_WARNING)
    if not is_loopback(host):
        raise SystemExit(
            f"refusing to bind to {host}: kap-cds is running OPEN (no JWT authentication). "
            "Set KAP_CDS_TRUSTED_ISSUERS, or bind to 127.0.0.1."
        )


def run_server(
    settings: Settings, host: str | None = None, port: int | None = None, workers: int | None = None
) -> None:
    """Serve until stopped. Each worker builds its app with ``create_app()`` from the same
    KAP_CDS_* environment, so ``settings`` here only decides where and how to listen."""
    host = host or settings.host
    check_bind(settings, host)
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port or settings.port,
        workers=workers or settings.workers,
        proxy_headers=False,  # behind a proxy, configure it there (forwarded-allow-ips)
        server_header=False,
    )
