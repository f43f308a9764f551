"""The database schema as release 1 created it, frozen.

Migration 1 builds exactly these tables, whatever the live models (``index.models``) say today:
a column added to a model later must arrive through a migration of its own, which is what keeps
an upgraded database and a fresh one identical. ``tests/index/test_migrations.py`` checks that a
fully migrated database matches the live models on SQLite and PostgreSQL, so a model change
without its migration fails the suite.

Written with SQLAlchemy Core rather than raw DDL so one definition serves both databases
(``SERIAL`` vs ``AUTOINCREMENT``, ``BYTEA`` vs ``BLOB``, ``JSON`` vs ``JSONB``-free text).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()


def _when(name: str, nullable: bool = False) -> Column:
    return Column(name, DateTime(timezone=True), nullable=nullable)


Table(
    "collection", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    _when("created_at"),
    Index("ix_collection_name", "name", unique=True),
)

Table(
    "document", metadata,
    Column("id", Integer, primary_key=True),
    Column("collection_id", Integer, ForeignKey("collection.id"), nullable=False),
    Column("source", String(2048), nullable=False),
    Column("sha256", String(64)),
    Column("title", Text),
    Column("mime_type", String(200)),
    Column("metadata", JSON, nullable=False),
    Column("groups", JSON, nullable=False),
    Column("status", String(20), nullable=False),
    Column("failure_reason", String(40)),
    Column("failure_detail", Text),
    Column("size_bytes", Integer, nullable=False),
    Column("chunk_count", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("embedding_fingerprint", String(80)),
    _when("created_at"),
    _when("updated_at"),
    UniqueConstraint("collection_id", "source", name="uq_document_source"),
    Index("ix_document_collection_id", "collection_id"),
    Index("ix_document_status", "status"),
    Index("ix_document_updated_at", "updated_at"),
    sqlite_autoincrement=True,
)

Table(
    "chunk", metadata,
    Column("id", Integer, primary_key=True),
    Column("document_id", Integer, ForeignKey("document.id"), nullable=False),
    Column("ordinal", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("context", Text, nullable=False),
    Column("token_count", Integer, nullable=False),
    Column("start", Integer, nullable=False),
    Column("end", Integer, nullable=False),
    Column("pages", JSON, nullable=False),
    Column("heading_path", JSON, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("embedding", LargeBinary),
    UniqueConstraint("document_id", "ordinal", name="uq_chunk_ordinal"),
    Index("ix_chunk_document_id", "document_id"),
    sqlite_autoincrement=True,
)

Table(
    "change_log", metadata,
    Column("seq", Integer, primary_key=True),
    Column("op", String(10), nullable=False),
    Column("chunk_id", Integer),
    Column("document_id", Integer),
    _when("created_at"),
    Index("ix_change_log_chunk_id", "chunk_id"),
    sqlite_autoincrement=True,
)

Table(
    "ingest_job", metadata,
    Column("id", String(40), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("params", JSON, nullable=False),
    Column("counts", JSON, nullable=False),
    Column("error", Text),
    Column("owner", String(200)),
    _when("created_at"),
    _when("started_at", nullable=True),
    _when("finished_at", nullable=True),
    _when("updated_at"),
    Index("ix_ingest_job_status", "status"),
)

Table(
    "ingest_job_file", metadata,
    Column("id", Integer, primary_key=True),
    Column("job_id", String(40), ForeignKey("ingest_job.id"), nullable=False),
    Column("path", String(2048), nullable=False),
    Column("status", String(20), nullable=False),
    Column("reason", String(40)),
    Column("detail", Text),
    Column("chunks", Integer, nullable=False),
    Column("document_id", Integer),
    Index("ix_job_file_job", "job_id"),
)

Table(
    "api_key", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(32), nullable=False),
    Column("key_hash", String(128), nullable=False),
    Column("role", String(20), nullable=False),
    Column("principal", String(200), nullable=False),
    Column("groups", JSON, nullable=False),
    _when("created_at"),
    _when("revoked_at", nullable=True),
    _when("last_used_at", nullable=True),
    Index("ix_api_key_prefix", "prefix", unique=True),
)

Table(
    "idempotency_record", metadata,
    Column("key", String(300), primary_key=True),
    Column("status_code", Integer, nullable=False),
    Column("response", JSON, nullable=False),
    _when("created_at"),
)
