"""A real HTTP server on a free loopback port, over a tiny corpus and a deterministic embedder.

Tests talk to it with httpx, exactly as clients do: routing, middleware, body limits and
serialisation are all exercised, not bypassed.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from index.settings import Settings
from ingest.embedder import Embedder

CANARY = "CANARY-51d2e9"

CORPUS = {
    # path: (collection, groups, text)
    "public/handbook.md": ("default", [], "# Employee handbook\n\nNew employees receive twenty vacation days per year. "
                           "Vacation requests go to your manager at least two weeks ahead.\n\n## Remote work\n\n"
                           "Remote work is allowed three days per week with manager approval."),
    "public/vpn.txt": ("it", [], "VPN access\n\nTo rotate the VPN certificate, open the self-service portal and choose "
                       "Renew certificate. Certificates expire after ninety days."),
    "eng/runbook.md": ("eng", ["eng"], "# Deploy runbook\n\nDeployments run every Tuesday. Roll back with the release "
                       "tool when error rates exceed two percent."),
    "hr/salaries.md": ("hr", ["hr"], f"# Salary bands 2026\n\nThe compensation review marker is {CANARY}. Salary bands for "
                       f"senior engineers rise by four percent in the annual compensation review. Reference {CANARY} "
                       "appears only in this confidential document."),
}


class CountingEmbedder(Embedder):
    """The deterministic HashEmbedder, counting calls so tests can prove that rejected
    requests never reached a model."""

    def __init__(self) -> None:
        from ingest.embedder_hash import HashEmbedder

        self._inner = HashEmbedder(model_name="test-hash-embedder", dimension=64)
        self.model_name, self.dimension = self._inner.model_name, self._inner.dimension
        self.max_seq_length, self.fingerprint, self.device = self._inner.max_seq_length, self._inner.fingerprint, self._inner.device
        self.query_calls = 0
        self.document_calls = 0
        self._lock = threading.Lock()

    def tokenizer_path(self):
        return None

    def embed_queries(self, texts):
        with self._lock:
            self.query_calls += 1
        return self._inner.embed_queries(texts)

    def embed_documents(self, texts):
        with self._lock:
            self.document_calls += 1
        return self._inner.embed_documents(texts)


class InlineParser:
    """Parses in the calling process. The real pool spawns and warms worker processes per
    ingestion call (seconds each), which HTTP tests would pay on every upload; the pool's own
    isolation is tested with the ingest package."""

    def __init__(self, settings: Settings):
        self.settings = settings

    @classmethod
    def from_settings(cls, settings: Settings, **_overrides) -> "InlineParser":
        return cls(settings)

    def __enter__(self) -> "InlineParser":
        return self

    def __exit__(self, *_exc) -> None:
        return None

    def start(self) -> None:
        return None

    def close(self, graceful: bool = True) -> None:
        return None

    def imap_unordered(self, paths, *, policy=None):
        from ingest.documents import ParseFailure
        from ingest.parsing import parse_file
        from ingest.safe_open import parse_checked

        limits = {"max_bytes": self.settings.max_file_bytes, "max_chars": self.settings.max_document_chars}
        for path in paths:
            try:
                if policy is None:
                    yield Path(path), parse_file(Path(path), **limits)
                else:  # the same checks as the pool's workers make
                    yield Path(path), parse_checked(parse_file, Path(path), policy, **limits)
            except ParseFailure as failure:
                yield Path(path), failure


@pytest.fixture(scope="package", autouse=True)
def _inline_parsing():
    from ingest import parser_pool

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parser_pool.ParserPool, "from_settings", InlineParser.from_settings)
        yield


def make_settings(root: Path, **overrides) -> Settings:
    values = dict(
        data_dir=root / "data", reranker_enabled=False, generator="extractive", rate_limit_per_minute=0, parse_workers=1,
        chunk_max_tokens=120, ingest_roots=[root / "share"], max_query_chars=300, max_k=20, max_request_bytes=20_000,
        max_upload_bytes=50_000, ingest_job_workers=1,
    )
    values.update(overrides)
    return Settings(**values)


def write_corpus(root: Path) -> dict[str, Path]:
    paths = {}
    for rel, (_collection, _groups, text) in CORPUS.items():
        path = root / "corpus" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        paths[rel] = path
    return paths


def ingest_corpus(groundwork, paths: dict[str, Path]) -> dict[str, int]:
    """Ingest each file with its collection and groups; returns {relative path: document id}."""
    ids = {}
    for rel, (collection, groups, _text) in CORPUS.items():
        summary = groundwork.ingest([paths[rel]], collection=collection, groups=groups, progress=False)
        result = summary.files[0]
        assert result.status in ("added", "updated", "unchanged"), result
        ids[rel] = result.document_id
    groundwork.refresh_indexes()
    return ids


@dataclass
class LiveServer:
    base_url: str
    groundwork: object
    app: object
    embedder: CountingEmbedder
    root: Path
    doc_ids: dict[str, int] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    _server: object = None
    _thread: threading.Thread | None = None

    def client(self, key: str | None = None, **kw) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=60, **kw)

    def audit_rows(self, **filters) -> list:
        """Audit rows, newest first (``AuditStore.query`` filters)."""
        from index.audit_store import AuditStore

        return AuditStore(self.groundwork.engine).query(**filters)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)


def start_server(app) -> tuple[object, threading.Thread, str]:
    """Serve ``app`` as `groundwork serve` does (its uvicorn configuration and HTTP protocol)."""
    import uvicorn

    from service.server import uvicorn_config

    # An explicit IPPROTO_TCP lets asyncio set TCP_NODELAY on accepted connections, as it does
    # when uvicorn binds by itself; without it every keep-alive response waits ~40 ms.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, app.state.services.settings))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


def launch(root: Path, *, ingest: bool = True, **overrides) -> LiveServer:
    from service import auth
    from service.http.app import create_app
    from service.engine import Groundwork

    root.mkdir(parents=True, exist_ok=True)
    (root / "share").mkdir(exist_ok=True)
    settings = make_settings(root, **overrides)
    embedder = CountingEmbedder()
    groundwork = Groundwork(settings, embedder=embedder)
    doc_ids = ingest_corpus(groundwork, write_corpus(root)) if ingest else {}
    store = groundwork.store
    keys = {}
    for name, role, groups in (
        ("reader", "reader", []), ("writer", "writer", []), ("admin", "admin", []),
        ("reader_eng", "reader", ["eng"]), ("writer_eng", "writer", ["eng"]), ("admin_eng", "admin", ["eng"]),
        ("reader_hr", "reader", ["hr"]), ("admin_all", "admin", ["*"]),
    ):
        keys[name], _row = auth.create_key(store, role, groups, name)
    app = create_app(groundwork)
    server, thread, url = start_server(app)
    return LiveServer(url, groundwork, app, embedder, root, doc_ids, keys, server, thread)


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> LiveServer:
    server = launch(tmp_path_factory.mktemp("live"))
    yield server
    server.stop()
    server.groundwork.close()


@pytest.fixture
def fresh(tmp_path):
    """A private server for tests that change settings or state; call with overrides."""
    started: list[LiveServer] = []

    def make(**overrides) -> LiveServer:
        server = launch(tmp_path / f"s{len(started)}", **overrides)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
        server.groundwork.close()
