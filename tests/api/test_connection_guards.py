"""Connection guards of `kap-cds serve`, with real sockets against a real server: header size
(431), time to send the headers (408, also for a client trickling bytes), idle keep-alive
connections closed, and JSON logs by default (issue 14 items 5 and 6)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from live_server import LiveServer, live_server

GUARDS = {
    "KAP_CDS_MAX_HEADER_BYTES": "4096",
    "KAP_CDS_HEADER_TIMEOUT_SECONDS": "1",
    "KAP_CDS_KEEP_ALIVE_TIMEOUT_SECONDS": "1",
}
# Far above the 1 s limits: the socket read only fails if the server never acts.
PATIENCE_SECONDS = 30


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("guards"), env=GUARDS) as running:
        yield running
    for line in running.log.splitlines():  # JSON logs by default: every line one object
        if line.strip():
            record = json.loads(line)
            assert {"time", "level", "logger", "message"} <= record.keys(), line


def _connect(server: LiveServer) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=PATIENCE_SECONDS)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_headers_over_the_limit_get_431_and_the_connection_closed(server: LiveServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 8_000)
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]


def test_a_50_mb_header_is_not_buffered(server: LiveServer) -> None:
    """The server hangs up long before 50 MB are sent (a buffering server would take it all)."""
    cut_off = False
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(5_000):
                sock.sendall(b"X-Pad: " + b"a" * 10_000 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            cut_off = True
    assert cut_off


def test_headers_that_never_complete_get_408(server: LiveServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        answer = _read_all(sock)  # returns when the server closes
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]


def test_a_trickling_client_is_cut_off_although_bytes_keep_coming(server: LiveServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        closed = False
        for _ in range(PATIENCE_SECONDS * 5):
            try:
                sock.sendall(b"X")  # one byte of a header name every 0.2 s
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.2)
        answer = b"" if closed else _read_all(sock)
    assert closed or answer.startswith(b"HTTP/1.1 408 "), answer[:100]


def test_a_connection_that_sends_nothing_is_closed(server: LiveServer) -> None:
    with _connect(server) as sock:
        assert _read_all(sock) == b""


def test_normal_requests_pass_and_idle_keep_alive_is_closed(server: LiveServer) -> None:
    with _connect(server) as sock:
        headers = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(25))  # ~3 KB
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        answer = _read_all(sock)  # keep-alive: the server closes it once idle
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:100]
    assert answer.endswith(b'{"status":"ok"}')


def test_log_format_text_is_plain(tmp_path: Path) -> None:
    with live_server(tmp_path, env={"KAP_CDS_LOG_FORMAT": "text"}) as running:
        pass
    lines = [line for line in running.log.splitlines() if line.strip()]
    assert lines and not any(line.startswith("{") for line in lines)
    assert any("WARNING cds.security.web: AUTHENTICATION DISABLED" in line for line in lines)
