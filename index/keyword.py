"""Keyword (BM25) search over chunk text: the protocol every engine implements, and the
manifest that makes an index a derived, rebuildable copy of the database.

The database is the source of truth. A keyword index only remembers the highest change-log
sequence number it has applied (its *position*); on open the caller replays the change log
from there. Applying a change twice is harmless (an upsert replaces, deleting an unknown id
is a no-op), which is what makes a crash between the engine's own commit and the manifest
write safe: the manifest can lag the engine, never lead it.

On-disk layout of an index at ``path``::

    path/manifest.json   format version, engine, analyzer, position, doc count
    path/<engine>/       the engine's own files

The manifest is written first when an index is created, so engine files never exist without
one saying how they were analysed.
"""

from __future__ import annotations

import operator
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Protocol, get_args, runtime_checkable

from index.atomic import atomic_write_json, read_json
from index.errors import IndexMismatch

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


class KeywordIndexMismatch(IndexMismatch, RuntimeError):
    """The index on disk cannot serve this request as it stands (built with another engine,
    analyzer or format, or its files are missing); the caller should rebuild it from the
    database."""


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
        self, query: str, k: int, *, allowed_document_ids: Collection[int] | None = None
    ) -> list[tuple[int, float]]:
        """Up to ``k`` ``(chunk_id, bm25_score)`` pairs, best first (ties by chunk id).

        ``query`` is raw user text: it is analysed like the indexed text and its terms are
        OR-ed, so no input is a syntax error; a query with no indexable terms returns [].
        ``allowed_document_ids`` is an access-control filter applied inside the search,
        before the top ``k`` are taken: the caller gets the best ``k`` chunks among allowed
        documents, never a chunk of any other document.
        """
        ...

    def close(self) -> None:
        ...


@dataclass(frozen=True, slots=True)
class KeywordManifest:
    format_version: int
    engine: str
    analyzer: str
    position: int
    doc_count: int

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> KeywordManifest:
        try:
            return cls(
                format_version=int(data["format_version"]),
                engine=str(data["engine"]),
                analyzer=str(data["analyzer"]),
                position=int(data["position"]),
                doc_count=int(data["doc_count"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise KeywordIndexMismatch(f"unreadable keyword index manifest: {exc!r}") from exc


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
        raise KeywordIndexMismatch(f"unreadable keyword index manifest {file}: {exc}") from exc
    if not isinstance(data, dict):
        raise KeywordIndexMismatch(f"unreadable keyword index manifest {file}")
    return KeywordManifest.from_json(data)


def write_manifest(path: Path, manifest: KeywordManifest) -> None:
    atomic_write_json(manifest_path(path), manifest.to_json())


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
        latest[chunk_id] = KeywordDoc(chunk_id, validate_id(doc.document_id, "document_id"), clean_text(doc.text))
    return list(latest.values())


def check_position(current: int, new: int) -> int:
    if isinstance(new, bool) or not isinstance(new, int) or new < current:
        raise ValueError(f"commit position must be an integer >= {current}, got {new!r}")
    return new


def rank(scored: list[tuple[int, float]], k: int) -> list[tuple[int, float]]:
    """Best first, ties broken by chunk id so that every engine orders equal scores alike."""
    return sorted(scored, key=lambda item: (-item[1], item[0]))[:k]
