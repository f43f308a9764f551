"""Health and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.di import NamedDependency

from index.errors import IndexCorrupt
from index.settings import AuthMode
from service.http.api_models import HealthResponse
from service.http.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from service.http.services import Services
from service.query.batching import QueryBatcher
from service.query.rerank import reranker_configured


@get("/health", opt={"public": True}, sync_to_thread=True, tags=["service"], summary="Liveness and component status (no key needed)",
     description="Open to anyone, so it states only whether each component works: `ok`, `degraded` (answers may miss "
                 "recent or keyword matches, or come without reranking; `problems` says why) or `failing` (503: the "
                 "database is unreachable or fails its integrity check, or the indexes or the embedder cannot serve). "
                 "Admin keys (and dev mode) also get index sizes, positions and lag, the last database integrity check, "
                 "and each problem in full: counts cover every document, including those other keys may not see.")
def health(request: Request, svc: NamedDependency[Services]) -> Response[HealthResponse]:
    gw = svc.groundwork
    detailed = _is_admin_request(svc, request.headers.get("authorization"))
    problems: list[str] = []
    database = "ok"
    try:
        gw.store.max_seq()
    except Exception as exc:
        database = f"error: {type(exc).__name__}"
        problems.append("database unreachable")
    storage: dict[str, Any] = {}
    if database == "ok":
        try:
            storage = gw.storage_health()  # cheap: no integrity check runs here (the server's follower runs it)
        except Exception as exc:
            database = f"error: {type(exc).__name__}"
            problems.append("database unreachable")
    storage_problems = storage.get("problems", [])
    # Problem lines may name files or hosts after their first colon: the detail is for admins.
    problems.extend(storage_problems if detailed else [_summary(line) for line in storage_problems])
    if storage.get("status") == "failing":
        database = "failing its integrity check"
    indexes: dict[str, Any] = {}
    try:
        idx = gw.indexes
        indexes = {"version": idx.version, "state": storage.get("indexes", {}).get("status", "unknown")}
        if detailed:
            indexes |= {"position": idx.position, "vectors": int(idx.vectors.live_count), "keyword_docs": _keyword_count(idx)}
            if "indexes" in storage:
                indexes |= {"lag": storage["indexes"]["lag"], "positions": storage["indexes"]["positions"]}
    except Exception as exc:
        indexes = {"error": f"{type(exc).__name__}: {exc}"}
        problems.append("indexes unavailable")
    embedder: dict[str, Any] = {}
    try:
        e = gw.embedder
        embedder = {"model": e.model_name, "device": str(getattr(e, "device", "unknown"))}
    except Exception as exc:
        embedder = {"error": f"{type(exc).__name__}: {exc}"}
        problems.append("embedder unavailable")
    try:
        reranker_obj, reranker = gw.reranker_state
        if reranker_obj is None and reranker_configured(svc.settings):  # none configured is not a problem
            problems.append(f"reranker {reranker}")
    except Exception as exc:
        reranker = f"error: {type(exc).__name__}"
        problems.append("reranker unavailable")
    try:
        generator = getattr(gw.generator, "name", svc.settings.generator)
    except Exception as exc:
        generator = f"unavailable: {type(exc).__name__}"
        problems.append("generator unavailable")
    failing = database != "ok" or "error" in indexes or "error" in embedder
    status = "failing" if failing else ("degraded" if problems else "ok")
    body = HealthResponse(status=status, database=database, indexes=indexes, embedder=embedder, reranker=str(reranker),
                          generator=str(generator), problems=problems,
                          database_integrity=storage.get("database_integrity") if detailed else None)
    return Response(body, status_code=503 if failing else 200)


def _summary(problem: str) -> str:
    """A problem line without its detail: "keyword index behind by 64 change-log rows"."""
    return problem.split(": ", 1)[0]


def _keyword_count(indexes) -> int | None:
    """None while the keyword index is fenced off (corrupt, being rebuilt): problems say so."""
    try:
        return int(indexes.keyword.count())
    except IndexCorrupt:
        return None


def _is_admin_request(svc: Services, header: str | None) -> bool:
    """Whether an optional Authorization header belongs to an admin key (always, in dev mode)."""
    if svc.settings.auth == AuthMode.off:
        return True
    if not header:
        return False
    caller = svc.verified_keys.authenticate(svc.groundwork.store, header)
    return caller is not None and caller.allows("admin")


def metrics(svc: NamedDependency[Services]) -> Response[str]:
    """Prometheus text. Routed by ``create_app``: whether it needs a key is a setting."""
    return Response(svc.metrics.render(), media_type=METRICS_CONTENT_TYPE)


def index_gauges(svc: Services) -> None:
    """Refreshes the size gauges when metrics are scraped."""
    stats = svc.groundwork.stats()
    svc.metrics.index.set_all({(kind,): float(stats.get(kind, 0) or 0) for kind in ("vectors", "keyword_docs", "documents", "chunks")})
    embedder = svc.groundwork.embedder
    if isinstance(embedder, QueryBatcher):  # the server's
        svc.metrics.query_embedding.set_all({("batches",): float(embedder.batches), ("queries",): float(embedder.queries)})


ROUTES = [health]
