"""How uvicorn serves the app: limits on what a client may make the server hold, and no banner.

uvicorn (with httptools) accepts request headers of any size (a 32 MB header cost 114 MB of
memory, measured) and waits for ever on a connection that never sends, or stops sending half
way through its headers or body, so a few hundred idle sockets could be held open for good. The
protocol below is uvicorn's own with three limits added: the header bytes of a request, the
time from a connection's (or a request's) first byte to its last header, and the silence
allowed while a body is being received. ``server_header`` is off, so no answer names uvicorn.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from allcare.core.config import Settings


@dataclass(frozen=True)
class HttpLimits:
    max_header_bytes: int
    header_timeout_s: float
    body_idle_timeout_s: float


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing oversized headers (431) and closing connections
    that are too slow to send their headers or that fall silent in the middle of a body."""

    limits = HttpLimits(max_header_bytes=65536, header_timeout_s=10.0, body_idle_timeout_s=30.0)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_headers = False
        self._reading_body = False
        self._refused = False
        self._header_bytes = 0  # of the complete header lines parsed so far
        self._raw_bytes = 0  # received since the request began, while its headers are unfinished
        self._read_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.limits.header_timeout_s)  # a connection must start its request in time

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._reading_body:
            self._arm(self.limits.body_idle_timeout_s)
        super().data_received(data)
        if self._reading_headers and not self.transport.is_closing():
            # A header still being received is held by the parser: cap those bytes too.
            self._raw_bytes += len(data)
            if self._raw_bytes > self.limits.max_header_bytes:
                self._refuse_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers, self._header_bytes, self._raw_bytes = True, 0, 0
        if self._read_timer is None:
            self._arm(self.limits.header_timeout_s)

    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        if self._header_bytes > self.limits.max_header_bytes:
            self._refuse_headers()  # the request never reaches the app
            return
        self._reading_body = True
        self._arm(self.limits.body_idle_timeout_s)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._reading_body = False
        self._disarm()
        if not self._refused:
            super().on_message_complete()

    def _refuse_headers(self) -> None:
        limit = self.limits.max_header_bytes
        self._refuse(431, f"Request headers too large (limit {limit} bytes)")

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _too_slow(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        if self._reading_body and self.flow.read_paused:
            self._arm(self.limits.body_idle_timeout_s)  # the app is behind, not the client
            return
        if self._reading_body:
            self.transport.close()  # the app sees a disconnect
        else:
            self._refuse(408, "Request not received in time")

    def _refuse(self, status: int, detail: str) -> None:
        """Answer only when no response of this connection is under way, then close."""
        self._refused = True
        self._reading_headers = self._reading_body = False
        self._disarm()
        if self.cycle is None or self.cycle.response_complete:
            body = json.dumps({"detail": detail}).encode()
            reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                % (status, reason, len(body), body)
            )
        self.transport.close()


class ProcessHttpProtocol(GuardedHttpProtocol):
    """The protocol of ``allcare serve --workers N``'s processes. uvicorn hands its
    configuration to them by pickling, so the protocol travels by name; each process sets
    ``limits`` from its settings before it serves (api/server_processes.py)."""


def http_limits(settings: Settings) -> HttpLimits:
    return HttpLimits(
        max_header_bytes=settings.http_max_header_bytes,
        header_timeout_s=settings.http_header_timeout_s,
        body_idle_timeout_s=settings.http_body_idle_timeout_s,
    )


def uvicorn_config(app: Any, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """The one uvicorn configuration: ``allcare serve`` and the tests' live servers."""
    limits = http_limits(settings)
    protocol = type("ConfiguredHttpProtocol", (GuardedHttpProtocol,), {"limits": limits})
    options: dict[str, Any] = {
        "host": settings.backserver_host,
        "port": settings.backserver_port,
        "http": protocol,
        "server_header": False,
        "timeout_keep_alive": 5,
        "ssl_certfile": settings.tls_cert_file,
        "ssl_keyfile": settings.tls_key_file,
        "log_level": settings.log_level.lower(),
        "log_config": None,  # uvicorn's loggers go through ours (JSON, request id)
        "access_log": False,  # allcare.access logs each request, by route template
        "proxy_headers": False,
    }
    return uvicorn.Config(app, **(options | overrides))
