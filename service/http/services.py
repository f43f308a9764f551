"""What every route handler gets: the engine and this application's own parts (limits,
metrics, job runner, search threads), plus the query calls bound to them.

Handlers call ``svc.search`` / ``svc.generate`` / ``svc.stream_answer``: the engine's one query
pipeline, on this app's search threads, with its fallbacks and stage timings counted here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import anyio
from litestar.datastructures import State

from index.settings import Settings
from service import auth
from service.audit import AuditTrail
from service.engine import Groundwork
from service.http.logging_setup import current_request
from service.http.metrics import ServiceMetrics
from service.http.ratelimit import RateLimiter
from service.jobs import JobRunner
from service.query.types import Answer, Query, SearchOutcome

API_PREFIX = "/v1"


@dataclass
class Services:
    groundwork: Groundwork
    settings: Settings
    limiter: RateLimiter
    metrics: ServiceMetrics
    jobs: JobRunner
    uploads_dir: Path
    search_pool: ThreadPoolExecutor
    verified_keys: auth.VerifiedKeys
    audit: AuditTrail

    def count_fallback(self, stage: str) -> None:
        self.metrics.fallbacks.inc(stage=stage)

    async def search(self, query: Query) -> SearchOutcome:
        outcome = await self.groundwork.pipeline.search_async(query, self.search_pool, on_fallback=self.count_fallback)
        self.metrics.observe_stages(outcome.timings_ms)
        return outcome

    def generate(self, question: str, outcome: SearchOutcome) -> Answer:
        """Blocking (a model or an HTTP call): run it in a worker thread."""
        answer = self.groundwork.pipeline.generate(question, outcome, on_fallback=self.count_fallback)
        self.metrics.observe_stages({"generate": outcome.timings_ms["generate"]})
        return answer

    async def audited(self, caller: auth.KeyInfo, route: str, action: str, status: int = 200, **fields) -> None:
        """Record who saw what (``service.audit``); in acknowledged mode, returns once committed."""
        await self.audit.record(self.audit.event(caller, route, action, status, request_id=_request_id(), **fields))

    def audited_blocking(self, caller: auth.KeyInfo, route: str, action: str, status: int = 200, **fields) -> None:
        """``audited`` for handlers running on a worker thread."""
        self.audit.record_blocking(self.audit.event(caller, route, action, status, request_id=_request_id(), **fields))

    def stream_answer(self, question: str, outcome: SearchOutcome) -> Iterator[str | Answer]:
        """Blocking iterator: drive it with ``iterate_in_thread``."""
        return self.groundwork.pipeline.generate_stream(question, outcome, on_fallback=self.count_fallback)


def _request_id() -> str | None:
    ctx = current_request.get()
    return ctx.request_id if ctx is not None else None


def services(state: State) -> Services:
    """The ``svc`` dependency."""
    return state.services


async def iterate_in_thread(items: Iterator) -> AsyncIterator:
    """Drive a blocking iterator from the event loop, one item per worker-thread hop."""
    done = object()
    try:
        while True:
            item = await anyio.to_thread.run_sync(next, items, done)
            if item is done:
                return
            yield item
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()
