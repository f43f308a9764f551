"""A keyword engine behind a corruption fuse: the first engine failure on its files blows it.

Searches reach the keyword index straight from retrieval, so this wrapper is where an engine
failure becomes the error vocabulary's :class:`~index.errors.IndexCorrupt`, whatever the engine
raised: a Rust panic arrives as a ``BaseException`` that no ``except Exception`` would catch,
and would otherwise end a request as a plain-text 500. Once blown, every search fails fast with
``IndexCorrupt`` (the engine is not asked again: it may panic again, or answer wrongly) and
the owner is told once, so it can rebuild the index from the database and swap the wrapper.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar

from index.errors import IndexCorrupt
from index.keyword import KeywordDoc, KeywordIndex

T = TypeVar("T")

# Raised by the process's own life, not by the engine: passed through untouched.
_PROCESS_EXCEPTIONS = (KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError)


class GuardedKeywordIndex:
    """A :class:`~index.keyword.KeywordIndex` that reports engine failures as ``IndexCorrupt``.

    Write failures that are ordinary exceptions (a full disk) pass through unchanged: they say
    nothing about the files already committed.
    """

    def __init__(self, inner: KeywordIndex, on_corrupt: Callable[[str], None] | None = None):
        self.inner = inner
        self._on_corrupt = on_corrupt
        self.corrupt: str | None = None

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def position(self) -> int:
        return self.inner.position

    def __getattr__(self, name: str) -> Any:  # engine specifics (analyzer, ...) read through
        return getattr(self.inner, name)

    # --- the fuse --------------------------------------------------------------------------------
    def blow(self, reason: str) -> None:
        """Mark the index unusable (first reason wins) and tell the owner once."""
        if self.corrupt is not None:
            return
        self.corrupt = reason
        if self._on_corrupt is not None:
            self._on_corrupt(reason)

    def _refuse_if_blown(self) -> None:
        if self.corrupt is not None:
            raise IndexCorrupt(f"the keyword index is unusable until it is rebuilt from the database: {self.corrupt}")

    def _call(self, what: str, call: Callable[[], T], *, reads: bool) -> T:
        if reads:
            self._refuse_if_blown()
        try:
            return call()
        except IndexCorrupt as exc:
            self.blow(str(exc))
            raise
        except Exception:
            raise
        except _PROCESS_EXCEPTIONS:
            raise
        except BaseException as exc:  # a panic inside the engine
            reason = f"the {self.name} engine failed to {what}: {type(exc).__name__}: {exc}"
            self.blow(reason)
            raise IndexCorrupt(reason) from exc

    # --- KeywordIndex ----------------------------------------------------------------------------
    def search(self, query: str, k: int, *, allowed_document_ids: Collection[int] | None = None,
               allowed_groups: frozenset[str] | None = None, expansion: str = "", expansion_weight: float = 1.0) -> list[tuple[int, float]]:
        return self._call("search", lambda: self.inner.search(query, k, allowed_document_ids=allowed_document_ids,
                                                              allowed_groups=allowed_groups, expansion=expansion,
                                                              expansion_weight=expansion_weight), reads=True)

    def count(self) -> int:
        return self._call("count documents", self.inner.count, reads=True)

    def upsert(self, docs: Sequence[KeywordDoc]) -> None:
        self._call("add documents", lambda: self.inner.upsert(docs), reads=False)

    def delete(self, chunk_ids: Sequence[int]) -> None:
        self._call("delete documents", lambda: self.inner.delete(chunk_ids), reads=False)

    def commit(self, position: int) -> None:
        self._call("commit", lambda: self.inner.commit(position), reads=False)

    def verify_files(self) -> list[str]:
        return self._call("verify its files", self.inner.verify_files, reads=False)

    def close(self) -> None:
        try:
            self.inner.close()
        except _PROCESS_EXCEPTIONS:
            raise
        except BaseException:  # closing a broken engine must not take its owner down
            if self.corrupt is None:
                raise

    def __repr__(self) -> str:
        return f"GuardedKeywordIndex({self.inner!r}, corrupt={self.corrupt!r})"
