"""Documents: uploads (multipart, idempotent), listing, attributes, deletion."""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from pathlib import Path
from typing import Annotated

from litestar import Response, delete, get, patch, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.openapi.spec import Example
from litestar.params import Body, FromPath, FromQuery, HeaderParameter, QueryParameter

from index.models import MAX_ID, Document
from service import auth
from service.http.api_models import (
    ApiError,
    DocumentList,
    DocumentOut,
    DocumentPatch,
    UploadForm,
    UploadResponse,
    check_groups,
    check_name,
    document_out,
    error_body,
    to_builtins,
)
from service.http.errors import ERROR_RESPONSES, check_id, not_found
from service.http.json_depth import check_json_depth
from service.http.services import Services

MULTIPART_SLACK_BYTES = 64 * 1024  # form fields and part headers around the file itself
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
_UNSAFE_FILENAME_CHARS = re.compile(r"[^\w. +()-]")  # \w: letters and digits of any script


def _safe_filename(name: str | None) -> str:
    base = re.split(r"[\\/]", name or "")[-1]
    base = _UNSAFE_FILENAME_CHARS.sub("_", base).strip(" .")
    if len(base) > 200:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: 200 - len(ext) - 1] + dot + ext) if dot and len(ext) <= 16 else base[:200]
    return base or "upload"


def _principal_segment(principal_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", principal_id)[:64] or "_"


def _parse_groups(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for value in values or []:
        out.extend(part.strip() for part in value.split(",") if part.strip())
    return check_groups(sorted(set(out)))


def _parse_metadata(value: str | None, max_depth: int) -> dict:
    if not value:
        return {}
    check_json_depth(value, max_depth)  # before json.loads, which recurses once per level
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        raise ApiError(400, "invalid_metadata", "metadata must be a JSON object") from None
    if not isinstance(parsed, dict):
        raise ApiError(400, "invalid_metadata", "metadata must be a JSON object")
    return parsed


def _spool_upload(upload: UploadFile, directory: Path, limit: int) -> tuple[Path, str, int]:
    """Copy the upload to a temporary file beside its final place, hashing as it goes."""
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".incoming-{uuid.uuid4().hex}"
    digest, size = hashlib.sha256(), 0
    source = upload.file
    source.seek(0)
    try:
        with open(temporary, "wb") as out:
            while block := source.read(1 << 20):
                size += len(block)
                if size > limit:
                    raise ApiError(413, "file_too_large", f"the file is larger than max_upload_bytes={limit}")
                digest.update(block)
                out.write(block)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary, digest.hexdigest(), size


def _idempotent_replay(svc: Services, record_key: str, fingerprint: str) -> Response | None:
    record = svc.groundwork.store.idempotency.get(record_key)
    if record is None:
        return None
    if record.response.get("request") != fingerprint:
        raise ApiError(422, "idempotency_key_reused", "this Idempotency-Key was used for a different request")
    return Response(record.response.get("body", {}), status_code=record.status_code, headers={"Idempotent-Replayed": "true"})


def _remember(svc: Services, record_key: str, fingerprint: str, status: int, body: dict) -> Response:
    if not svc.groundwork.store.idempotency.remember(record_key, status, {"request": fingerprint, "body": body}):
        # A concurrent duplicate finished first: answer as it did.
        replay = _idempotent_replay(svc, record_key, fingerprint)
        if replay is not None:
            return replay
    return Response(body, status_code=status)


def upload_document(svc: NamedDependency[Services], caller: NamedDependency[auth.KeyInfo], data: Annotated[UploadForm, Body(media_type=RequestEncodingType.MULTI_PART)],
                    idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key", required=False)] = None) -> UploadResponse:
    """``POST /v1/documents``, routed by ``upload_route``: its body limit is a setting."""
    collection = check_name(data.collection or "default", "collection")
    groups = _parse_groups(data.groups)
    metadata = _parse_metadata(data.metadata, svc.settings.max_json_depth)
    if not isinstance(data.file, UploadFile):
        raise ApiError(400, "missing_file", "send the document as the multipart field 'file'")
    if idempotency_key is not None and not _IDEMPOTENCY_KEY.match(idempotency_key):
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1-200 printable ASCII characters")
    filename = _safe_filename(data.file.filename)
    temporary, sha256, size = _spool_upload(data.file, svc.uploads_dir, svc.settings.max_upload_bytes)
    try:
        if size == 0:
            raise ApiError(400, "empty_file", "the uploaded file is empty")
        fingerprint = hashlib.sha256(json.dumps([sha256, filename, collection, groups, metadata], sort_keys=True).encode()).hexdigest()
        record_key = f"{caller.prefix}:{idempotency_key}" if idempotency_key else None
        if record_key is not None and (replay := _idempotent_replay(svc, record_key, fingerprint)) is not None:
            return replay  # type: ignore[return-value]
        # Names are per uploader: another principal's same-named document, visible or not, is
        # never replaced, and whether one exists is never revealed.
        source = f"upload://{collection}/{_principal_segment(caller.principal.id)}/{filename}"
        existing = svc.groundwork.store.find_document(collection, source)
        if existing is not None and not caller.principal.can_see(existing.groups):
            raise ApiError(409, "source_conflict", "this key uploaded a document with this name that it may no longer see; "
                                                   "upload under another name or ask an admin")
        final_dir = svc.uploads_dir / sha256
        final_dir.mkdir(parents=True, exist_ok=True)
        path = final_dir / filename
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)

    job_id = svc.groundwork.store.jobs.create({"paths": [source], "collection": collection, "groups": groups, "sync": False,
                                               "submitted_via": "upload", "submitted_by": caller.principal.id})
    resolved = path.resolve()
    summary = svc.groundwork.ingest([resolved], collection=collection, groups=groups, metadata=metadata or None, job_id=job_id,
                                    progress=False, source_names={resolved: source})
    svc.metrics.count_ingest(f.status for f in summary.files)
    svc.metrics.ingest_jobs.inc(status="done")
    result = summary.files[0] if summary.files else None
    status_text = result.status if result else "failed"
    svc.audited_blocking(caller, "POST /v1/documents", "document_upload", 422 if status_text == "failed" else 200,
                         document_ids=[result.document_id] if result and result.document_id else [])
    body = UploadResponse(document_id=result.document_id if result else None, job_id=job_id, status=status_text,
                          chunks=result.chunks if result else 0, source=source, reason=result.reason if result else "empty",
                          detail=result.detail if result else None)
    if status_text == "failed":
        status, payload = 422, error_body("unprocessable_document", f"the document could not be ingested: {body.reason}",
                                          {"document": to_builtins(body)})
    else:
        status, payload = (201 if status_text == "added" else 200), to_builtins(body)
    if record_key is not None:
        return _remember(svc, record_key, fingerprint, status, payload)  # type: ignore[return-value]
    return Response(payload, status_code=status)  # type: ignore[return-value]


def _visible_document(svc: Services, caller: auth.KeyInfo, document_id: int, audit_route: str | None = None,
                      audit_action: str = "") -> Document:
    """The document, or 404 for missing and invisible alike (a refused change is audited
    with no document id: the row must not confirm that it exists)."""
    check_id(document_id, "document")
    doc = svc.groundwork.store.get_document(document_id)
    if doc is None or not caller.principal.can_see(doc.groups or []):
        if audit_route is not None:
            svc.audited_blocking(caller, audit_route, audit_action, 404)
        raise not_found("document")
    return doc


@get("/documents", sync_to_thread=True, opt={"role": "writer"}, responses=ERROR_RESPONSES, tags=["documents"], summary="List documents the key may see")
def list_documents(svc: NamedDependency[Services], caller: NamedDependency[auth.KeyInfo], collection: FromQuery[str | None] = None,
                   status: FromQuery[str | None] = None, source_prefix: FromQuery[str | None] = None,
                   cursor: Annotated[int, QueryParameter(ge=0, le=MAX_ID, description="Last id of the previous page.")] = 0,
                   limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100) -> DocumentList:
    principal = caller.principal
    store = svc.groundwork.store
    docs = store.list_documents(collection=collection, status=status, source_prefix=source_prefix, after_id=cursor, limit=limit + 1,
                                visible_groups=None if principal.all_access else set(principal.groups))
    collections = store.collections()
    page = docs[:limit]
    return DocumentList(documents=[document_out(d, collections) for d in page],
                        next_cursor=page[-1].id if len(docs) > limit else None)


@get("/documents/{document_id:int}", sync_to_thread=True, opt={"role": "writer"}, responses=ERROR_RESPONSES, tags=["documents"], summary="One document's attributes")
def get_document(svc: NamedDependency[Services], caller: NamedDependency[auth.KeyInfo], document_id: FromPath[int]) -> DocumentOut:
    doc = _visible_document(svc, caller, document_id)
    return document_out(doc, svc.groundwork.store.collections())


@patch("/documents/{document_id:int}", sync_to_thread=True, opt={"role": "writer"}, responses=ERROR_RESPONSES, tags=["documents"],
       summary="Change metadata, groups or title (no re-embedding)")
def patch_document(svc: NamedDependency[Services], caller: NamedDependency[auth.KeyInfo], document_id: FromPath[int],
                   data: Annotated[DocumentPatch, Body(examples=[Example(summary="Restrict to HR", value={"groups": ["hr"], "metadata": {"owner": "people-ops"}})])]) -> DocumentOut:
    _visible_document(svc, caller, document_id, "PATCH /v1/documents/{document_id}", "document_update")
    groups = check_groups(data.groups) if data.groups is not None else None
    updated = svc.groundwork.store.update_document(document_id, metadata=data.metadata, groups=groups, title=data.title)
    if updated is None:
        raise not_found("document")
    svc.audited_blocking(caller, "PATCH /v1/documents/{document_id}", "document_update", document_ids=[document_id])
    return document_out(updated, svc.groundwork.store.collections())


@delete("/documents/{document_id:int}", sync_to_thread=True, opt={"role": "writer"}, responses=ERROR_RESPONSES, tags=["documents"], summary="Delete a document")
def delete_document(svc: NamedDependency[Services], caller: NamedDependency[auth.KeyInfo], document_id: FromPath[int]) -> None:
    doc = _visible_document(svc, caller, document_id, "DELETE /v1/documents/{document_id}", "document_delete")
    if not svc.groundwork.store.delete_document(document_id):
        raise not_found("document")
    svc.audited_blocking(caller, "DELETE /v1/documents/{document_id}", "document_delete", 204, document_ids=[document_id])
    _remove_uploaded_file(svc, doc)


def _remove_uploaded_file(svc: Services, doc: Document) -> None:
    """An uploaded document's bytes go with it, unless another document still uses them."""
    if not doc.source.startswith("upload://") or not doc.sha256:
        return
    name = doc.source.rsplit("/", 1)[-1]
    others = svc.groundwork.store.sources_with_sha256(doc.sha256)
    if any(s.startswith("upload://") and s.rsplit("/", 1)[-1] == name for s in others):
        return
    path = svc.uploads_dir / doc.sha256 / name
    try:
        path.unlink(missing_ok=True)
        path.parent.rmdir()
    except OSError:
        pass


def upload_route(max_upload_bytes: int):
    return post(
        "/documents", sync_to_thread=True, opt={"role": "writer"}, responses=ERROR_RESPONSES, tags=["documents"], status_code=201,
        summary="Upload and ingest one document (multipart: file, collection, groups, metadata); honours Idempotency-Key",
        request_max_body_size=max_upload_bytes + MULTIPART_SLACK_BYTES,
    )(upload_document)


ROUTES = [list_documents, get_document, patch_document, delete_document]
