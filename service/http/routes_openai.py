"""OpenAI-compatible chat completions and model list: one "model" per collection."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.spec import Example
from litestar.params import Body
from litestar.response import Stream

from service import auth
from service.http.api_models import (
    ApiError,
    ChatChoice,
    ChatChoiceMessage,
    ChatCompletionRequest,
    ChatCompletionResponse,
    check_query,
    citation_out,
    message_text,
    to_builtins,
)
from service.http.errors import ERROR_RESPONSES
from service.http.services import Services, iterate_in_thread
from service.http.sse import SSE_HEADERS, sse
from service.query.types import Answer, Principal, Query, SearchFilters, SearchOutcome

log = logging.getLogger(__name__)

ALL_COLLECTIONS_MODEL = "groundwork"

_CHAT_EXAMPLE = Example(summary="Ask the hr collection", value={
    "model": "hr", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "How many vacation days do I get?"}],
})


def _visible_collections(svc: Services, principal: Principal) -> set[str]:
    """Collections holding a document the caller may see (every collection for all-access keys):
    the names of the others are not the caller's business either."""
    gw = svc.groundwork
    if principal.all_access:
        return set(gw.store.collections().values())
    gw.catalog.refresh(gw.indexes.position)
    return set(gw.catalog.visible_collections(principal.groups, principal.can_see))


@get("/models", sync_to_thread=True, responses=ERROR_RESPONSES, tags=["openai"], summary="OpenAI-compatible model list: one model per collection")
def list_models(svc: NamedDependency[Services], caller: NamedDependency[auth.KeyInfo]) -> dict[str, Any]:
    names = [ALL_COLLECTIONS_MODEL, *sorted(_visible_collections(svc, caller.principal))]
    return {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": "groundwork"} for n in names]}


@post("/chat/completions", status_code=200, responses=ERROR_RESPONSES, tags=["openai"], summary="OpenAI-compatible chat completions",
      description="`model` names a collection (or `groundwork` for all). The last user message is the question; the grounded "
                  "answer is the assistant message. Groundwork adds a top-level `citations` array (and `grounded`); when "
                  "streaming, they arrive on the final chunk, before `data: [DONE]`.")
async def chat_completions(svc: NamedDependency[Services], caller: NamedDependency[auth.KeyInfo],
                           data: Annotated[ChatCompletionRequest, Body(examples=[_CHAT_EXAMPLE])]) -> Response[ChatCompletionResponse]:
    question = next((message_text(m.content) for m in reversed(data.messages) if m.role == "user"), "")
    if not question.strip():
        raise ApiError(400, "no_user_message", "messages must contain a user message with text")
    check_query(question, svc.settings)
    filters = None
    if data.model != ALL_COLLECTIONS_MODEL:
        if len(data.model) > 200 or data.model not in await anyio.to_thread.run_sync(_visible_collections, svc, caller.principal):
            raise ApiError(404, "model_not_found", f"no collection named {data.model[:80]!r}; use 'groundwork' for all collections")
        filters = SearchFilters(collections=(data.model,))
    outcome = await svc.search(Query(question, caller.principal, k=svc.settings.context_chunks, filters=filters))
    await svc.audited(caller, "POST /v1/chat/completions", "chat", query=question, hits=outcome.hits)
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if data.stream:
        return Stream(_chat_events(svc, question, outcome, completion_id, created, data.model), media_type="text/event-stream",
                      headers=SSE_HEADERS)
    result = await anyio.to_thread.run_sync(svc.generate, question, outcome)
    return Response(ChatCompletionResponse(
        id=completion_id, object="chat.completion", created=created, model=data.model,
        choices=[ChatChoice(index=0, message=ChatChoiceMessage(role="assistant", content=result.text), finish_reason="stop")],
        citations=[citation_out(c) for c in result.citations], grounded=result.grounded,
    ))


async def _chat_events(svc: Services, question: str, outcome: SearchOutcome, completion_id: str, created: int, model: str) -> AsyncIterator[bytes]:
    def chunk(delta: dict, finish: str | None = None, **extra) -> bytes:
        body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return sse(None, body)

    yield chunk({"role": "assistant", "content": ""})
    problem = "the generator ended without an answer"
    try:
        async for item in iterate_in_thread(svc.stream_answer(question, outcome)):
            if isinstance(item, Answer):
                yield chunk({}, "stop", citations=[to_builtins(citation_out(c)) for c in item.citations], grounded=item.grounded)
                problem = None
                break
            yield chunk({"content": str(item)})
    except Exception as exc:
        log.exception("chat stream failed")
        problem = f"the answer could not be completed ({type(exc).__name__})"
    if problem is not None:
        yield sse(None, {"error": {"code": "generation_failed", "message": problem}})
    yield b"data: [DONE]\n\n"


ROUTES = [list_models, chat_completions]
