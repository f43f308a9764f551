"""Model Context Protocol endpoint: ``search``, ``answer`` and ``get_chunk`` as MCP tools, served
over streamable HTTP at ``/mcp`` inside the same application.

Nothing here is a second front door with rules of its own: ``/mcp`` is a Litestar ASGI mount
behind the same guard as every ``/v1`` route (API key, rate limit, reader role; dev mode needs
no key), and the tools call the same ``Services`` (the one ``QueryPipeline``, its search
threads, the audit trail) with the principal of the key that the guard verified. The SDK runs
stateless (each POST stands alone), so no MCP session can outlive or change its key.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, Literal

import anyio
from litestar import asgi
from litestar.types import Receive, Scope, Send
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings

from index.errors import GroundworkError
from index.models import MAX_ID
from service import auth
from service.http.api_models import ApiError, answer_out, check_k, check_query, result_out, to_builtins
from service.http.guard import CALLER_SCOPE_KEY, authorize
from service.http.services import Services
from service.query.types import Query, SearchFilters

MCP_PATH = "/mcp"

_INSTRUCTIONS = ("Search and grounded answers over this organisation's documents. Use `search` for passages, `answer` for a "
                 "cited answer (each citation's quote is verbatim from the chunk it names), `get_chunk` to read a cited chunk. "
                 "Only documents your key may see are ever returned.")


class McpEndpoint:
    """The MCP server, its ASGI mount and the lifespan its session manager needs."""

    def __init__(self, svc: Services):
        self.svc = svc
        self.server = MCPServer("groundwork", instructions=_INSTRUCTIONS, version="1", log_level="WARNING")
        self._register_tools()
        host = svc.settings.host
        loopback = host in ("127.0.0.1", "localhost", "::1")
        # DNS-rebinding protection when served on loopback (dev mode's only home): a web page
        # in a local browser must not reach a keyless endpoint through a hostile name.
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=loopback, allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        )
        self.server.streamable_http_app(stateless_http=True, json_response=True, transport_security=security,
                                        max_request_body_size=svc.settings.max_request_bytes, host=host)
        self.session_manager = self.server.session_manager

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        async with self.session_manager.run():
            yield

    def route(self):
        manager = self.session_manager

        # copy_scope=False: the request observer reads the route from this very scope (Litestar
        # leaves a mount's path_template empty, so it is set here) to log and count /mcp.
        @asgi(MCP_PATH, is_mount=True, copy_scope=False, guards=[authorize], opt={"role": "reader"}, tags=["mcp"],
              include_in_schema=False)
        async def mcp_mount(scope: Scope, receive: Receive, send: Send) -> None:
            scope["path_template"] = MCP_PATH
            await manager.handle_request(scope, receive, send)

        return mcp_mount

    # --- tools -------------------------------------------------------------------------------------
    def _register_tools(self) -> None:
        svc = self.svc

        @self.server.tool(name="search", description="Hybrid search: the passages (chunks) that best match the query, "
                                                      "with their document, source, page and section.")
        async def search(query: str, ctx: Context, k: int = 10, mode: Literal["hybrid", "dense", "keyword"] = "hybrid",
                         collections: list[str] | None = None) -> dict[str, Any]:
            caller = _caller(ctx)
            with _tool_errors():
                check_query(query, svc.settings)
                check_k(k, svc.settings)
                outcome = await svc.search(Query(query, caller.principal, k=k, mode=mode, filters=_filters(collections)))
                await svc.audited(caller, "mcp:search", "search", query=query, hits=outcome.hits)
            return {"results": [to_builtins(result_out(h)) for h in outcome.hits], "timings_ms": outcome.timings_ms}

        @self.server.tool(name="answer", description="A grounded answer with numbered citations; each citation quotes its "
                                                      "chunk verbatim (chunk text[start:end]). grounded=false: the documents "
                                                      "do not contain the answer.")
        async def answer(query: str, ctx: Context, k: int | None = None, collections: list[str] | None = None) -> dict[str, Any]:
            caller = _caller(ctx)
            with _tool_errors():
                check_query(query, svc.settings)
                k = check_k(k, svc.settings) or svc.settings.context_chunks
                outcome = await svc.search(Query(query, caller.principal, k=k, filters=_filters(collections)))
                await svc.audited(caller, "mcp:answer", "answer", query=query, hits=outcome.hits)
                result = await anyio.to_thread.run_sync(svc.generate, query, outcome)
            body = to_builtins(answer_out(result, outcome.hits, {}, outcome.timings_ms))
            body.pop("provenance", None)
            return body

        @self.server.tool(name="get_chunk", description="One chunk by id (what a citation's chunk_id points at), with its "
                                                         "document's title, source, pages and section.")
        async def get_chunk(chunk_id: int, ctx: Context) -> dict[str, Any]:
            caller = _caller(ctx)
            with _tool_errors():
                record = await anyio.to_thread.run_sync(lambda: svc.groundwork.store.chunk_records([chunk_id]).get(chunk_id)) \
                    if 1 <= chunk_id <= MAX_ID else None
                if record is None or not caller.principal.can_see(record.groups):
                    await svc.audited(caller, "mcp:get_chunk", "chunk_read", 404)
                    raise ApiError(404, "not_found", "no such chunk")
                await svc.audited(caller, "mcp:get_chunk", "chunk_read", chunk_ids=[record.id], document_ids=[record.document_id])
            return {"chunk_id": record.id, "document_id": record.document_id, "ordinal": record.ordinal, "text": record.text,
                    "source": record.source, "title": record.title, "pages": list(record.pages),
                    "section": " > ".join(record.heading_path) or None, "collection": record.collection}


def _caller(ctx: Context) -> auth.KeyInfo:
    """The key the guard verified for the HTTP request carrying this call."""
    request = ctx.request_context.request
    caller = request.scope.get(CALLER_SCOPE_KEY) if request is not None else None
    if caller is None:  # not reachable through the mount (the guard runs first): refuse, never guess
        raise ToolError("unauthorized: no verified API key on this request")
    return caller


def _filters(collections: list[str] | None) -> SearchFilters | None:
    return SearchFilters(collections=tuple(collections)) if collections else None


@contextlib.contextmanager
def _tool_errors():
    """Client errors and unavailable parts reach the model as tool errors with their stable code."""
    try:
        yield
    except ApiError as exc:
        raise ToolError(f"{exc.code}: {exc.message}") from exc
    except GroundworkError as exc:
        raise ToolError(f"{exc.code}: the service could not complete this call; retry later") from exc
