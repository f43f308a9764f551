"""Database engine and versioned schema migrations (SQLite WAL by default, Postgres by URL)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, event, text
from sqlalchemy.engine import Connection
from sqlmodel import create_engine

from index import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from index import schema_v1
from index.settings import Settings

log = logging.getLogger(__name__)


def make_engine(settings: Settings) -> Engine:
    url = settings.resolved_database_url()
    if url.startswith("sqlite"):
        settings.ensure_dirs()
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            # WAL: readers never block the writer; synchronous=FULL: a committed transaction
            # survives a power cut (the durability promise rests on it).
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    return engine


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


def _initial_schema(conn: Connection) -> None:
    # The frozen release-1 tables, never today's models: see index/schema_v1.py.
    schema_v1.metadata.create_all(conn)


def _chunk_embedding_lookup(conn: Connection) -> None:
    # Catch-up replays the change log in seq order, then fetches chunks by id: both need indexes.
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_change_log_document ON change_log (document_id)"))


def _document_context_and_chunk_fingerprints(conn: Connection) -> None:
    # Both nullable: existing documents keep NULL until re-ingested (ingest treats a NULL
    # context as "derive it now"); existing chunks have no fingerprint and are never demoted.
    conn.execute(text("ALTER TABLE document ADD COLUMN context TEXT"))
    conn.execute(text("ALTER TABLE chunk ADD COLUMN fingerprint BIGINT"))


MIGRATIONS: list[Migration] = [
    Migration(1, "initial schema", _initial_schema),
    Migration(2, "change log document index", _chunk_embedding_lookup),
    Migration(3, "document context and chunk fingerprints", _document_context_and_chunk_fingerprints),
]

SCHEMA_VERSION = MIGRATIONS[-1].version


def current_version(conn: Connection) -> int:
    conn.execute(
        text("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, description TEXT, applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)")
    )
    row = conn.execute(text("SELECT MAX(version) FROM schema_version")).scalar()
    return int(row or 0)


def migrate(engine: Engine, *, target: int | None = None) -> int:
    """Apply pending migrations in order, in one transaction; returns the version.

    ``target`` stops at that version: how tests build a database as an earlier release left it.
    """
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Two processes starting at once must not both migrate.
            conn.execute(text("SELECT pg_advisory_xact_lock(727274)"))
        version = current_version(conn)
        for migration in MIGRATIONS:
            if migration.version <= version or (target is not None and migration.version > target):
                continue
            log.info("applying schema migration %d: %s", migration.version, migration.description)
            migration.apply(conn)
            conn.execute(
                text("INSERT INTO schema_version (version, description) VALUES (:v, :d)"),
                {"v": migration.version, "d": migration.description},
            )
            version = migration.version
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"database schema v{version} is newer than this Groundwork (v{SCHEMA_VERSION}); upgrade Groundwork")
    return version


def open_database(settings: Settings) -> Engine:
    engine = make_engine(settings)
    migrate(engine)
    return engine
