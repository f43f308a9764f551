"""The query pipeline: embed -> candidates -> fuse -> rerank -> (answer: generate + cite).

One object, built once by ``Groundwork``, serves the CLI (``search``, ``answer``) and the HTTP
API (``search_async``, then ``generate`` / ``generate_stream``) alike. Every degradation is
decided here, once: a keyword index that cannot serve leaves a hybrid search its dense half,
a reranker that fails or misses ``rerank_timeout_s`` leaves the fused order, a generator that
fails hands over to the extractive one; each adds a note to the outcome and calls
``on_fallback(stage)`` so a front door can count it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from functools import cached_property

import numpy as np

from index.errors import IndexCorrupt, IndexProblem
from index.settings import Settings
from index.store import document_line
from index.vectors import serve_single_queries_on_this_thread
from ingest.embedder import Embedder
from service.query.generation.base import (
    Generator,
    GeneratorUnavailable,
    answer_with_fallback,
    stream_with_fallback,
)
from service.query.ranking import spread_per_document
from service.query.rerank.base import Reranker
from service.query.retrieval import Retriever, collapse_documents, merge_candidates
from service.query.types import Answer, Hit, Query, SearchOutcome

log = logging.getLogger(__name__)

_KEYWORD_UNAVAILABLE = "the keyword index is unavailable"
OnFallback = Callable[[str], None]  # receives the stage that fell back: "keyword", "rerank" or "generate"


def _page_of(hit: Hit) -> tuple:
    """The page a hit starts on, for spreading results over pages; a hit without pages is a
    place of its own."""
    return (hit.document_id, hit.pages[0]) if hit.pages else ("chunk", hit.chunk_id)


class Stopwatch:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    def lap(self, name: str, since: float) -> float:
        now = time.perf_counter()
        self.timings[name] = round(self.timings.get(name, 0.0) + (now - since) * 1000, 3)
        return now


def search_threads(threads: int) -> ThreadPoolExecutor:
    """The executor ``search_async`` runs searches on. Measured on a small machine, a few
    threads fighting over the interpreter lock (and faiss's OpenMP teams spinning) serve fewer
    queries than one, so each search thread runs single-threaded faiss."""
    return ThreadPoolExecutor(threads, thread_name_prefix="search", initializer=serve_single_queries_on_this_thread)


async def run_on(executor: Executor, function: Callable, *args):
    """``function(*args)`` on ``executor``, in the caller's context (its log lines keep the
    request id). A plain executor hop, because anyio's worker-thread machinery (cancel scopes,
    a capacity limiter) cost the event loop more per search than the hop."""
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(executor, context.run, function, *args)


class QueryPipeline:
    def __init__(
        self,
        settings: Settings,
        retriever: Retriever,
        embedder: Embedder,
        reranker: Reranker | None,
        *,
        generator: Callable[[], Generator],
        extractive_generator: Callable[[], Generator],
        follow_changes: Callable[[], object] = lambda: None,
    ):
        """``generator`` and ``extractive_generator`` load lazily (an answer may never be
        asked for); ``generator`` may raise GeneratorUnavailable. ``follow_changes`` runs
        before every search (``Groundwork`` uses it to catch the indexes up when no
        background follower does)."""
        self.settings = settings
        self.retriever = retriever
        self.embedder = embedder
        self.reranker = reranker
        self._generator = generator
        self._extractive_generator = extractive_generator
        self._follow_changes = follow_changes

    # --- search -------------------------------------------------------------------------------
    def search(self, query: Query, *, vector: np.ndarray | None = None, on_fallback: OnFallback | None = None) -> SearchOutcome:
        """Search on this thread. ``vector`` is the query's embedding when the caller already
        has it (evaluation embeds all its queries in one batch); otherwise it is computed here,
        and only if the caller may see anything at all."""
        return self._search(query, vector, None, on_fallback)

    async def search_async(self, query: Query, executor: Executor, *, on_fallback: OnFallback | None = None) -> SearchOutcome:
        """Search from an event loop: the query embedding is awaited without holding a thread
        (the server's batching embedder fills the future), then the rest runs on ``executor``
        in one hop."""
        vector, embed_ms = None, None
        if query.mode != "keyword":
            started = time.perf_counter()
            vector = await asyncio.wrap_future(self.embedder.submit_query(query.text))
            embed_ms = round((time.perf_counter() - started) * 1000, 3)
        return await run_on(executor, self._search, query, vector, embed_ms, on_fallback)

    def _search(self, query: Query, vector: np.ndarray | None, embed_ms: float | None, on_fallback: OnFallback | None) -> SearchOutcome:
        self._follow_changes()
        settings, retriever = self.settings, self.retriever
        watch = Stopwatch()
        t = time.perf_counter()
        allowed = retriever.allowed(query.principal, query.filters)
        t = watch.lap("filter", t)
        if allowed.nothing:
            if embed_ms is not None:
                watch.timings["embed_query"] = embed_ms
            return SearchOutcome([], watch.timings)

        dense: list[tuple[int, float]] = []
        lexical: list[tuple[int, float]] = []
        if query.mode in ("hybrid", "dense"):
            if vector is None:
                vector = self.embedder.embed_queries([query.text])[0]
            t = watch.lap("embed_query", t)
            if embed_ms is not None:  # embedded before the hop: report the wait, not this lap
                watch.timings["embed_query"] = embed_ms
            dense = retriever.dense(vector, query.k, allowed)
            t = watch.lap("dense", t)
        notes: list[str] = []
        if query.mode in ("hybrid", "keyword"):
            lexical = self._keyword(query, allowed, notes, on_fallback)
            t = watch.lap("keyword", t)

        use_rerank = self.reranker is not None and (query.rerank if query.rerank is not None else True)
        # How many results later steps can use (the reranker's window, or k; collapsing to one
        # hit per document needs the whole window), and how far down the fused list to look
        # for them when near-duplicates or hidden chunks drop some.
        usable = max(query.k, settings.rerank_candidates) if use_rerank else query.k
        spread = settings.max_hits_per_document if query.max_per_document is None else query.max_per_document
        windows = settings.table_window_chars > 0
        per_page = settings.max_hits_per_page
        # Windows drop the hits they hold, and spreading moves hits back, so both need the spare
        # hits behind the first k too.
        need = None if (query.collapse or spread > 0 or per_page > 0 or windows) else usable
        named = None
        if query.mode == "hybrid" and settings.named_document_candidates > 0:
            named = retriever.named_documents(query.text, allowed)
            if named:
                # A keyword index that could not serve this search is not asked again.
                keyword_ok = not any(note.startswith(_KEYWORD_UNAVAILABLE) for note in notes)
                try:
                    dense_named, lexical_named = retriever.within_named(vector, query.text, named, keyword=keyword_ok)
                except IndexProblem as exc:  # failed since the corpus-wide search: keep its dense half
                    log.warning("keyword index unavailable inside named documents (%s)", exc)
                    dense_named, lexical_named = retriever.within_named(vector, query.text, named, keyword=False)
                dense, lexical = merge_candidates(dense, dense_named), merge_candidates(lexical, lexical_named)
            t = watch.lap("named_documents", t)
        ranked = retriever.fuse(query.mode, dense, lexical, depth=usable * 2 + 10, text=query.text, allowed=allowed, named=named)
        t = watch.lap("fusion", t)

        hits = retriever.fetch_visible(ranked, query.principal, need)
        t = watch.lap("fetch", t)

        reranked = False
        if use_rerank and hits:
            hits, reranked = self._rerank(query.text, hits, notes, on_fallback)
            t = watch.lap("rerank", t)

        if query.collapse:
            hits = collapse_documents(hits)
        elif spread > 0:
            hits = spread_per_document(hits, lambda hit: hit.document_id, spread)
        if per_page > 0 and not query.collapse:
            hits = spread_per_document(hits, _page_of, per_page)
        if windows:
            hits = retriever.with_table_windows(hits, query.k)
            watch.lap("windows", t)
        return SearchOutcome(hits[: query.k], watch.timings, reranked, notes)

    def _keyword(self, query: Query, allowed, notes: list[str], on_fallback: OnFallback | None) -> list[tuple[int, float]]:
        """BM25 candidates. A keyword index that cannot serve (its engine failed and it is fenced
        off until rebuilt from the database, within a second under the server) costs a hybrid
        search its keyword half, with a note; a keyword-only search has nothing else to offer
        and fails with a transient ``index_unavailable``."""
        try:
            return self.retriever.keyword(query.text, query.k, allowed)
        except IndexProblem as exc:
            if query.mode == "keyword":
                if isinstance(exc, IndexCorrupt):
                    raise IndexCorrupt(f"the keyword index is being rebuilt: {exc}", code="index_unavailable", transient=True) from exc
                raise
            log.warning("keyword index unavailable (%s); serving dense results only", exc)
            notes.append(f"{_KEYWORD_UNAVAILABLE} ({exc.code}); results are from dense retrieval only")
            if on_fallback is not None:
                on_fallback("keyword")
            return []

    # --- rerank -------------------------------------------------------------------------------
    def _rerank(self, text: str, hits: list[Hit], notes: list[str], on_fallback: OnFallback | None) -> tuple[list[Hit], bool]:
        """Hits with the head reordered by the reranker, or as they were (with a note) when it
        fails or misses its deadline: a broken or slow reranker costs the caller its ordering,
        never the request."""
        window = self.settings.rerank_candidates
        head = hits[:window]
        try:
            scores = self._scores_within_deadline(text, [_rerank_text(h) for h in head])
        except Exception as exc:
            log.warning("reranking failed (%s: %s); results are fused, not reranked", type(exc).__name__, exc)
            scores, problem = None, f"failed ({type(exc).__name__})"
        else:
            problem = f"took longer than {self.settings.rerank_timeout_s:g} s"
        if scores is None:
            notes.append(f"the reranker {problem}; results are fused, not reranked")
            if on_fallback is not None:
                on_fallback("rerank")
            return hits, False
        for hit, score in zip(head, scores):
            hit.rerank_score = float(score)
            hit.score = float(score)
        head.sort(key=lambda h: -h.rerank_score)
        return head + hits[window:], True

    def _scores_within_deadline(self, text: str, texts: list[str]) -> np.ndarray | None:
        """Scores, or None when the reranker misses ``rerank_timeout_s``. The late call
        finishes on its own thread (model calls cannot be interrupted) and its result is dropped."""
        timeout = self.settings.rerank_timeout_s
        if timeout <= 0:
            return self.reranker.rerank(text, texts)
        future = self._rerank_pool.submit(self.reranker.rerank, text, texts)
        try:
            return future.result(timeout=timeout)
        except FutureTimeout:
            future.cancel()  # still queued behind a slow call: never starts
            return None

    @cached_property
    def _rerank_pool(self) -> ThreadPoolExecutor:
        """One thread: reranks queue rather than pile up on the CPU, and a stuck one makes the
        next ones miss their deadline (and fall back) instead of multiplying."""
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="rerank")

    # --- answer -------------------------------------------------------------------------------
    def answer(self, query: Query, *, on_fallback: OnFallback | None = None) -> tuple[Answer, SearchOutcome]:
        """Search, then answer from the top passages."""
        outcome = self.search(query, on_fallback=on_fallback)
        return self.generate(query.text, outcome, on_fallback=on_fallback), outcome

    def generate(self, question: str, outcome: SearchOutcome, *, on_fallback: OnFallback | None = None) -> Answer:
        """The configured generator's answer from the outcome's top ``context_chunks`` hits;
        when it fails, the extractive one's, with a note. Records the ``generate`` timing."""
        started = time.perf_counter()
        passages = self.passages(outcome)
        primary, fallback = self._generators()
        if fallback is None:
            answer = primary.answer(question, passages)
        else:
            answer = answer_with_fallback(primary, fallback, question, passages, _generation_hook(on_fallback))
        outcome.timings_ms["generate"] = round((time.perf_counter() - started) * 1000, 3)
        return answer

    def generate_stream(self, question: str, outcome: SearchOutcome, *, on_fallback: OnFallback | None = None) -> Iterator[str | Answer]:
        """Text deltas then one Answer; falls back like ``generate`` before the first delta."""
        passages = self.passages(outcome)
        primary, fallback = self._generators()
        if fallback is None:
            return iter(primary.stream(question, passages))
        return stream_with_fallback(primary, fallback, question, passages, _generation_hook(on_fallback))

    def passages(self, outcome: SearchOutcome) -> Sequence[Hit]:
        return outcome.hits[: self.settings.context_chunks]

    def _generators(self) -> tuple[Generator, Generator | None]:
        """(primary, fallback): the extractive generator backs up any other, even a
        misconfigured one, so an answer request never fails for want of an LLM."""
        if self.settings.generator == "extractive":
            return self._generator(), None
        try:
            primary = self._generator()
        except GeneratorUnavailable as exc:
            primary = _UnavailableGenerator(self.settings.generator, exc)
        return primary, self._extractive_generator()

    def close(self) -> None:
        pool = self.__dict__.get("_rerank_pool")
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


class _UnavailableGenerator:
    """Stands for a configured generator that could not be built, so the shared fallback
    path reports it like any other generator failure."""

    def __init__(self, name: str, error: Exception):
        self.name, self.error = name, error

    def answer(self, question, passages):
        raise self.error

    def stream(self, question, passages):
        raise self.error


def _generation_hook(on_fallback: OnFallback | None) -> Callable[[Exception], None] | None:
    if on_fallback is None:
        return None
    return lambda _error: on_fallback("generate")


def _rerank_text(hit: Hit) -> str:
    named = document_line(hit.title, hit.document_context)
    return f"{named}\n{hit.text}" if named else hit.text
