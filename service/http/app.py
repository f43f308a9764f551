"""The HTTP API: a thin Litestar shell over ``Groundwork``, assembled here.

Route families live in ``routes_*``; who may call what in ``guard``; every error's status and
code in ``errors``. Every limit (body size, query length, ``k``, rate) is checked before any
model runs, and all model work (embedding, reranking, generation, ingestion) runs off the event
loop. An input can produce a 4xx but never a 500. Access control is the retrieval layer's: the
principal of the key travels into every query, and objects the caller may not see are
reported missing.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, Router, get
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from index.audit_store import AuditStore
from service import auth
from service.audit import AuditTrail
from service.engine import Groundwork
from service.http import console, routes_admin, routes_documents, routes_health, routes_openai, routes_ops, routes_query
from service.http.errors import EXCEPTION_HANDLERS
from service.http.guard import authorize, caller
from service.http.json_depth import check_json_depth
from service.http.logging_setup import RequestObserver
from service.http.mcp_endpoint import McpEndpoint
from service.http.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from service.http.metrics import ServiceMetrics
from service.http.ratelimit import RateLimiter
from service.http.services import API_PREFIX, Services, services
from service.jobs import JobRunner
from service.query.pipeline import search_threads

_ERROR_RESPONSES_DOC = "Errors are JSON {\"error\": {\"code\", \"message\"}} with a stable code."


class NestingCheckedRequest(Request):
    """A request whose JSON body is checked for nesting depth (``max_json_depth``) before it
    is decoded: every route taking a JSON body decodes it through ``json()``."""

    async def json(self) -> Any:
        check_json_depth(await self.body(), self.app.state.services.settings.max_json_depth)
        return await super().json()


def create_app(groundwork: Groundwork, *, start_jobs: bool = True) -> Litestar:
    """The ASGI application. Job workers start and stop with it (its lifespan)."""
    settings = groundwork.settings
    metrics = ServiceMetrics()
    jobs = JobRunner(
        groundwork.store, groundwork.ingest, workers=settings.ingest_job_workers if start_jobs else 0, roots=settings.ingest_roots,
        on_finished=lambda job_id, summary: _job_finished(svc, job_id, summary), ray_address=settings.ray_address,
    )
    audit = AuditTrail(AuditStore(groundwork.engine), settings, on_outcome=lambda outcome, n: metrics.audit_events.inc(n, outcome=outcome))
    svc = Services(
        groundwork=groundwork, settings=settings, limiter=RateLimiter(settings.rate_limit_per_minute), metrics=metrics, jobs=jobs,
        uploads_dir=(settings.data_dir / "uploads").resolve(), search_pool=search_threads(settings.search_threads),
        verified_keys=auth.VerifiedKeys(settings.auth_cache_s), audit=audit,
    )
    metrics.registry.on_collect(lambda: routes_health.index_gauges(svc))
    metrics.registry.on_collect(lambda: metrics.audit_pending.set_all({(): float(audit.pending)}))
    mcp = McpEndpoint(svc)
    metrics_route = get(
        "/metrics", sync_to_thread=True, tags=["service"], media_type=METRICS_CONTENT_TYPE, guards=[authorize],
        opt={"public": settings.metrics_public, "role": "admin"}, summary="Prometheus metrics (text format)",
        description="Needs an admin key (Prometheus: `authorization: {credentials: <key>}`) unless GROUNDWORK_METRICS_PUBLIC=true.",
    )(routes_health.metrics)
    api = Router(
        path=API_PREFIX, guards=[authorize], dependencies={"caller": Provide(caller, sync_to_thread=False)},
        route_handlers=[*routes_health.ROUTES, *routes_query.ROUTES, *routes_documents.ROUTES, *routes_admin.ROUTES,
                        *routes_openai.ROUTES, *routes_ops.ROUTES, routes_documents.upload_route(settings.max_upload_bytes)],
    )
    app = Litestar(
        route_handlers=[api, metrics_route, mcp.route(), *console.routes()],
        lifespan=[mcp.lifespan],
        dependencies={"svc": Provide(services, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        request_class=NestingCheckedRequest,
        request_max_body_size=settings.max_request_bytes,
        on_startup=[lambda: jobs.start(), lambda: audit.start()],
        on_shutdown=[lambda: jobs.stop(), lambda: svc.search_pool.shutdown(wait=False), lambda: audit.stop()],
        openapi_config=OpenAPIConfig(
            title="Groundwork", version="1", description="Search and grounded answers over your documents. " + _ERROR_RESPONSES_DOC,
            components=Components(security_schemes={"BearerAuth": SecurityScheme(type="http", scheme="bearer", description="gw_<prefix>_<secret>")}),
            security=[{"BearerAuth": []}],
            path="/schema",
        ),
        debug=False,
        logging_config=None,  # keep the process's logging (JSON lines under `groundwork serve`)
    )
    app.state.services = svc
    # Wrap the whole application, routing included, so that every request (unmatched paths and
    # errors raised before a handler too) gets a request id, a log line and a metric.
    app.asgi_handler = RequestObserver(app.asgi_handler, on_request=metrics.observe_request)
    return app


def _job_finished(svc: Services, job_id: str, summary) -> None:
    if summary is not None:
        svc.metrics.count_ingest(f.status for f in summary.files)
        svc.metrics.ingest_jobs.inc(status="done")
    else:
        svc.metrics.ingest_jobs.inc(status="failed")
