"""A second keyword engine on bm25s: the reference implementation of the protocol.

bm25s cannot add or delete documents in an index it has built, so this engine keeps every
committed chunk (text and tokens) in memory, persists the chunks at each commit, and rebuilds
the whole score matrix at each commit and on open: O(corpus) every time. That suits tests
and small collections, and gives an independent check on the shipped tantivy engine (same
analyzers, same BM25 parameters, a different implementation); it is not meant for large
collections. bm25s is a test-only dependency, imported only when this engine is chosen.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np

from index.atomic import atomic_write_bytes
from index.keyword import (
    BM25S_ENGINE,
    FORMAT_VERSION,
    KeywordDoc,
    KeywordIndexMismatch,
    KeywordManifest,
    check_position,
    clean_text,
    latest_by_chunk,
    prepare_manifest,
    usable_ids,
    validate_analyzer,
    validate_id,
    write_manifest,
)
from index.keyword_tantivy import build_text_analyzer

ENGINE_DIR = "bm25s"
CHUNKS_FILE = "chunks.jsonl"
# tantivy's fixed parameters, so the two engines score alike.
K1 = 1.2
B = 0.75


@dataclass(frozen=True, slots=True)
class _Chunk:
    document_id: int
    text: str
    tokens: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """What searches read; replaced whole at commit so a search never sees a partial one."""

    retriever: bm25s.BM25 | None
    chunk_ids: np.ndarray
    document_ids: np.ndarray

    @classmethod
    def build(cls, chunks: dict[int, _Chunk]) -> _Snapshot:
        chunk_ids = np.array(sorted(chunks), dtype=np.uint64)
        document_ids = np.array([chunks[int(c)].document_id for c in chunk_ids], dtype=np.uint64)
        corpus = [list(chunks[int(c)].tokens) for c in chunk_ids]
        retriever = None
        if any(corpus):  # bm25s cannot index a corpus without a single token
            retriever = bm25s.BM25(method="lucene", k1=K1, b=B)
            retriever.index(corpus, show_progress=False)
        return cls(retriever, chunk_ids, document_ids)


class Bm25sKeywordIndex:
    """A :class:`~index.keyword.KeywordIndex` on bm25s; see the module note on its costs."""

    name = BM25S_ENGINE

    def __init__(self, path: Path, analyzer: str = "en_stem"):
        validate_analyzer(analyzer)
        self._path = Path(path)
        self._analyzer = analyzer
        self._chunks_file = self._path / ENGINE_DIR / CHUNKS_FILE
        manifest, fresh = prepare_manifest(
            self._path, engine=self.name, analyzer=analyzer, engine_files_present=self._chunks_file.exists()
        )
        self._text_analyzer = build_text_analyzer(analyzer)
        self._chunks: dict[int, _Chunk] = {} if fresh else self._load()
        self._pending: dict[int, _Chunk | None] = {}  # None: delete
        self._snapshot = _Snapshot.build(self._chunks)
        self._position = manifest.position
        self._closed = False

    def _tokens(self, text: str) -> tuple[str, ...]:
        return tuple(self._text_analyzer.analyze(text))

    def _load(self) -> dict[int, _Chunk]:
        chunks: dict[int, _Chunk] = {}
        try:
            for line in self._chunks_file.read_text(encoding="utf-8").splitlines():
                chunk_id, document_id, text = json.loads(line)
                chunks[chunk_id] = _Chunk(document_id, text, self._tokens(text))
        except (ValueError, TypeError) as exc:
            raise KeywordIndexMismatch(f"unreadable {self._chunks_file}: {exc}; rebuild it") from exc
        return chunks

    def _save(self) -> None:
        lines = (
            json.dumps([chunk_id, chunk.document_id, chunk.text], ensure_ascii=False)
            for chunk_id, chunk in sorted(self._chunks.items())
        )
        atomic_write_bytes(self._chunks_file, "".join(line + "\n" for line in lines).encode("utf-8"))

    # --- writing -------------------------------------------------------------------------
    def upsert(self, docs: Sequence[KeywordDoc]) -> None:
        self._check_open()
        for doc in latest_by_chunk(docs):
            self._pending[doc.chunk_id] = _Chunk(doc.document_id, doc.text, self._tokens(doc.text))

    def delete(self, chunk_ids: Sequence[int]) -> None:
        self._check_open()
        for chunk_id in chunk_ids:
            self._pending[validate_id(chunk_id, "chunk_id")] = None

    def commit(self, position: int) -> None:
        self._check_open()
        position = check_position(self._position, position)
        if self._pending:
            chunks = dict(self._chunks)
            for chunk_id, chunk in self._pending.items():
                if chunk is None:
                    chunks.pop(chunk_id, None)
                else:
                    chunks[chunk_id] = chunk
            self._chunks = chunks
            self._pending = {}
            self._save()
            self._snapshot = _Snapshot.build(chunks)
        write_manifest(
            self._path,
            KeywordManifest(FORMAT_VERSION, self.name, self._analyzer, position, len(self._chunks)),
        )
        self._position = position

    def verify_files(self) -> list[str]:
        """Nothing to re-hash: the chunk file is re-read and re-parsed in full at every open,
        and written whole at every commit, so this reference engine records no checksums."""
        self._check_open()
        return []

    # --- reading -------------------------------------------------------------------------
    @property
    def position(self) -> int:
        return self._position

    @property
    def analyzer(self) -> str:
        return self._analyzer

    def count(self) -> int:
        self._check_open()
        return len(self._snapshot.chunk_ids)

    def search(
        self, query: str, k: int, *, allowed_document_ids: Collection[int] | None = None,
        allowed_groups: frozenset[str] | None = None, expansion: str = "", expansion_weight: float = 1.0,
    ) -> list[tuple[int, float]]:
        """``allowed_groups`` is not used: this engine filters by document id in one vector
        operation anyway."""
        self._check_open()
        snapshot = self._snapshot
        allowed = usable_ids(allowed_document_ids)
        if k <= 0 or snapshot.retriever is None or (allowed is not None and not allowed):
            return []
        # Duplicates kept: a repeated query term counts once per occurrence, as in tantivy.
        token_ids = snapshot.retriever.get_tokens_ids(list(self._tokens(clean_text(query))))
        extra_ids = (snapshot.retriever.get_tokens_ids(list(self._tokens(clean_text(expansion))))
                     if expansion and expansion_weight > 0 else [])
        if not token_ids and not extra_ids:
            return []
        scores = snapshot.retriever.get_scores_from_ids(token_ids) if token_ids else 0.0
        if extra_ids:
            scores = scores + expansion_weight * snapshot.retriever.get_scores_from_ids(extra_ids)
        matches = scores > 0  # Lucene BM25 is positive exactly where a query term occurs
        if allowed is not None:
            matches &= np.isin(snapshot.document_ids, np.fromiter(allowed, dtype=np.uint64, count=len(allowed)))
        candidates = np.flatnonzero(matches)
        order = np.lexsort((snapshot.chunk_ids[candidates], -scores[candidates]))[:k]
        best = candidates[order]
        return [(int(snapshot.chunk_ids[i]), float(scores[i])) for i in best]

    # --- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Discard uncommitted changes."""
        self._closed = True
        self._pending = {}

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"keyword index at {self._path} is closed")

    def __enter__(self) -> Bm25sKeywordIndex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Bm25sKeywordIndex({str(self._path)!r}, analyzer={self._analyzer!r}, position={self._position})"
