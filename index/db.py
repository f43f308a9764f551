"""Database engine, versioned schema migrations (SQLite WAL by default, Postgres by URL), and
the database's own integrity check.

The database is the source of truth, so a damaged one must not be trusted: ``verify`` runs the
check and reports it, ingestion refuses to write into a database that fails it (writes would
spread the damage and bury it under new pages), and health reports the last result.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DatabaseError, DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlmodel import SQLModel, create_engine

from index import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from index import schema_v1
from index.errors import StorageCorrupt, StorageUnavailable
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


_AUDIT_TABLES = (
    """CREATE TABLE audit_event (
        id {serial},
        occurred_at {timestamp} NOT NULL,
        key_prefix VARCHAR(32) NOT NULL,
        key_name VARCHAR(200) NOT NULL,
        principal VARCHAR(200) NOT NULL,
        route VARCHAR(200) NOT NULL,
        action VARCHAR(40) NOT NULL,
        query TEXT,
        query_sha256 VARCHAR(64),
        document_ids JSON NOT NULL,
        chunk_ids JSON NOT NULL,
        status INTEGER NOT NULL,
        request_id VARCHAR(128)
    )""",
    "CREATE INDEX ix_audit_event_occurred_at ON audit_event (occurred_at)",
    "CREATE INDEX ix_audit_event_key_prefix ON audit_event (key_prefix)",
    """CREATE TABLE audit_document (
        event_id INTEGER NOT NULL REFERENCES audit_event (id),
        document_id INTEGER NOT NULL,
        PRIMARY KEY (event_id, document_id)
    )""",
    "CREATE INDEX ix_audit_document_document_id ON audit_document (document_id)",
)


def _audit_trail(conn: Connection) -> None:
    # Explicit DDL, not today's models (which later releases may change): see index/models.py
    # AuditEvent and AuditDocument, which tests/index/test_migrations.py holds equal to this.
    if conn.dialect.name == "postgresql":
        types = {"serial": "SERIAL NOT NULL PRIMARY KEY", "timestamp": "TIMESTAMP WITHOUT TIME ZONE"}
    else:
        types = {"serial": "INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT", "timestamp": "DATETIME"}
    for statement in _AUDIT_TABLES:
        conn.execute(text(statement.format(**types)))


def _chunk_catalog_index(conn: Connection) -> None:
    # Covers the catalog's read of every chunk (document, id, fingerprint): without it that read
    # scans the whole chunk table, text and embeddings included (bench/scale.py).
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_chunk_catalog ON chunk (document_id, id, fingerprint)"))


def _document_ingest_version(conn: Connection) -> None:
    # Nullable: documents stored before it count as read by an older version (ingest.version).
    conn.execute(text("ALTER TABLE document ADD COLUMN ingest_version INTEGER"))


MIGRATIONS: list[Migration] = [
    Migration(1, "initial schema", _initial_schema),
    Migration(2, "change log document index", _chunk_embedding_lookup),
    Migration(3, "document context and chunk fingerprints", _document_context_and_chunk_fingerprints),
    Migration(4, "audit trail", _audit_trail),
    Migration(5, "chunk catalog covering index", _chunk_catalog_index),
    Migration(6, "document ingest version", _document_ingest_version),
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
    try:
        migrate(engine)
    except DatabaseError as exc:
        # "database disk image is malformed" on the first read: say so, and how to recover,
        # rather than leave a driver error to be puzzled over.
        if isinstance(exc, OperationalError) and not _says_damaged(exc):
            raise
        report = check_integrity(engine)
        if report.ok:
            raise
        engine.dispose()
        raise StorageCorrupt(f"the database fails its integrity check ({report.method}: {'; '.join(report.problems[:3])}). "
                             f"{RECOVERY_HINT}") from exc
    return engine


# What a driver raises when the database cannot be used right now rather than because of the
# statement: the server down or restarting, a dropped connection, a full pool, a locked or
# unreadable SQLite file.
_OUTAGES = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)


DatabaseDriverError = SQLAlchemyError
"""The database driver's error family, for front doors that register a handler for it (the
HTTP app): they map it with ``storage_error`` without importing the driver themselves."""


def storage_error(exc: BaseException) -> StorageUnavailable | None:
    """The error vocabulary's name for a database driver error, or None when ``exc`` is not an
    outage (a constraint violation, a bad statement: a bug, reported as one). Front doors call
    this once, where they map errors to outcomes, rather than every query catching it."""
    if isinstance(exc, StorageUnavailable):
        return exc
    if isinstance(exc, DatabaseError) and _says_damaged(exc):
        return StorageCorrupt(f"the database is damaged: {exc.orig or exc}. {RECOVERY_HINT}")
    if isinstance(exc, _OUTAGES):
        orig = getattr(exc, "orig", None)
        return StorageUnavailable(f"the database cannot be used right now: {orig or exc}")
    return None


def _says_damaged(exc: DatabaseError) -> bool:
    message = str(exc.orig or exc)
    return "malformed" in message or "not a database" in message


# --- integrity ------------------------------------------------------------------------------------

RECOVERY_HINT = ("Restore the database from a snapshot, or rebuild it: save what is still readable "
                 "(sqlite3 groundwork.db .recover | sqlite3 recovered.db), or start an empty database, and re-ingest "
                 "the sources; then `groundwork reindex`. See the README, 'Reliability'.")


@dataclass(frozen=True)
class IntegrityReport:
    """The outcome of the database's own integrity check."""

    ok: bool
    method: str  # what was checked, e.g. "sqlite quick_check"
    problems: tuple[str, ...]
    checked_at: float  # time.time()
    seconds: float

    def to_json(self) -> dict:
        return {"ok": self.ok, "method": self.method, "problems": list(self.problems),
                "checked_at": self.checked_at, "seconds": round(self.seconds, 3)}


def check_integrity(engine: Engine, *, max_problems: int = 20) -> IntegrityReport:
    """Run the database's own integrity check: SQLite's ``PRAGMA quick_check`` (every page and
    record structure, not index contents: O(database) reads), or on Postgres amcheck's heap and
    B-tree checks when that extension is installed (without it only reachability is checked).

    A database that cannot be reached raises StorageUnavailable: that says nothing about its
    integrity.
    """
    started = time.perf_counter()
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                method = "sqlite quick_check"
                rows = [str(r[0]) for r in conn.exec_driver_sql(f"PRAGMA quick_check({int(max_problems)})").fetchall()]
                problems = () if rows == ["ok"] else tuple(rows)
            elif engine.dialect.name == "postgresql":
                method, problems = _postgres_integrity(conn, max_problems)
            else:
                method, problems = f"{engine.dialect.name}: none available", ()
    except OperationalError as exc:
        if not _says_damaged(exc):
            raise StorageUnavailable(f"the database cannot be reached: {exc.orig or exc}") from exc
        method, problems = "sqlite quick_check", (str(exc.orig or exc),)
    except DatabaseError as exc:  # SQLite: "database disk image is malformed", "file is not a database"
        method = "sqlite quick_check" if engine.dialect.name == "sqlite" else engine.dialect.name
        problems = (str(exc.orig or exc),)
    return IntegrityReport(not problems, method, problems, time.time(), time.perf_counter() - started)


def _postgres_integrity(conn: Connection, max_problems: int) -> tuple[str, tuple[str, ...]]:
    installed = conn.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'amcheck'")).scalar()
    if installed is None:
        conn.execute(text("SELECT 1"))
        return "postgres: reachable (install the amcheck extension for a real check)", ()
    problems: list[str] = []
    tables = list(SQLModel.metadata.tables)
    has_heap_check = conn.execute(text("SELECT to_regproc('verify_heapam') IS NOT NULL")).scalar()
    for table in tables:
        oid = conn.execute(text("SELECT to_regclass(:t)::oid"), {"t": table}).scalar()
        if oid is None:
            continue
        if has_heap_check:
            for row in conn.execute(text("SELECT blkno, offnum, msg FROM verify_heapam(:oid) LIMIT :n"), {"oid": oid, "n": max_problems}):
                problems.append(f"{table}: block {row[0]} item {row[1]}: {row[2]}")
        indexes = conn.execute(text(
            "SELECT i.indexrelid::regclass::text, i.indexrelid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_am a ON a.oid = c.relam WHERE i.indrelid = :oid AND a.amname = 'btree'"), {"oid": oid}).all()
        for name, index_oid in indexes:
            try:
                with conn.begin_nested():
                    conn.execute(text("SELECT bt_index_check(:oid)"), {"oid": index_oid})
            except DatabaseError as exc:
                problems.append(f"index {name}: {exc.orig or exc}")
    method = f"postgres amcheck {installed}" + (" (heap and B-tree)" if has_heap_check else " (B-tree)")
    return method, tuple(problems[:max_problems])


class IntegrityMonitor:
    """The last integrity check of one database, shared by the jobs of a process; re-run when
    older than the caller allows (a full check reads the whole database)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._last: IntegrityReport | None = None
        self._lock = threading.Lock()

    @property
    def last(self) -> IntegrityReport | None:
        """The last result, without checking (what a health probe reports)."""
        return self._last

    def check(self, max_age_s: float = 0.0) -> IntegrityReport:
        """A result at most ``max_age_s`` old (0: check now)."""
        with self._lock:
            last = self._last
            if last is not None and max_age_s > 0 and time.time() - last.checked_at <= max_age_s:
                return last
            report = check_integrity(self.engine)
            if not report.ok:
                log.error("database integrity check failed (%s): %s", report.method, "; ".join(report.problems[:5]))
            self._last = report
            return report

    def require_intact(self, max_age_s: float = 0.0) -> IntegrityReport:
        """Raise StorageCorrupt unless the database passes its check (cached up to ``max_age_s``)."""
        report = self.check(max_age_s)
        if not report.ok:
            raise StorageCorrupt(
                f"the database fails its integrity check ({report.method}: {'; '.join(report.problems[:3])}); "
                f"refusing to write into it. {RECOVERY_HINT}"
            )
        return report
