"""A new replica seeded from another data directory's index files catches up instead of rebuilding."""

from __future__ import annotations

import pytest

from tests.faults.harness import QUERIES, keyword_answers, open_groundwork, settings_for, write_corpus

pytestmark = pytest.mark.integration


def test_a_seeded_replica_replays_the_change_log_from_the_copied_positions(fresh_postgres_url, tmp_path):
    from index.indexset import seed_indexes

    corpus = write_corpus(tmp_path / "corpus", documents=12)
    first = open_groundwork(settings_for(tmp_path / "a", database_url=fresh_postgres_url))
    try:
        first.ingest([corpus], progress=False)
        first.refresh_indexes()
        seeded_position = first.indexes.position
    finally:
        first.close()
    # Written after replica a's index files were last saved: the new replica must replay these.
    write_corpus(tmp_path / "more", documents=4, seed=7)
    writer = open_groundwork(settings_for(tmp_path / "writer", database_url=fresh_postgres_url))
    try:
        writer.ingest([tmp_path / "more"], progress=False)
    finally:
        writer.close()

    settings = settings_for(tmp_path / "b", database_url=fresh_postgres_url)
    seeded = seed_indexes(settings, tmp_path / "a")
    assert seeded["version"] == 1 and seeded["vectors_position"] == seeded_position and not seeded["skipped"]
    replica = open_groundwork(settings)
    try:
        indexes = replica.indexes
        assert not any("building" in event for event in indexes.events), indexes.events  # caught up, not rebuilt
        assert indexes.position > seeded_position
        report = replica.verify()
        assert report["consistent"] and report["repaired"] == [], report
        answers = keyword_answers(replica)
    finally:
        replica.close()

    reference = open_groundwork(settings_for(tmp_path / "a", database_url=fresh_postgres_url))
    try:
        assert keyword_answers(reference) == answers and len(answers) == len(QUERIES)
    finally:
        reference.close()


def test_seeding_refuses_a_data_directory_that_has_indexes_or_a_source_without_any(fresh_postgres_url, tmp_path):
    from index.indexset import seed_indexes
    from index.snapshot import SnapshotRefused

    with pytest.raises(SnapshotRefused, match="no index"):
        seed_indexes(settings_for(tmp_path / "b"), tmp_path / "empty")
    gw = open_groundwork(settings_for(tmp_path / "a", database_url=fresh_postgres_url))
    try:
        gw.ingest([write_corpus(tmp_path / "corpus", documents=2)], progress=False)
        gw.refresh_indexes()
    finally:
        gw.close()
    settings = settings_for(tmp_path / "b", database_url=fresh_postgres_url)
    seed_indexes(settings, tmp_path / "a")
    with pytest.raises(SnapshotRefused, match="already has indexes"):
        seed_indexes(settings, tmp_path / "a")
    with pytest.raises(SnapshotRefused, match="itself"):
        seed_indexes(settings, tmp_path / "b")


def test_the_cli_refuses_to_seed_from_a_folder_without_indexes(tmp_path, capsys):
    from service.cli import main

    assert main(["--data-dir", str(tmp_path / "new"), "indexes", "seed", "--from", str(tmp_path / "nothing")]) == 2
    assert "no index to seed from" in capsys.readouterr().err
