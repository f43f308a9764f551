"""Flipped bytes in every kind of file Groundwork keeps.

Fail closed means: damage is found (at open, or by `verify`), nothing damaged is served, a
derived index is rebuilt from the database and reported as repaired, and a damaged database
is refused for writing until it is restored; after recovery `verify` is consistent and the
answers are those of the undamaged copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from index.errors import StorageCorrupt
from tests.faults.harness import flip_bytes, keyword_answers, open_groundwork, settings_for, snapshot

pytestmark = pytest.mark.faults


def _version_dir(data: Path) -> Path:
    return data / "indexes" / "v1"


def _largest(folder: Path, pattern: str) -> Path:
    return max(folder.glob(pattern), key=lambda p: p.stat().st_size)


INDEX_FILES = {
    "faiss file": lambda d: _largest(_version_dir(d) / "vectors", "vectors-*.faiss"),
    "vector manifest": lambda d: _version_dir(d) / "vectors" / "vectors.manifest.json",
    "tantivy .idx": lambda d: _largest(_version_dir(d) / "keyword" / "tantivy", "*.idx"),
    "tantivy .term": lambda d: _largest(_version_dir(d) / "keyword" / "tantivy", "*.term"),
    "tantivy .fast": lambda d: _largest(_version_dir(d) / "keyword" / "tantivy", "*.fast"),
    "tantivy meta.json": lambda d: _version_dir(d) / "keyword" / "tantivy" / "meta.json",
    "keyword manifest": lambda d: _version_dir(d) / "keyword" / "manifest.json",
    "CURRENT.json": lambda d: d / "indexes" / "CURRENT.json",
}


@pytest.mark.parametrize("kind", list(INDEX_FILES))
def test_a_damaged_index_file_is_rebuilt_and_reported(kind, clean, damaged_copy):
    flip_bytes(INDEX_FILES[kind](damaged_copy), count=8, seed=len(kind))
    gw = open_groundwork(settings_for(damaged_copy))
    try:
        report = gw.verify()
        assert report["consistent"], report["problems"]
        assert report["repaired"], f"damage to the {kind} went unnoticed"
        assert keyword_answers(gw) == clean["answers"]
    finally:
        gw.close()
    again = open_groundwork(settings_for(damaged_copy))
    try:
        report = again.verify()
        assert report["consistent"] and report["repaired"] == []
    finally:
        again.close()


def test_a_damaged_database_is_refused_until_restored(clean, damaged_copy, tmp_path):
    """The probe's fault: 4 KB overwritten in the middle of the SQLite file. Writing into it
    kept "working"; now ingest refuses (StorageCorrupt, exit 3 on the command line), verify
    reports it, and a restored snapshot (older than the indexes) is consistent again."""
    database = damaged_copy / "groundwork.db"
    snapshot_copy = tmp_path / "snapshot.db"
    shutil.copy(database, snapshot_copy)
    gw = open_groundwork(settings_for(damaged_copy))
    (tmp_path / "late").mkdir()
    (tmp_path / "late" / "late.md").write_text("# Late\n\nA ferry timetable note written after the snapshot.\n")
    gw.ingest([tmp_path / "late"], progress=False)  # the indexes now reflect a change the snapshot lacks
    gw.refresh_indexes()
    gw.close()
    size = database.stat().st_size
    with open(database, "r+b") as handle:
        handle.seek(size // 2 // 4096 * 4096)
        handle.write(bytes(range(256)) * 16)

    try:
        damaged = open_groundwork(settings_for(damaged_copy))
    except StorageCorrupt as exc:  # so damaged that opening it fails: still named, with the way out
        assert "Restore the database from a snapshot" in str(exc)
    else:
        try:
            with pytest.raises(StorageCorrupt, match="refusing to write"):
                damaged.ingest([tmp_path / "late"], progress=False)
            report = damaged.verify()
            assert not report["consistent"] and not report["database_integrity"]["ok"]
        finally:
            damaged.close()

    shutil.copy(snapshot_copy, database)  # recovery: restore the snapshot
    restored = open_groundwork(settings_for(damaged_copy))
    try:
        report = restored.verify()
        assert report["consistent"], report["problems"]
        assert any("past the database" in r for r in report["repaired"])  # the indexes were ahead
        assert snapshot(database) == clean["snapshot"]
        restored.ingest([tmp_path / "late"], progress=False)  # re-ingest what the snapshot lacks
        assert restored.verify()["consistent"]
    finally:
        restored.close()


def test_a_damaged_write_ahead_log_loses_only_its_tail_and_the_indexes_follow(clean, tmp_path):
    """A crash image whose -wal is damaged: SQLite keeps the frames before the first bad one
    and drops the rest, silently. Indexes that had seen the dropped commits are ahead of the
    database: rebuilt. Re-running the ingest restores what was lost."""
    data = tmp_path / "data"
    image = tmp_path / "image"
    gw = open_groundwork(settings_for(data))
    try:
        gw.ingest([clean["corpus"]], progress=False)
        gw.refresh_indexes()
        wal = data / "groundwork.db-wal"
        assert wal.exists() and wal.stat().st_size > 0
        shutil.copytree(data, image, ignore=shutil.ignore_patterns("*-shm"))  # what a power cut leaves
    finally:
        gw.close()
    flip_bytes(image / "groundwork.db-wal", count=4, seed=7)
    recovered = open_groundwork(settings_for(image))
    try:
        report = recovered.verify()
        assert report["consistent"], report["problems"]
        lost = set(clean["snapshot"]["docs"]) - set(snapshot(image / "groundwork.db")["docs"])
        assert lost and any("past the database" in r for r in report["repaired"])
        recovered.ingest([clean["corpus"]], progress=False)
        recovered.refresh_indexes()
        assert recovered.verify()["consistent"]
        assert keyword_answers(recovered) == clean["answers"], f"{len(lost)} documents had been lost"
    finally:
        recovered.close()
    assert snapshot(image / "groundwork.db") == clean["snapshot"]
