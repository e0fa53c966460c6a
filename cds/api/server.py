"""Starting the HTTP server (``kap-cds serve``): uvicorn with the application factory."""

from __future__ import annotations

import ctypes
import ipaddress
import logging
import logging.config
import os
import socket

import uvicorn
from uvicorn.supervisors import Multiprocess

from cds.api.http_guard import GuardedHttpToolsProtocol
from cds.api.routes.health import OPEN_WARNING, TRYOUT_WARNING, ZONE_WARNING
from cds.config import Settings
from cds.logs import log_config
from cds.security.web import AudienceNotConfigured, require_audience

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
    if is_loopback(host):
        return
    if settings.open_tryout:
        logger.warning("%s (listening on %s)", TRYOUT_WARNING, host)
        return
    raise SystemExit(
        f"kap-cds: refusing to bind to {host}: kap-cds is running OPEN (no JWT authentication). "
        "Set KAP_CDS_TRUSTED_ISSUERS, or bind to 127.0.0.1 (for a laptop try-out of the image "
        "only: KAP_CDS_OPEN_TRYOUT=true)."
    )


def check_facility_zone(settings: Settings, host: str) -> None:
    """Same-day and calendar-day checks need the clinic's zone: in UTC, a Los Angeles clinic's
    BP from last evening would count as today's pre-dose BP. Only development — the service
    running open (no JWT) on loopback, as ``make run`` and the test suite do — may start without
    it, and then says loudly that it judges days in UTC."""
    if settings.facility_timezone:
        logger.info("facility time zone: %s", settings.facility_timezone)
        return
    if settings.auth_enabled or not is_loopback(host):
        raise SystemExit(
            "refusing to start: KAP_CDS_FACILITY_TIMEZONE is not set. Set it to the clinic's "
            "IANA time zone (e.g. America/Los_Angeles): 'today', 'same day' and calendar-day "
            "intervals are judged in it. Only development (open mode on loopback) defaults to UTC."
        )
    logger.warning(ZONE_WARNING)


def tcp_socket(host: str, port: int) -> socket.socket:
    """The listening socket for several workers, created with ``IPPROTO_TCP``.

    uvicorn's own multi-worker socket is created with protocol 0, and asyncio only sets
    TCP_NODELAY on sockets whose protocol is TCP: every keep-alive answer then waits for a
    delayed ACK (~40 ms; uvicorn issue 3149). One worker binds through asyncio and is not
    affected.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


# glibc's mallopt parameter for the number of malloc arenas (malloc.h).
_M_ARENA_MAX = -8


def cap_malloc_arenas(arenas: int = 2) -> None:
    """At most ``arenas`` glibc malloc arenas in this process and in the workers it starts.

    glibc gives threads that allocate at once arenas of their own (up to eight per core), and
    each keeps the memory a large chart freed for its own thread's next use: the evaluation
    threads, the event loop and the audit writer each hold a chart's worth. Two arenas: a
    worker's peak after 200-, 1,000- and 5,000-resource charts went from 212 to 200 MB. A value
    the site sets in ``MALLOC_ARENA_MAX`` wins; elsewhere than glibc this does nothing."""
    value = os.environ.setdefault("MALLOC_ARENA_MAX", str(arenas))  # spawned workers read it
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_ARENA_MAX, int(value))  # this process: set before its threads start
    except (OSError, AttributeError, ValueError):
        return  # not glibc, or not a number: the default stays


def run_server(
    settings: Settings, host: str | None = None, port: int | None = None, workers: int | None = None
) -> None:
    """Serve until stopped. Each worker builds its app with ``create_app()`` from the same
    KAP_CDS_* environment, so ``settings`` here only decides where and how to listen."""
    host = host or settings.host
    logging.config.dictConfig(log_config(settings))  # this process; uvicorn does each worker
    check_bind(settings, host)
    try:
        require_audience(settings)
    except AudienceNotConfigured as exc:
        raise SystemExit(str(exc)) from None
    check_facility_zone(settings, host)
    cap_malloc_arenas()
    config = uvicorn.Config(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port or settings.port,
        workers=workers or settings.workers,
        proxy_headers=False,  # behind a proxy, configure it there (forwarded-allow-ips)
        server_header=False,
        access_log=False,  # every service call is in the audit trail; no patient ids in logs
        log_config=log_config(settings),
        log_level=settings.log_level.lower(),
        http=GuardedHttpToolsProtocol,
        # Connection guards: idle keep-alive connections are closed; the header size and the
        # time to send the headers are enforced by GuardedHttpToolsProtocol.
        timeout_keep_alive=int(settings.keep_alive_timeout_seconds) or 1,
    )
    if config.workers > 1:
        Multiprocess(config, sockets=[tcp_socket(config.host, config.port)]).run()
    else:
        uvicorn.Server(config).run()
