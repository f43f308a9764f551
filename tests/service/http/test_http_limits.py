"""Request-head limits over real sockets: slow-header connections are closed at the deadline
(they used to stay open indefinitely), and an oversized head gets 431 (a 1 MB header used to be
accepted). Ordinary traffic, large bodies and keep-alive are unaffected."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest

from tests.service.conftest import launch

HEADER_TIMEOUT_S = 1.0
MAX_HEADER_BYTES = 8192


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    server = launch(tmp_path_factory.mktemp("limits"), http_header_timeout_s=HEADER_TIMEOUT_S, http_max_header_bytes=MAX_HEADER_BYTES)
    yield server
    server.stop()
    server.groundwork.close()


def connect(server) -> socket.socket:
    address = urlsplit(server.base_url)
    sock = socket.create_connection((address.hostname, address.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_closed(sock: socket.socket, limit_s: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts as closed)."""
    sock.settimeout(limit_s)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass
    return data


def status_of(response: bytes) -> int | None:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else None


def test_slow_header_connections_are_closed_at_the_deadline(limited):
    """50 clients each drip a header byte every 0.1 s: the deadline counts from the start of the
    head, so activity does not keep them open."""
    sockets = [connect(limited) for _ in range(50)]
    started = time.monotonic()
    for sock in sockets:
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: groundwork\r\nX-Slow: ")
    open_ = {sock.fileno(): sock for sock in sockets}
    closed_after: list[float] = []
    responses: list[bytes] = []
    while open_ and time.monotonic() - started < 15:
        for fd, sock in list(open_.items()):
            try:
                sock.send(b"a")
            except OSError:  # the server closed it and reset the rest
                closed_after.append(time.monotonic() - started)
                responses.append(b"")
                del open_[fd]
        readable, _, _ = select.select(list(open_.values()), [], [], 0.1)
        for sock in readable:
            responses.append(read_until_closed(sock))
            closed_after.append(time.monotonic() - started)
            del open_[sock.fileno()]
    for sock in sockets:
        sock.close()
    assert not open_, f"{len(open_)} slow-header connections still open after 15 s"
    assert max(closed_after) < HEADER_TIMEOUT_S + 10  # generous: the machine may be busy; without the limit: never
    assert min(closed_after) >= HEADER_TIMEOUT_S * 0.9
    answered = [r for r in responses if r]
    assert all(status_of(r) == 408 for r in answered), answered[:3]
    with limited.client() as client:
        assert client.get("/v1/health").status_code == 200  # the server itself is fine


def test_a_connection_that_never_sends_is_closed_without_an_answer(limited):
    sock = connect(limited)
    started = time.monotonic()
    try:
        assert read_until_closed(sock) == b""
    finally:
        sock.close()
    assert HEADER_TIMEOUT_S * 0.9 <= time.monotonic() - started < HEADER_TIMEOUT_S + 8


def test_a_megabyte_header_is_refused(limited):
    sock = connect(limited)
    head = b"GET /v1/health HTTP/1.1\r\nHost: groundwork\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n"

    def send() -> None:
        try:
            sock.sendall(head)
        except OSError:
            pass  # the server closed the connection mid-send: refused

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        response = read_until_closed(sock)
    finally:
        sender.join(10)
        sock.close()
    assert response == b"" or status_of(response) == 431, response[:200]


def test_a_head_just_over_the_limit_gets_431_in_the_api_error_shape(limited):
    sock = connect(limited)
    try:
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: groundwork\r\nX-Big: " + b"a" * (MAX_HEADER_BYTES + 100) + b"\r\n\r\n")
        response = read_until_closed(sock)
    finally:
        sock.close()
    assert status_of(response) == 431, response[:200]
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    assert json.loads(body)["error"]["code"] == "headers_too_large"


def test_ordinary_requests_bodies_and_keep_alive_are_unaffected(limited):
    with limited.client(limited.keys["writer"]) as client:
        padded = client.get("/v1/health", headers={"X-Padding": "p" * (MAX_HEADER_BYTES // 2)})
        assert padded.status_code == 200
        # A body many times the head limit, sent with its head in the same reads.
        upload = client.post("/v1/documents", files={"file": ("big.txt", b"The archive room opens at nine. " * 1200)})
        assert upload.status_code == 201, upload.text
        for _ in range(3):  # one keep-alive connection, one request after another, past the deadline
            assert client.get("/v1/health").status_code == 200
            time.sleep(HEADER_TIMEOUT_S * 0.6)


def test_a_slow_response_is_not_cut_by_the_head_deadline(limited, monkeypatch):
    """The deadline covers reading a head; a request that takes longer to answer is answered."""
    search = limited.groundwork.pipeline._search

    def slow_search(*args, **kwargs):
        time.sleep(HEADER_TIMEOUT_S * 2)
        return search(*args, **kwargs)

    monkeypatch.setattr(limited.groundwork.pipeline, "_search", slow_search)
    with limited.client(limited.keys["reader"]) as client:
        response = client.post("/v1/search", json={"query": "vacation days"})
    assert response.status_code == 200 and response.json()["results"]
