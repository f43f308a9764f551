"""Snapshots of a data directory, taken while the service runs, and their restore.

A snapshot is a folder::

    snapshot.json                written last: positions, and the size and sha256 of every file
    database/groundwork.db       SQLite: a copy made by the online backup API (one file)
    database/groundwork.pgdump   PostgreSQL: pg_dump's custom format, of an exported snapshot
    indexes/CURRENT.json         the live index version ...
    indexes/v<N>/vectors/...     ... its files, each index exactly as its manifest describes it
    indexes/v<N>/keyword/...
    uploads/<sha256>/<name>      the originals of uploaded documents

Order of copying. The indexes are copied first and the database second. Each index records the
change-log position it reflects, and the change log only grows, so a database copied after the
indexes is at or past their positions: at restore, opening the indexes replays the difference
(``IndexSet.open``), which is ordinary catch-up. The other order could leave the indexes ahead of
the database; their positions would then name changes the database never had, and they would be
rebuilt from scratch. ``create_snapshot`` checks the database position it copied against the
index positions before writing ``snapshot.json``.

Copying an index that a writer keeps changing. Index files are never modified in place: a vector
index is saved as a new generation file and the manifest naming it is replaced atomically;
tantivy writes each segment file once and replaces ``meta.json``. So the copy reads a manifest,
opens every file it names (an open file survives its deletion), and checks every copied byte
against the manifest's sha256. A commit landing between reading the manifest and opening the
files shows up as a missing file or a digest mismatch and is retried
(``snapshot_copy_attempts``); a writer is never paused. An index that cannot be copied that way
(its files are damaged, or the keyword engine records no digests) is left out and named in
``snapshot.json``: the restore rebuilds it from the database, which is always complete.

The database copy. SQLite's backup API copies the whole database in one step under one read
transaction, so the copy is a consistent state even while the service writes (WAL readers never
block the writer). On PostgreSQL the snapshot opens a repeatable-read transaction, exports its
snapshot, reads the change-log position in it, and hands it to ``pg_dump --snapshot``, so the
recorded position is exactly the dump's.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import make_url, text

from index.atomic import atomic_write_json, fsync_dir
from index.errors import GroundworkError, InputRejected, StorageCorrupt, StorageUnavailable
from index.keyword import TANTIVY_ENGINE, KeywordManifest
from index.keyword import MANIFEST_NAME as KEYWORD_MANIFEST
from index.settings import Settings
from index.vectors import MANIFEST_NAME as VECTOR_MANIFEST
from index.vectors import VectorManifest

log = logging.getLogger(__name__)

FORMAT = "groundwork-snapshot"
FORMAT_VERSION = 1
MANIFEST_FILE = "snapshot.json"
SQLITE_FILE = "database/groundwork.db"
PG_DUMP_FILE = "database/groundwork.pgdump"
_KEYWORD_ENGINE_DIRS = {TANTIVY_ENGINE: "tantivy"}  # engines whose manifest lists every file with its digest
_BLOCK = 1 << 20


class SnapshotCorrupt(GroundworkError):
    """A snapshot fails its own checks (a file missing, truncated or changed since it was
    written, or an unreadable manifest): nothing is restored from it."""

    code = "snapshot_corrupt"

    def __init__(self, message: str, problems: list[str]):
        super().__init__(message)
        self.problems = problems


class SnapshotRefused(InputRejected):
    """The target is not fit for the operation (a non-empty folder or database without
    ``force``, or a data directory a running service holds)."""

    code = "snapshot_refused"


class SnapshotFailed(StorageUnavailable):
    """The snapshot could not be written (the database could not be copied, a tool failed)."""

    code = "snapshot_failed"


@dataclass(frozen=True)
class SnapshotManifest:
    """What ``snapshot.json`` says; ``files`` maps paths relative to the snapshot folder to
    ``{"size", "sha256"}``."""

    created_at: str
    database: dict[str, Any]
    indexes: dict[str, Any]
    files: dict[str, dict[str, Any]]

    def to_json(self) -> dict:
        body = {"format": FORMAT, "format_version": FORMAT_VERSION, "created_at": self.created_at,
                "database": self.database, "indexes": self.indexes, "files": self.files}
        return body | {"manifest_sha256": _canonical_digest(body)}

    def summary(self) -> dict:
        """What an operator reads after a snapshot: positions and sizes, not every file."""
        return {"created_at": self.created_at, "database": self.database, "indexes": self.indexes,
                "files": len(self.files), "bytes": sum(int(f["size"]) for f in self.files.values())}


def _canonical_digest(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# --- create ------------------------------------------------------------------------------------------


def create_snapshot(settings: Settings, target: Path) -> SnapshotManifest:
    """Write a consistent snapshot of the configured data directory and database into
    ``target`` (which must not exist, or be an empty folder) while the service keeps running.
    A failure removes what was written, so a folder with ``snapshot.json`` is always complete."""
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise SnapshotRefused(f"{target} is not an empty folder; snapshots never overwrite anything")
    created_here = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    try:
        files: dict[str, dict[str, Any]] = {}
        # 1. the indexes, each as its own manifest describes it ...
        indexes = _copy_indexes(settings, target, files)
        # 2. ... then the database, which is therefore at or past their positions ...
        database = _copy_database(settings, target, files)
        behind = [name for name in ("vectors_position", "keyword_position") if indexes.get(name, 0) > database["position"]]
        if behind:  # the change log went backwards meanwhile (a restore under our feet): no usable pair
            raise SnapshotFailed(f"the database copy (position {database['position']}) is behind the indexes copied before it "
                                 f"({', '.join(f'{n} {indexes[n]}' for n in behind)}); take the snapshot again")
        # 3. ... and the uploaded originals every document in that database copy may refer to.
        _copy_uploads(settings, target, files)
        manifest = SnapshotManifest(datetime.now(timezone.utc).isoformat(), database, indexes, dict(sorted(files.items())))
        _fsync_tree(target)
        atomic_write_json(target / MANIFEST_FILE, manifest.to_json())
        return manifest
    except BaseException:
        if created_here:
            shutil.rmtree(target, ignore_errors=True)
        else:
            for child in target.iterdir():
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
        raise


def _copy_indexes(settings: Settings, target: Path, files: dict) -> dict[str, Any]:
    root = settings.data_dir / "indexes"
    for attempt in range(settings.snapshot_copy_attempts):
        version = _live_version(root)
        if version is None:
            return {"version": None, "skipped": {"all": "no index has been built yet"}}
        skipped: dict[str, str] = {}
        copied: dict[str, dict] = {}
        source, prefix = root / f"v{version}", f"indexes/v{version}"
        vectors = _copy_with_retries(settings, _copy_vectors, source / "vectors", target, f"{prefix}/vectors", copied)
        keyword = _copy_with_retries(settings, _copy_keyword, source / "keyword", target, f"{prefix}/keyword", copied)
        if _live_version(root) != version:  # a reindex switched versions meanwhile: copy the new one
            shutil.rmtree(target / prefix, ignore_errors=True)
            time.sleep(0.05 * (attempt + 1))
            continue
        files.update(copied)
        current = {"version": version}
        atomic_write_json(target / "indexes" / "CURRENT.json", current)
        files["indexes/CURRENT.json"] = _digest_of(target / "indexes" / "CURRENT.json")
        out: dict[str, Any] = {"version": version}
        if isinstance(vectors, VectorManifest):
            out |= {"vectors_position": vectors.position, "vectors": vectors.vector_count, "model": vectors.model,
                    "model_fingerprint": vectors.model_fingerprint}
        else:
            skipped["vectors"] = vectors
        if isinstance(keyword, KeywordManifest):
            out |= {"keyword_position": keyword.position, "keyword_docs": keyword.doc_count, "keyword_engine": keyword.engine}
        else:
            skipped["keyword"] = keyword
        out["skipped"] = skipped or None
        for name, reason in skipped.items():
            log.warning("snapshot: the %s index is left out (%s); a restore rebuilds it from the database", name, reason)
        return out
    return {"version": None, "skipped": {"all": "the live index version kept changing (reindexes in a row)"}}


def _live_version(root: Path) -> int | None:
    try:
        version = json.loads((root / "CURRENT.json").read_bytes())["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return version if isinstance(version, int) and not isinstance(version, bool) and version > 0 else None


class _Changed(Exception):
    """The files changed under the copy (a commit landed): try again."""


def _copy_with_retries(settings: Settings, copy, source: Path, target: Path, prefix: str, copied: dict) -> Any:
    """The manifest of the copied index, or why it could not be copied (nothing of a failed
    attempt stays in the snapshot)."""
    reason = "unknown"
    for attempt in range(settings.snapshot_copy_attempts):
        attempt_files: dict[str, dict] = {}
        try:
            manifest = copy(source, target, prefix, attempt_files)
        except (_Changed, _Unusable) as exc:
            shutil.rmtree(target / prefix, ignore_errors=True)
            if isinstance(exc, _Unusable):
                return str(exc)
            reason = str(exc)
            time.sleep(0.02 * (attempt + 1))
            continue
        copied.update(attempt_files)
        return manifest
    return f"its files kept changing while being copied ({reason})"


class _Unusable(Exception):
    """The index cannot be copied as it stands (damaged, missing, or without digests)."""


def _copy_vectors(directory: Path, target: Path, prefix: str, copied: dict) -> VectorManifest:
    manifest_bytes = _read_bytes(directory / VECTOR_MANIFEST, "vector manifest")
    try:
        manifest = VectorManifest.from_json(json.loads(manifest_bytes))
    except Exception as exc:
        raise _Unusable(f"unreadable vector manifest: {exc}") from None
    name = manifest.index_file
    if not name or "/" in name or name.startswith("."):
        raise _Unusable(f"the vector manifest names no valid index file ({name!r})")
    try:
        source = open(directory / name, "rb")
    except FileNotFoundError:
        raise _Changed(f"{name} was replaced by a newer generation") from None
    with source:
        digest = _copy_open_file(source, target / prefix / name)
    if digest["sha256"] != manifest.checksum:
        if (directory / VECTOR_MANIFEST).read_bytes() != manifest_bytes:
            raise _Changed("the vector manifest moved on")
        raise _Unusable(f"{name} does not match its manifest checksum (the live index is damaged)")
    copied[f"{prefix}/{name}"] = digest
    _write_copy(target / prefix / VECTOR_MANIFEST, manifest_bytes, copied, f"{prefix}/{VECTOR_MANIFEST}")
    return manifest


def _copy_keyword(directory: Path, target: Path, prefix: str, copied: dict) -> KeywordManifest:
    manifest_bytes = _read_bytes(directory / KEYWORD_MANIFEST, "keyword manifest")
    try:
        manifest = KeywordManifest.from_json(json.loads(manifest_bytes))
    except Exception as exc:
        raise _Unusable(f"unreadable keyword manifest: {exc}") from None
    engine_dir = _KEYWORD_ENGINE_DIRS.get(manifest.engine)
    if engine_dir is None:
        raise _Unusable(f"the {manifest.engine} engine records no digests to check a copy against")
    if not manifest.files:
        raise _Unusable("its manifest predates file digests, so a copy could not be checked")
    with ExitStack() as stack:
        sources: dict[str, BinaryIO] = {}
        for name in manifest.files:  # open them all first: an open file outlives its deletion
            try:
                sources[name] = stack.enter_context(open(directory / engine_dir / name, "rb"))
            except FileNotFoundError:
                raise _Changed(f"{name} was removed by a later commit") from None
        for name, source in sources.items():
            digest = _copy_open_file(source, target / prefix / engine_dir / name)
            expected = manifest.files[name]
            if digest["sha256"] != expected.sha256 or digest["size"] != expected.size:
                if (directory / KEYWORD_MANIFEST).read_bytes() != manifest_bytes or name == "meta.json":
                    raise _Changed(f"{name} changed (a commit landed)")
                raise _Unusable(f"{name} does not match its recorded digest (the live index is damaged)")
            copied[f"{prefix}/{engine_dir}/{name}"] = digest
    _write_copy(target / prefix / KEYWORD_MANIFEST, manifest_bytes, copied, f"{prefix}/{KEYWORD_MANIFEST}")
    return manifest


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise _Unusable(f"no {what}") from None
    except OSError as exc:
        raise _Unusable(f"{what} unreadable: {exc}") from None


def _copy_open_file(source: BinaryIO, destination: Path) -> dict[str, Any]:
    """Copy from an open file, hashing what was copied."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with open(destination, "wb") as out:
        while block := source.read(_BLOCK):
            digest.update(block)
            out.write(block)
            size += len(block)
    return {"size": size, "sha256": digest.hexdigest()}


def _write_copy(path: Path, data: bytes, files: dict, relative: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    files[relative] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _digest_of(path: Path) -> dict[str, Any]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
            size += len(block)
    return {"size": size, "sha256": digest.hexdigest()}


def _copy_database(settings: Settings, target: Path, files: dict) -> dict[str, Any]:
    url = make_url(settings.resolved_database_url())
    if url.get_backend_name() == "sqlite":
        return _copy_sqlite(Path(url.database), target, files)
    if url.get_backend_name() == "postgresql":
        return _dump_postgres(settings, target, files)
    raise SnapshotFailed(f"snapshots support SQLite and PostgreSQL databases, not {url.get_backend_name()}")


def _copy_sqlite(database: Path, target: Path, files: dict) -> dict[str, Any]:
    if not database.is_file():
        raise SnapshotFailed(f"no database at {database}")
    destination = target / SQLITE_FILE
    destination.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(database, timeout=60)
    try:
        source.execute("PRAGMA busy_timeout=60000")
        copy = sqlite3.connect(destination)
        try:
            source.backup(copy)  # every page in one step: one read transaction, one consistent state
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file; the service turns WAL on again
            check = [str(row[0]) for row in copy.execute("PRAGMA quick_check(20)").fetchall()]
            position = int(copy.execute("SELECT COALESCE(MAX(seq), 0) FROM change_log").fetchone()[0])
            schema = int(copy.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0])
        finally:
            copy.close()
    except sqlite3.DatabaseError as exc:
        raise SnapshotFailed(f"the database at {database} could not be copied: {exc}") from exc
    finally:
        source.close()
    if check != ["ok"]:
        raise StorageCorrupt(f"the database fails its integrity check (sqlite quick_check: {'; '.join(check[:3])}); "
                             "a snapshot of it would preserve the damage, so none was written")
    files[SQLITE_FILE] = _digest_of(destination)
    return {"kind": "sqlite", "file": SQLITE_FILE, "position": position, "schema_version": schema,
            "integrity": "sqlite quick_check: ok"}


def pg_tool(settings: Settings, name: str) -> str:
    """The path of a PostgreSQL client tool (pg_dump, pg_restore)."""
    if settings.postgres_bin_dir is not None:
        candidate = Path(settings.postgres_bin_dir) / name
        if candidate.is_file():
            return str(candidate)
        raise SnapshotFailed(f"{name} not found in postgres_bin_dir ({settings.postgres_bin_dir})")
    found = shutil.which(name)
    if found:
        return found
    for directory in sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _major(p.parent.name), reverse=True):
        if (directory / name).is_file():
            return str(directory / name)
    raise SnapshotFailed(f"{name} is not installed (PostgreSQL client tools; set GROUNDWORK_POSTGRES_BIN_DIR)")


def _major(name: str) -> int:
    return int(name) if name.isdigit() else 0


def _libpq(settings: Settings) -> tuple[str, dict[str, str]]:
    """A libpq connection URI without the password, and the environment that carries it (so
    it never shows in a process listing)."""
    url = make_url(settings.resolved_database_url())
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _dump_postgres(settings: Settings, target: Path, files: dict) -> dict[str, Any]:
    from index.db import make_engine

    destination = target / PG_DUMP_FILE
    destination.parent.mkdir(parents=True, exist_ok=True)
    uri, env = _libpq(settings)
    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                snapshot_id = connection.execute(text("SELECT pg_export_snapshot()")).scalar_one()
                position = int(connection.execute(text("SELECT COALESCE(MAX(seq), 0) FROM change_log")).scalar_one())
                schema = int(connection.execute(text("SELECT COALESCE(MAX(version), 0) FROM schema_version")).scalar_one())
                # The exported snapshot lives as long as this transaction: pg_dump sees exactly it.
                _run([pg_tool(settings, "pg_dump"), "--format=custom", f"--snapshot={snapshot_id}", "--no-owner",
                      "--no-privileges", f"--file={destination}", f"--dbname={uri}"], env, "pg_dump")
    finally:
        engine.dispose()
    files[PG_DUMP_FILE] = _digest_of(destination)
    return {"kind": "postgresql", "file": PG_DUMP_FILE, "position": position, "schema_version": schema,
            "integrity": "pg_dump read every row"}


def _run(command: list[str], env: dict[str, str], what: str) -> None:
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True)
    except OSError as exc:
        raise SnapshotFailed(f"{what} could not run: {exc}") from exc
    if done.returncode != 0:
        raise SnapshotFailed(f"{what} failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")


def _copy_uploads(settings: Settings, target: Path, files: dict) -> None:
    uploads = settings.data_dir / "uploads"
    if not uploads.is_dir():
        return
    for path in sorted(uploads.rglob("*")):
        if path.name.startswith(".incoming-") or path.is_symlink() or not path.is_file():
            continue  # an upload still being spooled is not a document yet
        relative = f"uploads/{path.relative_to(uploads).as_posix()}"
        try:
            with open(path, "rb") as source:
                files[relative] = _copy_open_file(source, target / relative)
        except FileNotFoundError:
            continue  # its document was deleted meanwhile


def _fsync_tree(root: Path) -> None:
    for directory, _dirs, names in os.walk(root):
        for name in names:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(directory))


# --- check -------------------------------------------------------------------------------------------


def read_snapshot(folder: Path) -> SnapshotManifest:
    """The snapshot's manifest after re-hashing every file it lists; ``SnapshotCorrupt`` names
    each problem (the restore refuses before touching anything)."""
    folder = Path(folder)
    try:
        data = json.loads((folder / MANIFEST_FILE).read_bytes())
    except FileNotFoundError:
        raise SnapshotCorrupt(f"{folder} holds no {MANIFEST_FILE}: not a snapshot, or one that never finished",
                              [f"{MANIFEST_FILE}: missing"]) from None
    except (OSError, ValueError) as exc:
        raise SnapshotCorrupt(f"{folder / MANIFEST_FILE} is unreadable: {exc}", [f"{MANIFEST_FILE}: unreadable"]) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SnapshotCorrupt(f"{folder / MANIFEST_FILE} is not a Groundwork snapshot manifest", [f"{MANIFEST_FILE}: wrong format"])
    if data.get("format_version") != FORMAT_VERSION:
        raise SnapshotCorrupt(f"snapshot format {data.get('format_version')!r} is not {FORMAT_VERSION}; restore it with the "
                              "Groundwork release that wrote it", [f"{MANIFEST_FILE}: format {data.get('format_version')!r}"])
    body = {k: v for k, v in data.items() if k != "manifest_sha256"}
    if data.get("manifest_sha256") != _canonical_digest(body):
        raise SnapshotCorrupt(f"{folder / MANIFEST_FILE} was changed after it was written", [f"{MANIFEST_FILE}: digest mismatch"])
    manifest = SnapshotManifest(str(data["created_at"]), dict(data["database"]), dict(data["indexes"]), dict(data["files"]))
    problems = [problem for relative, expected in manifest.files.items() if (problem := _file_problem(folder, relative, expected))]
    if manifest.database.get("file") not in manifest.files:
        problems.append("the manifest lists no database file")
    if problems:
        raise SnapshotCorrupt(f"snapshot {folder} is damaged ({len(problems)} problem(s)): " + "; ".join(problems[:5]), problems)
    return manifest


def _file_problem(folder: Path, relative: str, expected: dict) -> str | None:
    path = folder / relative
    if relative.startswith("/") or ".." in Path(relative).parts:
        return f"{relative}: not a path inside the snapshot"
    try:
        actual = _digest_of(path)
    except FileNotFoundError:
        return f"{relative}: missing"
    except OSError as exc:
        return f"{relative}: unreadable ({exc.strerror or exc})"
    if actual["size"] != expected.get("size"):
        return f"{relative}: {actual['size']} bytes, the manifest says {expected.get('size')}"
    if actual["sha256"] != expected.get("sha256"):
        return f"{relative}: contents differ from the manifest's sha256"
    return None


# --- restore -----------------------------------------------------------------------------------------


def restore_snapshot(settings: Settings, folder: Path, *, force: bool = False) -> SnapshotManifest:
    """Check the snapshot, then put its database, index files and uploads in place for the
    configured data directory and database. Refuses a non-empty data directory (or database)
    unless ``force``, and always refuses one that a running service holds. Opening the result
    (``Groundwork``) catches the indexes up to the database; the caller then verifies it."""
    folder = Path(folder)
    manifest = read_snapshot(folder)  # every byte checked before anything is touched
    data_dir = settings.data_dir
    _refuse_if_held(data_dir)
    url = make_url(settings.resolved_database_url())
    kind = "sqlite" if url.get_backend_name() == "sqlite" else url.get_backend_name()
    if kind != manifest.database.get("kind"):
        raise SnapshotRefused(f"the snapshot holds a {manifest.database.get('kind')} database, but the configured database is {kind}; "
                              "configure a database of the same kind (GROUNDWORK_DATABASE_URL)")
    if data_dir.exists() and any(data_dir.iterdir()) and not force:
        raise SnapshotRefused(f"{data_dir} is not empty; restore into an empty data directory, or pass --force to replace "
                              "its database, indexes and uploads")
    if kind == "sqlite":
        database = Path(url.database)
        if not force and any(Path(f"{database}{suffix}").exists() for suffix in ("", "-wal", "-shm")):
            raise SnapshotRefused(f"a database already exists at {database}; pass --force to replace it")
    elif not force and _postgres_has_tables(settings):
        raise SnapshotRefused("the configured PostgreSQL database is not empty; restore into an empty one, or pass --force")
    data_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("indexes", "uploads"):
        shutil.rmtree(data_dir / stale, ignore_errors=True)
    if kind == "sqlite":
        _restore_sqlite(folder / manifest.database["file"], Path(url.database))
    else:
        _restore_postgres(settings, folder / manifest.database["file"], clean=force)
    for relative in manifest.files:
        if relative.startswith(("indexes/", "uploads/")):
            destination = data_dir / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / relative, destination)
    for top in ("indexes", "uploads"):
        if (data_dir / top).is_dir():
            _fsync_tree(data_dir / top)
    return manifest


def _refuse_if_held(data_dir: Path) -> None:
    """A running service holds the index writer lock of its data directory for its lifetime."""
    lock = data_dir / "indexes" / ".writer.lock"
    if not lock.exists():
        return
    with open(lock, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SnapshotRefused(f"a running Groundwork process holds {data_dir}; stop it before restoring into it") from None
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _restore_sqlite(source: Path, database: Path) -> None:
    database.parent.mkdir(parents=True, exist_ok=True)
    partial = database.with_name(f".{database.name}.restoring")
    shutil.copyfile(source, partial)
    fd = os.open(partial, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm"):  # a log left beside the restored file would be replayed into it
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    os.replace(partial, database)
    fsync_dir(database.parent)


def _postgres_has_tables(settings: Settings) -> bool:
    from index.db import make_engine

    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            return bool(connection.execute(text(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()")).scalar_one())
    finally:
        engine.dispose()


def _restore_postgres(settings: Settings, dump: Path, *, clean: bool) -> None:
    uri, env = _libpq(settings)
    command = [pg_tool(settings, "pg_restore"), "--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error",
               f"--dbname={uri}"]
    if clean:
        command += ["--clean", "--if-exists"]
    _run(command + [str(dump)], env, "pg_restore")
