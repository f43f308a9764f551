"""The HTTP/1.1 protocol the server speaks: uvicorn's httptools protocol with the two limits it
lacks, a deadline for the request head and a cap on its size.

uvicorn closes idle keep-alive connections, but a connection that opens and never finishes its
head (a slow-header or "slowloris" client dripping a byte at a time) stays open for ever, and
httptools buffers a head of any size (a 1 MB header was accepted). Both are decided here, before
the ASGI application sees anything:

- the head (request line and headers) must be complete within ``header_timeout_s`` of the
  connection opening or of its first byte after a finished request; otherwise the connection
  is closed, with a 408 if part of a head had arrived. A deadline, not an idle timer: dripping
  bytes does not extend it. Idle time between requests stays uvicorn's keep-alive timeout.
- a head larger than ``max_header_bytes`` gets 431 and the connection is closed, once the
  bytes received for an unfinished head pass the limit (httptools then holds at most one read
  more) or, for a head finished within one read, when its size is known.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

# Fixed per header line besides the name and value: ": " and CRLF.
_HEADER_LINE_OVERHEAD = 4


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head over the limit."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` with a request-head deadline and size cap (see the module)."""

    header_timeout_s: float = 10.0
    max_header_bytes: int = 32 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_head = True  # from the end of a request (or the connection's start) to the end of the next head
        self._head_received = 0    # raw bytes received while reading the current head
        self._head_size = 0        # request line and headers parsed so far
        self._head_too_large = False
        self._head_timer = None

    # --- the deadline ------------------------------------------------------------------------------
    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._reading_head or self.transport is None or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm_head_timer()  # a pipelined head waits behind a response in progress: not the client's delay
            return
        if self._head_received:
            log.info("closing a connection from %s: its request head took longer than %g s", _peer(self.client), self.header_timeout_s)
            self._refuse(408, "request_timeout", f"the request head was not complete within {self.header_timeout_s:g} s")
        else:
            self.transport.close()  # opened and never used: nothing to answer

    # --- the size cap --------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._reading_head:
            if self._head_timer is None:
                self._arm_head_timer()
            self._head_received += len(data)
        super().data_received(data)
        if self._reading_head and self._head_received > self.max_header_bytes and not self.transport.is_closing():
            self._refuse_large_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_size = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._count(len(name) + len(value) + _HEADER_LINE_OVERHEAD)

    def _count(self, size: int) -> None:
        self._head_size += size
        if self._head_size > self.max_header_bytes:
            self._head_too_large = True
            raise _HeadTooLarge()  # the parser stops and reports an error: send_400_response, below

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._head_received = 0
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_head = True  # the next head's deadline starts with its first byte
        self._head_received = 0

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error, which is how a callback stops a head over the limit."""
        if self._head_too_large:
            self._refuse_large_head()
        else:
            super().send_400_response(msg)

    def _refuse_large_head(self) -> None:
        log.info("refusing a request head over %d bytes from %s", self.max_header_bytes, _peer(self.client))
        self._refuse(431, "headers_too_large", f"the request line and headers exceed {self.max_header_bytes} bytes")

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer ``status`` in the API's JSON error shape, and close the connection."""
        self._cancel_head_timer()
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        phrase = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        head = [b"HTTP/1.1 %d %s\r\n" % (status, phrase)]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def guarded_protocol(header_timeout_s: float, max_header_bytes: int) -> type[GuardedHttpToolsProtocol]:
    """The protocol class with these limits, for ``uvicorn.Config(http=...)``."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,),
                {"header_timeout_s": header_timeout_s, "max_header_bytes": max_header_bytes})


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "unknown"
