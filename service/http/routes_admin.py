"""Admin: ingestion jobs over server-side paths, reindexing, API keys."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

from litestar import Response, delete, get, post
from litestar.di import NamedDependency
from litestar.openapi.spec import Example
from litestar.params import Body, FromPath, JSONBody

from index.models import JobStatus
from service import auth
from service.http.api_models import (
    ApiError,
    IngestJobRequest,
    JobAccepted,
    JobOut,
    KeyCreated,
    KeyCreateRequest,
    KeyOut,
    ReindexRequest,
    ReindexStatus,
    SnapshotOut,
    SnapshotRequest,
    check_groups,
    check_name,
    key_out,
)
from service.http.errors import ERROR_RESPONSES, not_found
from service.http.services import API_PREFIX, Services
from service.jobs import check_paths

_JOB_EXAMPLE = Example(summary="Ingest a shared folder", value={"paths": ["/srv/shared/handbook"], "collection": "hr", "groups": ["hr"], "sync": True})


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. a name longer than the file system allows
        return False


@post("/ingest-jobs", status_code=202, sync_to_thread=True, opt={"role": "admin"}, responses=ERROR_RESPONSES, tags=["ingestion"],
      summary="Queue ingestion of server-side paths (inside the configured ingest roots)")
def create_ingest_job(svc: NamedDependency[Services], caller: NamedDependency[auth.KeyInfo], data: Annotated[IngestJobRequest, Body(examples=[_JOB_EXAMPLE])]) -> Response[JobAccepted]:
    collection = check_name(data.collection, "collection")
    groups = check_groups(data.groups)
    paths = check_paths(data.paths, svc.settings.ingest_roots)  # PathNotAllowed: 403 path_forbidden (errors.py)
    missing = [str(p) for p in paths if not _exists(p)]
    if missing:
        raise ApiError(400, "path_not_found", f"no such file or directory: {missing[0]}")
    job_id = svc.jobs.submit(paths, collection=collection, groups=groups, sync=data.sync, metadata=data.metadata,
                             submitted_by=caller.principal.id)
    svc.audited_blocking(caller, "POST /v1/ingest-jobs", "ingest_job", 202)
    return Response(JobAccepted(job_id=job_id, status=JobStatus.queued), status_code=202,
                    headers={"Location": f"{API_PREFIX}/ingest-jobs/{job_id}"})


@get("/ingest-jobs/{job_id:str}", sync_to_thread=True, opt={"role": "writer"}, responses=ERROR_RESPONSES, tags=["ingestion"], summary="Status of an ingestion job")
def get_ingest_job(svc: NamedDependency[Services], caller: NamedDependency[auth.KeyInfo], job_id: FromPath[str]) -> JobOut:
    if len(job_id) > 40:
        raise not_found("job")
    found = svc.groundwork.store.jobs.get(job_id)
    if found is None:
        raise not_found("job")
    job, failures = found
    if caller.role != "admin" and (job.params or {}).get("submitted_by") != caller.principal.id:
        raise not_found("job")
    return JobOut(job_id=job.id, status=job.status, params=dict(job.params or {}), counts=dict(job.counts or {}), error=job.error,
                  failures=[{"path": f.path, "reason": f.reason, "detail": f.detail} for f in failures], created_at=job.created_at,
                  started_at=job.started_at, finished_at=job.finished_at, updated_at=job.updated_at)


@post("/reindex", status_code=202, sync_to_thread=True, opt={"role": "admin"}, responses=ERROR_RESPONSES, tags=["admin"],
      summary="Rebuild the indexes into a new version and switch atomically (searches continue), behind a quality gate if asked")
def start_reindex(svc: NamedDependency[Services], data: JSONBody[ReindexRequest | None] = None) -> ReindexStatus:
    reindexer = svc.groundwork.reindexer
    gate = None
    if data is not None and data.gate is not None:
        from service.quality_gate import QualityGate, load_gate_queries

        folder = check_paths([data.gate], svc.settings.ingest_roots)[0]  # PathNotAllowed: 403
        max_drop = svc.settings.reindex_gate_max_drop if data.max_drop is None else data.max_drop
        gate = QualityGate(folder, data.split, max_drop)
        load_gate_queries(gate, svc.groundwork.store)  # an unusable gate is a 400 now, not a failed job later
    elif data is not None and data.max_drop is not None:
        raise ApiError(400, "invalid_request", "max_drop needs a gate")
    if not reindexer.start(reembed=bool(data and data.reembed), gate=gate):
        raise ApiError(409, "reindex_running", "a reindex is already running")
    return ReindexStatus(**asdict(reindexer.state()))


@get("/reindex", opt={"role": "admin"}, responses=ERROR_RESPONSES, tags=["admin"], summary="Status of the last reindex")
async def reindex_status(svc: NamedDependency[Services]) -> ReindexStatus:
    return ReindexStatus(**asdict(svc.groundwork.reindexer.state()))


@post("/snapshots", status_code=201, sync_to_thread=True, opt={"role": "admin"}, responses=ERROR_RESPONSES, tags=["admin"],
      summary="Write a consistent snapshot (database, live index version, uploads) under the snapshot directory",
      description="Searches and ingestion go on meanwhile. The response comes when the snapshot is complete; restore it with "
                  "`groundwork snapshot restore DIR` into an empty data directory.")
def create_snapshot(svc: NamedDependency[Services], data: JSONBody[SnapshotRequest | None] = None) -> SnapshotOut:
    from service.snapshots import snapshot_folder, take_snapshot

    target = snapshot_folder(svc.settings, data.name if data else None)
    if _exists(target):
        raise ApiError(409, "snapshot_exists", f"a snapshot named {target.name!r} already exists")
    return SnapshotOut(**take_snapshot(svc.settings, target))


@post("/keys", status_code=201, sync_to_thread=True, opt={"role": "admin"}, responses=ERROR_RESPONSES, tags=["admin"], summary="Create an API key (shown once)")
def create_key(svc: NamedDependency[Services], data: Annotated[KeyCreateRequest, Body(examples=[Example(summary="HR reader", value={"role": "reader", "groups": ["hr"], "name": "hr-portal"})])]) -> KeyCreated:
    groups = [g for g in data.groups if g != auth.ALL_ACCESS_GROUP]
    check_groups(groups)
    plaintext, row = auth.create_key(svc.groundwork.store, data.role, data.groups, data.name[:200], principal=(data.principal or None))
    return KeyCreated(key=plaintext, info=key_out(row))


@get("/keys", sync_to_thread=True, opt={"role": "admin"}, responses=ERROR_RESPONSES, tags=["admin"], summary="List API keys (never their secrets)")
def list_keys(svc: NamedDependency[Services]) -> list[KeyOut]:
    return [key_out(row) for row in auth.list_keys(svc.groundwork.store)]


@delete("/keys/{key_id:str}", sync_to_thread=True, opt={"role": "admin"}, responses=ERROR_RESPONSES, tags=["admin"], summary="Revoke a key by prefix or id")
def revoke_key(svc: NamedDependency[Services], key_id: FromPath[str]) -> None:
    if len(key_id) > 200 or not auth.revoke_key(svc.groundwork.store, key_id):
        raise not_found("key")
    svc.verified_keys.clear()  # revoked here: refused from the next request on


ROUTES = [create_ingest_job, get_ingest_job, start_reindex, reindex_status, create_snapshot, create_key, list_keys, revoke_key]
