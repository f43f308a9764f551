"""The corruption fuse around a keyword engine: panics become IndexCorrupt, once reported."""

from __future__ import annotations

import pytest

from index.errors import IndexCorrupt
from index.keyword import KeywordDoc
from index.keyword_guard import GuardedKeywordIndex


class EnginePanic(BaseException):
    """What pyo3 raises when Rust code panics: not an Exception."""


class FakeEngine:
    name = "fake"
    position = 3

    def __init__(self, fail_with: BaseException | None = None):
        self.fail_with = fail_with
        self.searches = 0
        self.upserted: list = []

    def search(self, query, k, *, allowed_document_ids=None, allowed_groups=None, expansion="", expansion_weight=1.0):
        self.searches += 1
        if self.fail_with is not None:
            raise self.fail_with
        return [(1, 1.0)]

    def count(self):
        return 1

    def upsert(self, docs):
        if self.fail_with is not None:
            raise self.fail_with
        self.upserted.extend(docs)

    def delete(self, chunk_ids):
        pass

    def commit(self, position):
        pass

    def verify_files(self):
        return []

    def close(self):
        pass


def test_a_panic_becomes_index_corrupt_and_blows_the_fuse_once():
    reports: list[str] = []
    engine = FakeEngine(EnginePanic("index out of bounds: the len is 101 but the index is 101"))
    guarded = GuardedKeywordIndex(engine, on_corrupt=reports.append)
    for _ in range(3):
        with pytest.raises(IndexCorrupt, match="index out of bounds"):
            guarded.search("anything", 5)
    assert engine.searches == 1  # once blown, the engine is not asked again
    assert len(reports) == 1 and guarded.corrupt == reports[0]
    with pytest.raises(IndexCorrupt):
        guarded.count()


@pytest.mark.parametrize("signal", [KeyboardInterrupt(), SystemExit(2), GeneratorExit()])
def test_the_process_own_exceptions_pass_through(signal):
    guarded = GuardedKeywordIndex(FakeEngine(signal))
    with pytest.raises(type(signal)):
        guarded.search("anything", 5)
    assert guarded.corrupt is None


def test_ordinary_write_errors_pass_through_without_blowing_it():
    """A full disk says nothing about the files already committed."""
    guarded = GuardedKeywordIndex(FakeEngine(OSError(28, "No space left on device")))
    with pytest.raises(OSError):
        guarded.upsert([KeywordDoc(1, 1, "x")])
    assert guarded.corrupt is None


def test_a_healthy_engine_is_passed_through():
    engine = FakeEngine()
    guarded = GuardedKeywordIndex(engine)
    assert guarded.search("q", 5) == [(1, 1.0)] and guarded.count() == 1
    guarded.upsert([KeywordDoc(2, 1, "y")])
    assert engine.upserted and guarded.name == "fake" and guarded.position == 3
