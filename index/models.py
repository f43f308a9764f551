"""SQL tables: the source of truth. Every index on disk is derived from these rows.

``change_log`` is the spine of derivation: every chunk insert or delete, and every document
metadata change, appends a row in the same transaction. A derived index records the highest
``seq`` it reflects and catches up by replaying the rows after it, so a crash between the
database commit and an index write loses nothing.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

# The largest id a row can have: a SQL BIGINT, which SQLite's INTEGER also is. A larger number
# sent as an id names no row, and the database driver cannot even bind it.
MAX_ID = 2**63 - 1


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Collection(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=200)
    created_at: datetime = Field(default_factory=utcnow)


class DocumentStatus:
    indexed = "indexed"
    failed = "failed"


class Document(SQLModel, table=True):
    # sqlite_autoincrement: ids are never reused, so a deleted chunk's id can never come back
    # meaning something else to an index or a cached citation.
    __table_args__ = (UniqueConstraint("collection_id", "source", name="uq_document_source"), {"sqlite_autoincrement": True})

    id: int | None = Field(default=None, primary_key=True)
    collection_id: int = Field(foreign_key="collection.id", index=True)
    source: str = Field(max_length=2048, description="path or URI the document was ingested from")
    sha256: str | None = Field(default=None, max_length=64)
    title: str | None = Field(default=None, sa_column=Column(Text))
    # One line saying what the document is (whose, which form, which period or version), put in
    # front of every chunk's indexed text. NULL: ingested before contexts existed, so the next
    # ingest of the unchanged file derives it (and re-embeds) instead of skipping the file.
    context: str | None = Field(default=None, sa_column=Column(Text))
    mime_type: str | None = Field(default=None, max_length=200)
    doc_metadata: dict[str, Any] = Field(default_factory=dict, sa_column=Column("metadata", JSON, nullable=False))
    groups: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: str = Field(default=DocumentStatus.indexed, max_length=20, index=True)
    failure_reason: str | None = Field(default=None, max_length=40)
    failure_detail: str | None = Field(default=None, sa_column=Column(Text))
    size_bytes: int = 0
    chunk_count: int = 0
    text: str = Field(default="", sa_column=Column(Text, nullable=False))
    embedding_fingerprint: str | None = Field(default=None, max_length=80)
    # The ingest version that read the file (ingest.version); NULL: stored before versions, so
    # the next ingest of the unchanged file reads it again.
    ingest_version: int | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow, index=True)


class Chunk(SQLModel, table=True):
    # ix_chunk_catalog: the catalog reads (document_id, id, fingerprint) of every chunk from the
    # index alone (migration 5).
    __table_args__ = (UniqueConstraint("document_id", "ordinal", name="uq_chunk_ordinal"),
                      Index("ix_chunk_catalog", "document_id", "id", "fingerprint"), {"sqlite_autoincrement": True})

    id: int | None = Field(default=None, primary_key=True)
    document_id: int = Field(foreign_key="document.id", index=True)
    ordinal: int
    text: str = Field(sa_column=Column(Text, nullable=False))
    context: str = Field(default="", sa_column=Column(Text, nullable=False))
    token_count: int
    start: int
    end: int
    pages: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    heading_path: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    kind: str = Field(default="text", max_length=20)
    # Hash of the chunk's normalised text: the same passage in many documents is boilerplate.
    fingerprint: int | None = Field(default=None, sa_column=Column(BigInteger))
    embedding: bytes | None = Field(default=None, sa_column=Column(LargeBinary))


class ChangeOp:
    add = "add"
    delete = "delete"
    document = "document"  # metadata/groups changed: caches of document attributes refresh


class ChangeLog(SQLModel, table=True):
    __tablename__ = "change_log"
    # ix_change_log_document: catch-up and deletes look rows up by document (migration 2).
    __table_args__ = (Index("ix_change_log_document", "document_id"), {"sqlite_autoincrement": True})

    seq: int | None = Field(default=None, primary_key=True)
    op: str = Field(max_length=10)
    chunk_id: int | None = Field(default=None, index=True)
    document_id: int | None = None
    created_at: datetime = Field(default_factory=utcnow)


class JobStatus:
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"
    interrupted = "interrupted"


class IngestJob(SQLModel, table=True):
    __tablename__ = "ingest_job"

    id: str = Field(primary_key=True, max_length=40)
    status: str = Field(default=JobStatus.queued, max_length=20, index=True)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    counts: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    error: str | None = Field(default=None, sa_column=Column(Text))
    owner: str | None = Field(default=None, max_length=200, description="host:pid running it, to spot orphans")
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class IngestJobFile(SQLModel, table=True):
    __tablename__ = "ingest_job_file"
    __table_args__ = (Index("ix_job_file_job", "job_id"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="ingest_job.id", max_length=40)
    path: str = Field(max_length=2048)
    status: str = Field(max_length=20)
    reason: str | None = Field(default=None, max_length=40)
    detail: str | None = Field(default=None, sa_column=Column(Text))
    chunks: int = 0
    document_id: int | None = None


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(default="", max_length=200)
    prefix: str = Field(index=True, unique=True, max_length=32, description="public key id, shown in listings")
    key_hash: str = Field(max_length=128)
    role: str = Field(max_length=20)
    principal: str = Field(max_length=200)
    groups: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_record"

    key: str = Field(primary_key=True, max_length=300, description="api key prefix + client key")
    status_code: int
    response: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class AuditEvent(SQLModel, table=True):
    """Who saw what: one row per search, answer, chat completion, chunk read or document change
    (written by ``service.audit``). Ids are what the caller was given, never what was filtered out."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_occurred_at", "occurred_at"), Index("ix_audit_event_key_prefix", "key_prefix"),
                      {"sqlite_autoincrement": True})

    id: int | None = Field(default=None, primary_key=True)
    occurred_at: datetime = Field(default_factory=utcnow)
    key_prefix: str = Field(max_length=32, description="the API key's public prefix; 'dev' in dev mode")
    key_name: str = Field(default="", max_length=200)
    principal: str = Field(default="", max_length=200)
    route: str = Field(max_length=200, description="e.g. 'POST /v1/search' or 'mcp:search'")
    action: str = Field(max_length=40, description="search, answer, chat, chunk_read, document_upload, ...")
    query: str | None = Field(default=None, sa_column=Column(Text), description="the query text, unless audit_query_text=hash")
    query_sha256: str | None = Field(default=None, max_length=64)
    document_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    chunk_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: int = Field(description="the HTTP status the request was answered with")
    request_id: str | None = Field(default=None, max_length=128)


class AuditDocument(SQLModel, table=True):
    """Which audit rows name a document: answers "who saw document D" through an index."""

    __tablename__ = "audit_document"
    __table_args__ = (Index("ix_audit_document_document_id", "document_id"),)

    event_id: int = Field(foreign_key="audit_event.id", primary_key=True)
    document_id: int = Field(primary_key=True)
