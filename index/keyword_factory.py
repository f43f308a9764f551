"""Opening a keyword index: which engine serves the index at a path.

Kept apart from ``index.keyword`` (the protocol and manifest every engine builds on) so that
the engines import the protocol and only this module imports the engines: no import cycle.
"""

from __future__ import annotations

from pathlib import Path

from index.keyword import (
    BM25S_ENGINE,
    DEFAULT_ENGINE,
    ENGINES,
    TANTIVY_ENGINE,
    KeywordIndex,
    KeywordIndexMismatch,
    read_manifest,
    validate_analyzer,
)


def open_keyword_index(
    path: Path, analyzer: str = "en_stem", *, engine: str | None = None,
    full_check_max_bytes: int | None = None,
) -> KeywordIndex:
    """Open the keyword index at ``path``, creating an empty one if there is none.

    ``engine`` None means "whatever is there", or the default engine for a new index.
    Raises :class:`KeywordIndexMismatch` when the index on disk was built with another
    engine, analyzer or format version, and :class:`KeywordIndexCorrupt` when its files do
    not match the manifest (``full_check_max_bytes``: see the tantivy engine).
    """
    validate_analyzer(analyzer)
    path = Path(path)
    if engine is None:
        manifest = read_manifest(path)
        engine = manifest.engine if manifest is not None else DEFAULT_ENGINE
    if engine == TANTIVY_ENGINE:
        from index.keyword_tantivy import TantivyKeywordIndex

        return TantivyKeywordIndex(path, analyzer, full_check_max_bytes=full_check_max_bytes)
    if engine == BM25S_ENGINE:
        from index.keyword_bm25s import Bm25sKeywordIndex

        return Bm25sKeywordIndex(path, analyzer)
    raise KeywordIndexMismatch(f"unknown keyword engine {engine!r}; expected one of {ENGINES}")
