"""Canaries for the third-party internals Groundwork relies on.

Four libraries are used past their public API, each for a reason stated where it happens:
unstructured (its spaCy loader is replaced so parsing can never download a model:
``ingest/runtime/spacy_model.py``), Litestar (the whole ASGI handler is wrapped for request ids and metrics,
the route template is read from the scope, dependency order avoids a task group per request,
and JSON bodies are decoded through a ``Request.json`` that checks their nesting first),
sentence-transformers (the first module's ``auto_model`` config chooses ONNX fusions) and
uvicorn (its httptools protocol is subclassed to bound each request head in time and size:
``service/http/protocol.py``). When an upgrade moves one of these, a test here fails with a
message naming the file to revisit, instead of the product quietly downloading, losing its
request ids, slowing down or accepting what it should refuse.
"""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from litestar import Litestar, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from litestar.testing import TestClient


def _moved(library: str, what: str, where: str) -> str:
    return f"{library} changed: {what}. Revisit {where} before upgrading (pyproject.toml pins the tested range)."


def test_unstructured_spacy_loader_is_still_ours_to_replace():
    from unstructured.nlp import tokenize

    for name in ("_load_spacy_model", "_install_spacy_model", "_download_with_timeout", "_get_nlp", "_SPACY_MODEL_NAME"):
        assert hasattr(tokenize, name), _moved("unstructured", f"unstructured.nlp.tokenize.{name} is gone", "ingest/runtime/spacy_model.py")

    from ingest.runtime.spacy_model import SPACY_MODEL_PACKAGE, ensure_offline_nlp

    ensure_offline_nlp(preload=True)
    nlp = tokenize._get_nlp()
    assert nlp.meta.get("name") and tokenize._SPACY_MODEL_NAME == SPACY_MODEL_PACKAGE, _moved(
        "unstructured", "its NLP no longer loads through the replaced loader", "ingest/runtime/spacy_model.py")


def test_unstructured_download_path_refuses():
    from unstructured.nlp import tokenize

    from ingest.runtime.spacy_model import OfflineModelMissing, ensure_offline_nlp

    ensure_offline_nlp()
    with pytest.raises(OfflineModelMissing):
        tokenize._install_spacy_model()


def test_litestar_asgi_handler_can_be_wrapped_and_carries_the_route_template():
    @get("/things/{thing_id:int}", sync_to_thread=False)
    def thing(thing_id: FromPath[int]) -> dict:
        return {"id": thing_id}

    app = Litestar([thing])
    assert hasattr(app, "asgi_handler"), _moved("Litestar", "Litestar.asgi_handler is gone", "service/http/app.py create_app")
    seen: list[str | None] = []
    inner = app.asgi_handler

    async def observer(scope, receive, send):
        await inner(scope, receive, send)
        seen.append(scope.get("path_template"))

    app.asgi_handler = observer
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": "/things/7", "raw_path": b"/things/7", "query_string": b"", "root_path": "", "headers": [],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {}}
    asyncio.run(app(scope, receive, send))
    assert sent and sent[0]["status"] == 200
    assert seen == ["/things/{thing_id}"], _moved(
        "Litestar", "the wrapped asgi_handler no longer sees every request, or scope['path_template'] moved",
        "service/http/logging_setup.py RequestObserver")


def test_litestar_resolves_a_dependent_dependency_after_its_dependency_in_the_same_task():
    """The HTTP layer orders ``caller`` after ``svc`` so that Litestar resolves them one after
    the other, with no task group spawned per request (measured CPU saving, README "Serving")."""
    tasks: list[tuple[str, object]] = []

    def first() -> int:
        tasks.append(("first", asyncio.current_task()))
        return 1

    def second(first: NamedDependency[int]) -> int:
        tasks.append(("second", asyncio.current_task()))
        return first + 1

    @get("/")
    async def handler(first: NamedDependency[int], second: NamedDependency[int]) -> dict:
        tasks.append(("handler", asyncio.current_task()))
        return {"sum": first + second}

    app = Litestar([handler], dependencies={"first": Provide(first, sync_to_thread=False), "second": Provide(second, sync_to_thread=False)})
    with TestClient(app) as client:
        assert client.get("/").json() == {"sum": 3}
    assert [name for name, _ in tasks] == ["first", "second", "handler"]
    assert len({id(task) for _, task in tasks}) == 1, _moved(
        "Litestar", "dependent dependencies are no longer resolved inline in the request's task", "service/http/guard.py (the caller dependency)")


def test_sentence_transformers_first_module_exposes_the_transformer_config():
    from sentence_transformers import SentenceTransformer

    from index.settings import Settings
    from ingest.runtime.resolve import resolve_model

    model = SentenceTransformer(str(resolve_model(Settings().embedding_model)), device="cpu")
    first = model[0]
    assert hasattr(first, "auto_model") and hasattr(first.auto_model, "config"), _moved(
        "sentence-transformers", "model[0].auto_model.config is gone", "ingest/embedder_st.py _fuse_onnx_for_cpu")
    assert getattr(first.auto_model.config, "model_type", None) == "bert"


class _QueryBody(msgspec.Struct):
    query: str


def test_litestar_decodes_json_bodies_through_the_request_class_json():
    """``service/http/app.py`` checks a body's nesting in ``Request.json``: every route with a
    JSON body must decode it there."""
    from litestar import Request, post

    seen: list[bytes] = []

    class Checked(Request):
        async def json(self):
            seen.append(await self.body())
            return await super().json()

    @post("/", sync_to_thread=False)
    def handler(data: JSONBody[_QueryBody]) -> dict:
        return {"query": data.query}

    with TestClient(Litestar([handler], request_class=Checked)) as client:
        assert client.post("/", json={"query": "q"}).json() == {"query": "q"}
    assert seen == [b'{"query":"q"}'], _moved("Litestar", "request bodies are no longer decoded through Request.json()",
                                              "service/http/app.py NestingCheckedRequest")


def test_uvicorn_httptools_protocol_still_takes_the_head_limits():
    """The hooks ``service/http/protocol.py`` overrides, driven as uvicorn drives them: a head
    over the limit in one read is refused with 431, through a parser callback and
    ``send_400_response``."""
    from uvicorn.config import Config
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    from service.http.protocol import guarded_protocol

    for name in ("connection_made", "connection_lost", "data_received", "on_message_begin", "on_url", "on_header",
                 "on_headers_complete", "on_message_complete", "send_400_response"):
        assert callable(getattr(HttpToolsProtocol, name, None)), _moved("uvicorn", f"HttpToolsProtocol.{name} is gone", "service/http/protocol.py")

    class Transport:
        def __init__(self):
            self.written, self.closed = b"", False

        def write(self, data):
            self.written += data

        def close(self):
            self.closed = True

        def is_closing(self):
            return self.closed

        def get_extra_info(self, name, default=None):
            return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    async def app(scope, receive, send):  # pragma: no cover - never reached
        raise AssertionError("the application must not see a refused head")

    config = Config(app, log_config=None)
    config.load()
    loop = asyncio.new_event_loop()
    try:
        protocol = guarded_protocol(10.0, 1024)(config=config, server_state=ServerState(), app_state={}, _loop=loop)
        transport = Transport()
        protocol.connection_made(transport)
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n")
        assert transport.written.startswith(b"HTTP/1.1 431 ") and transport.closed, _moved(
            "uvicorn", "a parser callback's exception no longer ends in send_400_response", "service/http/protocol.py")
        protocol.connection_lost(None)
    finally:
        loop.close()
