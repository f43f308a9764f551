"""tantivy engine specifics beyond the shared contract."""

from __future__ import annotations

import os
import random

import pytest

import index.keyword_tantivy as keyword_tantivy
from index.errors import IndexCorrupt, StorageUnavailable
from index.keyword import KeywordDoc, KeywordIndexCorrupt, KeywordIndexMismatch, read_manifest
from index.keyword_tantivy import TantivyKeywordIndex, build_text_analyzer


def test_en_stem_lowercases_drops_stop_words_and_stems():
    assert build_text_analyzer("en_stem").analyze("The Running dogs are NOT connected") == ["run", "dog", "connect"]
    assert build_text_analyzer("default").analyze("The Running dogs") == ["the", "running", "dogs"]
    assert build_text_analyzer("whitespace").analyze("The Running-dogs") == ["The", "Running-dogs"]


def test_over_long_tokens_are_dropped():
    assert build_text_analyzer("en_stem").analyze("ok " + "x" * 41) == ["ok"]


@pytest.fixture
def corpus_index(tmp_path):
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]
    docs = [
        KeywordDoc(i, rng.randrange(40), " ".join(rng.choices(words, k=rng.randint(1, 12))))
        for i in range(1, 600)
    ]
    index = TantivyKeywordIndex(tmp_path / "kw")
    index.upsert(docs)
    index.commit(1)
    yield index
    index.close()


def test_exact_filter_and_over_fetch_shortcut_agree(corpus_index, monkeypatch):
    """The routes (a small set straight to the term set; filter a deeper unfiltered ranking; look once more as deep as the first
    look's share of allowed hits says) and the exact term-set filter are routes to one answer;
    force each in turn and compare."""
    rng = random.Random(11)
    cases = [
        (query, frozenset(rng.sample(range(40), rng.choice([1, 3, 20, 39]))), k)
        for query in ["alpha", "beta gamma", "omega sigma delta", "alpha alpha beta"]
        for k in (1, 5, 50)
        for _ in range(3)
    ]
    direct = [corpus_index.search(q, k, allowed_document_ids=allowed) for q, allowed, k in cases]  # small sets: term set
    monkeypatch.setattr(keyword_tantivy, "_FILTER_DIRECT_MAX_IDS", 0)
    shortcut = [corpus_index.search(q, k, allowed_document_ids=allowed) for q, allowed, k in cases]
    monkeypatch.setattr(keyword_tantivy, "_FILTER_OVERFETCH", 0)
    monkeypatch.setattr(keyword_tantivy, "_FILTER_MIN_DEPTH", 4)  # a shallow first look: the second decides
    second_look = [corpus_index.search(q, k, allowed_document_ids=allowed) for q, allowed, k in cases]
    monkeypatch.setattr(keyword_tantivy, "_FILTER_MAX_DEPTH", 0)
    exact = [corpus_index.search(q, k, allowed_document_ids=allowed) for q, allowed, k in cases]
    for (query, allowed, k), small, fast, deeper, slow in zip(cases, direct, shortcut, second_look, exact):
        assert [s for _, s in small] == pytest.approx([s for _, s in slow]), (query, sorted(allowed), k)
        assert [s for _, s in fast] == pytest.approx([s for _, s in slow]), (query, sorted(allowed), k)
        assert [s for _, s in deeper] == pytest.approx([s for _, s in slow]), (query, sorted(allowed), k)


def test_a_search_only_instance_takes_no_writer_lock(tmp_path):
    writer = TantivyKeywordIndex(tmp_path / "kw")
    writer.upsert([KeywordDoc(1, 1, "shared index")])
    writer.commit(1)
    reader = TantivyKeywordIndex(tmp_path / "kw")
    try:
        assert [c for c, _ in reader.search("shared", 5)] == [1]
        assert reader.position == 1
    finally:
        reader.close()
        writer.close()


# --- failing closed -----------------------------------------------------------------------------


# Tantivy ends each file with a footer (its version as JSON, then the length): a flipped byte
# there fails the open itself, whatever the checks. Bit rot in the body is what the checks are
# for, so flips stay clear of the footer (a test flipping anywhere failed now and then, when
# the segment's size put a flip in it).
_FOOTER_BYTES = 512


def _flip(path, count: int = 16, seed: int = 0) -> None:
    data = bytearray(path.read_bytes())
    rng = random.Random(seed)
    body = max(1, len(data) - _FOOTER_BYTES)
    for _ in range(count):
        data[rng.randrange(body)] ^= 0xFF
    path.write_bytes(bytes(data))


def _largest(directory, suffix: str):
    return max(directory.glob(f"*{suffix}"), key=lambda p: p.stat().st_size)


def _built(path, n: int = 400) -> None:
    rng = random.Random(3)
    words = [f"term{i}" for i in range(300)]
    index = TantivyKeywordIndex(path)
    index.upsert([KeywordDoc(i, i % 37, " ".join(rng.choices(words, k=40))) for i in range(1, n)])
    index.commit(5)
    index.close()


def test_each_commit_records_the_size_and_digest_of_its_files(tmp_path):
    _built(tmp_path / "kw")
    files = read_manifest(tmp_path / "kw").files
    assert "meta.json" in files and any(name.endswith(".idx") for name in files)
    assert all(len(digest.sha256) == 64 and digest.size > 0 for digest in files.values())


@pytest.mark.parametrize("suffix", [".idx", ".term", ".fast", "meta.json"])
def test_a_flipped_byte_in_any_engine_file_is_caught_at_open(tmp_path, suffix):
    _built(tmp_path / "kw")
    _flip(_largest(tmp_path / "kw" / "tantivy", suffix))
    with pytest.raises(KeywordIndexCorrupt):
        TantivyKeywordIndex(tmp_path / "kw")


def test_above_the_full_check_size_open_trusts_untouched_files_and_verify_files_does_not(tmp_path):
    _built(tmp_path / "kw")
    target = _largest(tmp_path / "kw" / "tantivy", ".idx")
    before = target.stat()
    _flip(target)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))  # bit rot leaves no mtime behind
    index = TantivyKeywordIndex(tmp_path / "kw", full_check_max_bytes=0)
    try:
        assert index.verify_files() and "differ" in index.verify_files()[0]
    finally:
        index.close()
    with pytest.raises(KeywordIndexCorrupt):  # the full check at open (no size limit) sees it
        TantivyKeywordIndex(tmp_path / "kw")


def test_a_panic_on_damaged_postings_is_raised_as_index_corrupt(tmp_path, monkeypatch):
    """What the probe saw: with the checksums out of the way, flipped bytes in the .idx make
    tantivy panic (a BaseException) or answer; never anything else escapes."""
    _built(tmp_path / "kw", n=2000)
    _flip(_largest(tmp_path / "kw" / "tantivy", ".idx"), count=40, seed=1)
    monkeypatch.setattr(keyword_tantivy, "check_committed_files", lambda *a, **k: [])
    try:
        index = TantivyKeywordIndex(tmp_path / "kw")
    except KeywordIndexCorrupt:
        return
    rng = random.Random(5)
    outcomes = {"answered": 0, "corrupt": 0}
    try:
        for _ in range(40):
            try:
                index.search(" ".join(f"term{rng.randrange(300)}" for _ in range(3)), 10)
                outcomes["answered"] += 1
            except IndexCorrupt:
                outcomes["corrupt"] += 1
    finally:
        index.close()
    assert sum(outcomes.values()) == 40


def test_a_commit_after_an_unrecorded_commit_is_accepted(tmp_path, monkeypatch):
    """A crash between tantivy's commit and the manifest write leaves newer files than the
    manifest records: accepted (the recorded ones still match), then recorded at the next commit."""
    _built(tmp_path / "kw")
    index = TantivyKeywordIndex(tmp_path / "kw")
    index.upsert([KeywordDoc(5000, 1, "late arrival")])
    monkeypatch.setattr(keyword_tantivy, "write_manifest", lambda *a, **k: (_ for _ in ()).throw(OSError("power cut")))
    with pytest.raises(OSError):
        index.commit(6)
    monkeypatch.undo()
    index.close()
    reopened = TantivyKeywordIndex(tmp_path / "kw")
    try:
        assert reopened.position == 5 and reopened.verify_files() == []
        reopened.upsert([KeywordDoc(5000, 1, "late arrival")])
        reopened.commit(6)
        assert "meta.json" in read_manifest(tmp_path / "kw").files and reopened.verify_files() == []
    finally:
        reopened.close()


class _DyingWriter:
    """tantivy's writer after a thread hit a full disk: every call fails."""

    def __getattr__(self, name):
        def fail(*_args, **_kwargs):
            raise ValueError("An index writer was killed.. A worker thread encountered an error (io::Error most likely)")
        return fail


def test_a_failed_write_drops_the_writer_and_keeps_the_position(tmp_path):
    _built(tmp_path / "kw")
    index = TantivyKeywordIndex(tmp_path / "kw")
    try:
        index._writer = _DyingWriter()
        with pytest.raises(StorageUnavailable):
            index.upsert([KeywordDoc(7000, 1, "lost on a full disk")])
        assert index._writer is None and index.position == 5
        index.upsert([KeywordDoc(7000, 1, "written once there is room")])  # a fresh writer
        index.commit(6)
        assert [c for c, _ in index.search("room", 5)] == [7000]
    finally:
        index.close()


def test_a_manifest_from_before_digests_is_trusted_then_recorded_at_the_next_commit(tmp_path):
    import json

    _built(tmp_path / "kw")
    manifest_file = tmp_path / "kw" / "manifest.json"
    legacy = json.loads(manifest_file.read_text())
    del legacy["files"]
    manifest_file.write_text(json.dumps(legacy))
    index = TantivyKeywordIndex(tmp_path / "kw")
    try:
        assert index.position == 5 and index.verify_files() == []
        index.upsert([KeywordDoc(9000, 1, "after the upgrade")])
        index.commit(6)
        assert read_manifest(tmp_path / "kw").files
    finally:
        index.close()


def test_a_group_filter_answers_without_the_document_id_filter(tmp_path, monkeypatch):
    """The caller's groups select the same chunks as the allowed documents: the search takes
    the group terms (a few posting lists), and a hit of a document outside the allowed set
    (not indexed yet, or its groups stale) is still dropped."""
    docs = [KeywordDoc(i, i, f"alpha word{i % 5}", ("sales",) if i % 3 == 0 else ("hr",) if i % 3 == 1 else ())
            for i in range(1, 301)]
    index = TantivyKeywordIndex(tmp_path / "kw")
    index.upsert(docs)
    index.commit(1)
    try:
        visible = {d.document_id for d in docs if d.groups in ((), ("sales",))}
        allowed = visible - {3, 6}  # two visible documents not indexed yet
        expected = index.search("alpha word0", 50, allowed_document_ids=allowed)

        def no_id_filter(*_args, **_kwargs):
            raise AssertionError("the document-id filter was not needed")

        monkeypatch.setattr(TantivyKeywordIndex, "_search_allowed", no_id_filter)
        got = index.search("alpha word0", 50, allowed_document_ids=allowed, allowed_groups=frozenset({"sales"}))
        assert got == expected
        assert {cid for cid, _ in got} <= allowed and len(got) == 50
    finally:
        index.close()


def test_stale_group_terms_can_cost_results_but_never_leak_one(tmp_path):
    """Groups indexed as "hr" while the allowed set (the catalog) says otherwise: whatever
    the group terms admit, nothing outside the allowed set is returned. (The retriever passes
    the groups only when the keyword index has caught up with the catalog.)"""
    docs = [KeywordDoc(i, i, "alpha", ("hr",)) for i in range(1, 201)]
    index = TantivyKeywordIndex(tmp_path / "kw")
    index.upsert(docs)
    index.commit(1)
    try:
        allowed = set(range(1, 101))
        got = index.search("alpha", 10, allowed_document_ids=allowed, allowed_groups=frozenset({"hr"}))
        assert len(got) == 10 and {cid for cid, _ in got} <= allowed
        assert index.search("alpha", 10, allowed_document_ids=allowed, allowed_groups=frozenset({"sales"})) == []
    finally:
        index.close()


def test_an_index_written_before_group_terms_is_refused_as_a_mismatch(tmp_path, keyword_format_before_groups):
    """Its chunks carry no groups, so the group filter would find none of them: the index set
    rebuilds such an index from the database (tests/index/test_indexset.py)."""
    with keyword_format_before_groups():
        old = TantivyKeywordIndex(tmp_path / "kw")
        old.upsert([KeywordDoc(1, 1, "alpha")])
        old.commit(1)
        old.close()
    with pytest.raises(KeywordIndexMismatch, match="before access groups"):
        TantivyKeywordIndex(tmp_path / "kw")
