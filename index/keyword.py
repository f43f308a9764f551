"""Keyword (BM25) search over chunk text: the protocol every engine implements, and the
manifest that makes an index a derived, rebuildable copy of the database.

The database is the source of truth. A keyword index only remembers the highest change-log
sequence number it has applied (its *position*); on open the caller replays the change log
from there. Applying a change twice is harmless (an upsert replaces, deleting an unknown id
is a no-op), which is what makes a crash between the engine's own commit and the manifest
write safe: the manifest can lag the engine, never lead it.

On-disk layout of an index at ``path``::

    path/manifest.json   format version, engine, analyzer, position, doc count, and the size
                         and sha256 of every engine file the committed state consists of
    path/<engine>/       the engine's own files

The manifest is written first when an index is created, so engine files never exist without
one saying how they were analysed. Engines do not checksum their own files (a flipped byte in a
tantivy posting list makes it panic or rank wrongly), so the manifest does: files are verified
against it at open and in ``verify_files``, and a mismatch is :class:`KeywordIndexCorrupt`.
"""

from __future__ import annotations

import operator
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Protocol, get_args, runtime_checkable

from index.atomic import atomic_write_json, read_json, sha256_file
from index.errors import IndexCorrupt, IndexMismatch

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"

Analyzer = Literal["en_stem", "default", "whitespace"]
ANALYZERS: tuple[str, ...] = get_args(Analyzer)

TANTIVY_ENGINE = "tantivy-bm25"
BM25S_ENGINE = "bm25s"
ENGINES: tuple[str, ...] = (TANTIVY_ENGINE, BM25S_ENGINE)
DEFAULT_ENGINE = TANTIVY_ENGINE

_MAX_ID = 2**64 - 1  # engines store ids as unsigned 64-bit integers


@dataclass(frozen=True, slots=True)
class KeywordDoc:
    chunk_id: int
    document_id: int
    text: str
    # The access groups of the chunk's document (none: visible to everyone), for engines that
    # filter by them (``search``'s ``allowed_groups``).
    groups: tuple[str, ...] = ()


class KeywordIndexMismatch(IndexMismatch, RuntimeError):
    """The index on disk cannot serve this request as it stands (built with another engine,
    analyzer or format, or its files are missing); the caller should rebuild it from the
    database."""


class KeywordIndexCorrupt(IndexCorrupt):
    """An engine file differs from what the manifest recorded at commit, or the engine failed
    (panicked) on its files; the caller should rebuild the index from the database."""


class KeywordManifestUnreadable(KeywordIndexCorrupt, KeywordIndexMismatch):
    """The manifest itself is damaged: the index cannot say how it was built, or what it holds."""


@runtime_checkable
class KeywordIndex(Protocol):
    """A BM25 index of chunk text.

    Writes (``upsert``/``delete``) are buffered and become visible to ``search`` and
    ``count`` only at ``commit``; changes not committed before ``close`` are discarded, so the
    recorded position never claims more than is on disk. One writer at a time; ``search`` may
    be called from several threads, including while the writer commits.
    """

    name: str

    def upsert(self, docs: Sequence[KeywordDoc]) -> None:
        """Add chunks, replacing any already indexed under the same ``chunk_id`` (within one
        call the last occurrence of an id wins)."""
        ...

    def delete(self, chunk_ids: Sequence[int]) -> None:
        """Remove chunks; ids that are not indexed are ignored."""
        ...

    def commit(self, position: int) -> None:
        """Durably persist every change so far and record ``position`` (the highest
        change-log sequence number applied). Positions never move backwards."""
        ...

    @property
    def position(self) -> int:
        """Position of the last commit; 0 for a new index."""
        ...

    def count(self) -> int:
        """Searchable (committed, not deleted) chunks."""
        ...

    def search(
        self, query: str, k: int, *, allowed_document_ids: Collection[int] | None = None,
        allowed_groups: frozenset[str] | None = None, expansion: str = "", expansion_weight: float = 1.0,
    ) -> list[tuple[int, float]]:
        """Up to ``k`` ``(chunk_id, bm25_score)`` pairs, best first (ties by chunk id).

        ``expansion`` is more text OR-ed with the query (synonyms of its words), each of its
        terms counting ``expansion_weight`` times as much as a query term.

        ``query`` is raw user text: it is analysed like the indexed text and its terms are
        OR-ed, so no input is a syntax error; a query with no indexable terms returns [].
        ``allowed_document_ids`` is an access-control filter applied inside the search,
        before the top ``k`` are taken: the caller gets the best ``k`` chunks among allowed
        documents, never a chunk of any other document.

        ``allowed_groups`` is a hint, given only with ``allowed_document_ids``: those documents
        are the ones visible to these groups (a document with no group is visible to all). An
        engine that indexes each chunk's groups may narrow by them first, a few posting lists
        instead of thousands of document ids; the result is the same, and only chunks of
        ``allowed_document_ids`` are ever returned.
        """
        ...

    def verify_files(self) -> list[str]:
        """Re-read every committed engine file and compare it with the size and sha256 the
        manifest recorded; returns what differs ([] when intact). Costs a full read."""
        ...

    def close(self) -> None:
        ...


@dataclass(frozen=True, slots=True)
class FileDigest:
    """What the manifest remembers of one engine file. ``mtime_ns`` only lets an open skip
    re-hashing a file nobody has touched; the size and digest are what is checked."""

    size: int
    sha256: str
    mtime_ns: int = 0

    def to_json(self) -> dict:
        return {"size": self.size, "sha256": self.sha256, "mtime_ns": self.mtime_ns}

    @classmethod
    def from_json(cls, data: object) -> FileDigest:
        if not isinstance(data, dict):
            raise TypeError("file entry is not an object")
        size, digest, mtime_ns = data.get("size"), data.get("sha256"), data.get("mtime_ns", 0)
        if not isinstance(size, int) or not isinstance(mtime_ns, int) or not _is_sha256(digest):
            raise ValueError(f"bad file entry {data!r}")
        return cls(size, digest, mtime_ns)


def _is_sha256(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


@dataclass(frozen=True, slots=True)
class KeywordManifest:
    format_version: int
    engine: str
    analyzer: str
    position: int
    doc_count: int
    # Engine file name (relative to the engine directory) -> digest, as committed. Empty for an
    # index written before checksums were recorded: it is trusted, and recorded at its next commit.
    files: dict[str, FileDigest] = field(default_factory=dict)

    def to_json(self) -> dict:
        data = asdict(self)
        data["files"] = {name: digest.to_json() for name, digest in sorted(self.files.items())}
        return data

    @classmethod
    def from_json(cls, data: dict) -> KeywordManifest:
        try:
            files = data.get("files", {})
            if not isinstance(files, dict):
                raise TypeError("files is not an object")
            for name in files:
                if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
                    raise ValueError(f"bad file name {name!r}")
            return cls(
                format_version=int(data["format_version"]),
                engine=str(data["engine"]),
                analyzer=str(data["analyzer"]),
                position=int(data["position"]),
                doc_count=int(data["doc_count"]),
                files={name: FileDigest.from_json(entry) for name, entry in files.items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise KeywordManifestUnreadable(f"unreadable keyword index manifest: {exc!r}") from exc


def manifest_path(path: Path) -> Path:
    return Path(path) / MANIFEST_NAME


def read_manifest(path: Path) -> KeywordManifest | None:
    """The manifest of the index at ``path``, or None when there is no index there yet."""
    file = manifest_path(path)
    if not file.exists():
        return None
    try:
        data = read_json(file)
    except ValueError as exc:
        raise KeywordManifestUnreadable(f"unreadable keyword index manifest {file}: {exc}") from exc
    if not isinstance(data, dict):
        raise KeywordManifestUnreadable(f"unreadable keyword index manifest {file}")
    return KeywordManifest.from_json(data)


def write_manifest(path: Path, manifest: KeywordManifest) -> None:
    atomic_write_json(manifest_path(path), manifest.to_json())


def record_digests(
    engine_dir: Path, names: Collection[str], previous: dict[str, FileDigest], *, rewritten: Collection[str] = ()
) -> dict[str, FileDigest]:
    """Digests of the files a commit consists of. A name the previous manifest already knew
    keeps its recorded digest (engine files are immutable once named, so re-hashing could only
    launder damage into the manifest), except those in ``rewritten``, which the engine has just
    written again under the same name (tantivy's meta.json); new names are hashed."""
    out: dict[str, FileDigest] = {}
    for name in names:
        if name in previous and name not in rewritten:
            out[name] = previous[name]
            continue
        path = Path(engine_dir) / name
        stat = path.stat()
        out[name] = FileDigest(stat.st_size, sha256_file(path), stat.st_mtime_ns)
    return out


def digest_problem(path: Path, expected: FileDigest, *, full: bool) -> str | None:
    """How the file at ``path`` differs from its recorded digest, or None when it matches.

    ``full`` re-hashes the file; otherwise a file whose size and modification time are as
    recorded is taken as unchanged, and only a touched one is re-hashed (a file restored from
    a backup with a new mtime is still accepted when its bytes match).
    """
    try:
        stat = path.stat()
        if stat.st_size != expected.size:
            return f"{path.name}: {stat.st_size} bytes, recorded {expected.size}"
        if not full and stat.st_mtime_ns == expected.mtime_ns:
            return None
        if sha256_file(path) != expected.sha256:
            return f"{path.name}: contents differ from the recorded sha256"
    except FileNotFoundError:
        return f"{path.name}: missing"
    except OSError as exc:
        return f"{path.name}: unreadable ({exc.strerror or exc})"
    return None


def check_compatible(manifest: KeywordManifest, *, engine: str, analyzer: str, path: Path) -> None:
    """Refuse to open an index whose terms were produced differently from what the caller
    asks for: its scores would silently stop matching queries."""
    if manifest.format_version != FORMAT_VERSION:
        raise KeywordIndexMismatch(
            f"keyword index at {path} has format version {manifest.format_version}, "
            f"this code reads {FORMAT_VERSION}; rebuild it"
        )
    if manifest.engine != engine:
        raise KeywordIndexMismatch(
            f"keyword index at {path} was built by engine {manifest.engine!r}, "
            f"not {engine!r}; rebuild it"
        )
    if manifest.analyzer != analyzer:
        raise KeywordIndexMismatch(
            f"keyword index at {path} was built with analyzer {manifest.analyzer!r}, "
            f"not {analyzer!r}; rebuild it"
        )


def prepare_manifest(
    path: Path, *, engine: str, analyzer: str, engine_files_present: bool
) -> tuple[KeywordManifest, bool]:
    """The manifest to open ``path`` with, and whether the engine must create fresh files.

    A new index gets its manifest (position 0) before any engine file exists. Engine files
    without a manifest, or a manifest that has recorded work whose files are gone, mean the
    index cannot be trusted: the caller rebuilds rather than silently starting empty.
    """
    manifest = read_manifest(path)
    if manifest is None:
        if engine_files_present:
            raise KeywordIndexMismatch(f"keyword index at {path} has engine files but no manifest; rebuild it")
        manifest = KeywordManifest(FORMAT_VERSION, engine, analyzer, position=0, doc_count=0)
        Path(path).mkdir(parents=True, exist_ok=True)
        write_manifest(path, manifest)
        return manifest, True
    check_compatible(manifest, engine=engine, analyzer=analyzer, path=path)
    if not engine_files_present:
        if manifest.position or manifest.doc_count:
            raise KeywordIndexMismatch(
                f"keyword index at {path} is at position {manifest.position} but its "
                f"{engine} files are missing; rebuild it"
            )
        return manifest, True
    return manifest, False


def validate_analyzer(analyzer: str) -> None:
    if analyzer not in ANALYZERS:
        raise ValueError(f"unknown keyword analyzer {analyzer!r}; expected one of {ANALYZERS}")


def validate_id(value: int, what: str) -> int:
    """``value`` as a plain int (numpy integers accepted), if an engine can store it."""
    try:
        number = operator.index(value)
    except TypeError:
        number = -1
    if isinstance(value, bool) or not 0 <= number <= _MAX_ID:
        raise ValueError(f"{what} must be an integer in [0, 2**64), got {value!r}")
    return number


def usable_ids(ids: Collection[int] | None) -> set[int] | None:
    """An access-control id set reduced to ids an engine can hold; the rest match nothing."""
    if ids is None:
        return None
    return {value for value in map(operator.index, ids) if 0 <= value <= _MAX_ID}


def clean_text(text: str) -> str:
    """Text the engines can take: lone surrogates (which JSON can smuggle into a str) cannot
    cross into UTF-8, so they become replacement characters instead of errors."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def latest_by_chunk(docs: Sequence[KeywordDoc]) -> list[KeywordDoc]:
    """One doc per chunk id, the last one given winning, after checking the ids fit."""
    latest: dict[int, KeywordDoc] = {}
    for doc in docs:
        if not isinstance(doc.text, str):
            raise TypeError(f"chunk {doc.chunk_id!r}: text must be str, got {type(doc.text).__name__}")
        chunk_id = validate_id(doc.chunk_id, "chunk_id")
        latest[chunk_id] = KeywordDoc(chunk_id, validate_id(doc.document_id, "document_id"), clean_text(doc.text), tuple(doc.groups))
    return list(latest.values())


def check_position(current: int, new: int) -> int:
    if isinstance(new, bool) or not isinstance(new, int) or new < current:
        raise ValueError(f"commit position must be an integer >= {current}, got {new!r}")
    return new


def rank(scored: list[tuple[int, float]], k: int) -> list[tuple[int, float]]:
    """Best first, ties broken by chunk id so that every engine orders equal scores alike."""
    return sorted(scored, key=lambda item: (-item[1], item[0]))[:k]
