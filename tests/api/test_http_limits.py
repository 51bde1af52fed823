"""What a client may make the HTTP server hold: header size, and connections that are slow or
silent. Real sockets against the server as ``allcare serve`` configures uvicorn."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import closing

import httpx
import pytest

from allcare.core.config import Settings
from tests.conftest import Api, live_server


@pytest.fixture
def url(make_api: Callable[..., Api], make_settings: Callable[..., Settings]) -> Iterator[str]:
    api = make_api(
        make_settings(
            http_max_header_bytes=65536, http_header_timeout_s=1.0, http_body_idle_timeout_s=1.0
        )
    )
    with live_server(api.client.app) as address:
        yield address


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_oversized_headers_are_431_and_the_connection_closed(url: str) -> None:
    with closing(connect(url)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b'{"detail": "Request headers too large (limit 65536 bytes)"}' in answer


def test_a_huge_header_still_arriving_is_cut_off(url: str) -> None:
    """32 MB of one header value: refused once 64 KB have arrived, not parsed whole."""
    with closing(connect(url)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent = send_until_refused(sock, b"a" * 65536, 32 * 1024 * 1024)
    assert sent < 4 * 1024 * 1024


def send_until_refused(sock: socket.socket, chunk: bytes, most: int) -> int:
    """Bytes sent before the server closed the connection (or ``most``, if it never did)."""
    sent = 0
    try:
        while sent < most:
            sock.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


def test_many_headers_that_together_are_too_large_are_refused(url: str) -> None:
    headers = {f"X-Filler-{n}": "b" * 1000 for n in range(80)}
    response = httpx.get(f"{url}/health", headers=headers)
    assert response.status_code == 431


def test_ordinary_requests_and_keep_alive_still_work(url: str) -> None:
    with httpx.Client(base_url=url) as client:
        for _ in range(3):
            response = client.get("/health", headers={"X-Filler": "c" * 30_000})
            assert response.status_code == 200
    assert "server" not in response.headers  # no banner naming uvicorn


@pytest.mark.parametrize(
    "sent", [b"", b"GET /health HTTP/1.1\r\nHost: x\r\n"], ids=["nothing", "half the headers"]
)
def test_connections_that_do_not_send_their_request_are_closed(url: str, sent: bytes) -> None:
    sockets = [connect(url) for _ in range(50)]
    try:
        for sock in sockets:
            sock.sendall(sent)
        started = time.monotonic()
        answers = [read_all(sock) for sock in sockets]
        waited = time.monotonic() - started
    finally:
        for sock in sockets:
            sock.close()
    assert waited < 5
    assert all(a == b"" or a.startswith(b"HTTP/1.1 408 ") for a in answers)


def test_a_body_that_stops_arriving_closes_the_connection(url: str) -> None:
    with closing(connect(url)) as sock:
        sock.sendall(
            b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"username": '
        )
        started = time.monotonic()
        read_all(sock)
        assert time.monotonic() - started < 5


def test_a_slow_but_steady_body_is_received(url: str) -> None:
    """Silence is limited, not duration: a body that keeps coming may take longer in all."""
    body = b'{"username": "nobody", "password": "wrong-password"}'
    with closing(connect(url)) as sock:
        sock.sendall(
            b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        for start in range(0, len(body), 13):
            sock.sendall(body[start : start + 13])
            time.sleep(0.4)
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 401 ")
