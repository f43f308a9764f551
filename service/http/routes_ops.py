"""Operating the service: who am I, ingestion jobs, index versions, the audit trail.

Public API routes like any other (documented, role-checked); the web console reads them with
the user's own key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from index.models import MAX_ID
from index.settings import AuthMode
from service import auth
from service.http.api_models import ApiError, AuditList, CallerOut, IndexesOut, JobList, JobOut
from service.http.errors import ERROR_RESPONSES
from service.http.services import Services


@get("/me", responses=ERROR_RESPONSES, tags=["service"], summary="The calling key: role, principal and groups")
async def whoami(svc: NamedDependency[Services], caller: NamedDependency[auth.KeyInfo]) -> CallerOut:
    principal = caller.principal
    groups = sorted(principal.groups) + ([auth.ALL_ACCESS_GROUP] if principal.all_access else [])
    return CallerOut(name=caller.name, prefix=caller.prefix, role=caller.role, principal=principal.id, groups=groups,
                     auth="off" if svc.settings.auth == AuthMode.off else "required")


@get("/ingest-jobs", sync_to_thread=True, opt={"role": "admin"}, responses=ERROR_RESPONSES, tags=["ingestion"],
     summary="Recent ingestion jobs, newest first (counts grow while a job runs)")
def list_ingest_jobs(svc: NamedDependency[Services], status: Annotated[str | None, QueryParameter(max_length=20)] = None,
                     limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50) -> JobList:
    jobs = svc.groundwork.store.jobs.recent(status=status, limit=limit)
    return JobList(jobs=[JobOut(job_id=j.id, status=j.status, params=dict(j.params or {}), counts=dict(j.counts or {}),
                                error=j.error, failures=[], created_at=j.created_at, started_at=j.started_at,
                                finished_at=j.finished_at, updated_at=j.updated_at) for j in jobs])


@get("/indexes", sync_to_thread=True, opt={"role": "admin"}, responses=ERROR_RESPONSES, tags=["admin"],
     summary="Index versions on disk, the live one, its lag behind the database, and the last reindex")
def indexes(svc: NamedDependency[Services]) -> IndexesOut:
    gw = svc.groundwork
    live = gw.indexes
    root = live.root
    versions = sorted(int(child.name[1:]) for child in root.glob("v*") if child.is_dir() and child.name[1:].isdigit())
    storage = gw.storage_health()
    reindex = gw.reindexer.state()
    return IndexesOut(live_version=live.version, versions=versions, position=live.position, database_position=gw.store.max_seq(),
                      status=storage["status"], problems=storage["problems"], database_integrity=storage["database_integrity"],
                      vector_index=str(getattr(live.vectors, "kind", "unknown")), keyword_index=str(getattr(live.keyword, "name", "unknown")),
                      reindex={"running": reindex.running, "started_at": reindex.started_at, "finished_at": reindex.finished_at,
                               "version": reindex.version, "error": reindex.error})


@get("/audit", sync_to_thread=True, opt={"role": "admin"}, responses=ERROR_RESPONSES, tags=["admin"],
     summary="The audit trail, newest first: who searched, read or changed what")
def read_audit(svc: NamedDependency[Services],
               key: Annotated[str | None, QueryParameter(max_length=200, description="A key's prefix or name.")] = None,
               since: Annotated[datetime | None, QueryParameter(description="ISO 8601; naive times are UTC.")] = None,
               until: Annotated[datetime | None, QueryParameter(description="ISO 8601; rows before this time.")] = None,
               document_id: Annotated[int | None, QueryParameter(ge=1, le=MAX_ID)] = None,
               principal: Annotated[str | None, QueryParameter(max_length=200)] = None,
               action: Annotated[str | None, QueryParameter(max_length=40)] = None,
               cursor: Annotated[int | None, QueryParameter(ge=1, le=MAX_ID, description="next_cursor of the previous page.")] = None,
               limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100) -> AuditList:
    if since is not None and until is not None and until <= since:
        raise ApiError(400, "invalid_range", "until must be after since")
    rows = svc.audit.store.query(key=key, since=since, until=until, document_id=document_id, principal=principal, action=action,
                                 before_id=cursor, limit=limit + 1)
    page = rows[:limit]
    events: list[dict[str, Any]] = [r.to_json() for r in page]
    return AuditList(events=events, next_cursor=page[-1].id if len(rows) > limit else None, mode=svc.audit.mode)


ROUTES = [whoami, list_ingest_jobs, indexes, read_audit]
