"""Snapshot and restore: consistent while a writer ingests, the same answers after a restore,
damage in a snapshot found before anything is touched, and the refusals that protect data."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from index.settings import Settings
from index.snapshot import SnapshotCorrupt, SnapshotRefused, create_snapshot, read_snapshot, restore_snapshot
from service.cli import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, main
from service.engine import Groundwork
from service.query.types import Principal, Query
from service.snapshots import restore_and_verify, take_snapshot
from tests.service.conftest import InlineParser

QUERIES = ["backup window at night", "vacation days for new employees", "rotate the VPN certificate", "deploy on Tuesday"]
TOPICS = ["backup", "vacation", "VPN", "deploy", "expense", "laptop", "travel", "security"]


def _settings(root: Path, **overrides) -> Settings:
    return Settings(**({"data_dir": root, "reranker_enabled": False, "chunk_max_tokens": 60} | overrides))


def _open(settings: Settings, embedder) -> Groundwork:
    groundwork = Groundwork(settings, embedder=embedder)
    groundwork._borrow_parser = lambda: InlineParser(settings)
    return groundwork


def _write_doc(folder: Path, n: int) -> Path:
    topic = TOPICS[n % len(TOPICS)]
    path = folder / f"doc{n:04d}.txt"
    path.write_text(f"Note {n} on {topic}.\n\nThe {topic} policy number {n} says the backup window runs nightly, "
                    f"new employees receive {n % 30} vacation days, and {topic} requests go to team {n % 7}.\n")
    return path


def _results(groundwork: Groundwork) -> list[list[tuple[int, float]]]:
    principal = Principal(id="test", all_access=True)
    out = []
    for text in QUERIES:
        outcome = groundwork.pipeline.search(Query(text, principal, k=5, rerank=False))
        out.append([(hit.chunk_id, round(hit.score, 5)) for hit in outcome.hits])
    return out


@pytest.fixture
def served(tmp_path, hash_embedder):
    """A data directory with a dozen documents and built indexes, its Groundwork still open."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for n in range(12):
        _write_doc(docs, n)
    # Every catch-up saves the vectors, so a commit can race the copy of either index.
    settings = _settings(tmp_path / "data", vector_save_interval_s=0)
    groundwork = _open(settings, hash_embedder)
    groundwork.ingest([docs], progress=False)
    groundwork.refresh_indexes()
    yield groundwork, docs
    groundwork.close()


def test_restore_gives_the_same_search_results(served, tmp_path, hash_embedder):
    groundwork, _docs = served
    before = _results(groundwork)
    summary = take_snapshot(groundwork.settings, tmp_path / "snap")
    assert summary["indexes"]["skipped"] is None
    assert summary["indexes"]["vectors_position"] == summary["indexes"]["keyword_position"] == summary["database"]["position"]

    restored = _settings(tmp_path / "restored")
    outcome = restore_and_verify(restored, tmp_path / "snap", embedder=hash_embedder)
    assert outcome["verify"]["consistent"] and outcome["verify"]["repaired"] == []
    again = _open(restored, hash_embedder)
    try:
        assert _results(again) == before
        assert again.stats()["documents"] == groundwork.stats()["documents"]
    finally:
        again.close()


def test_snapshots_taken_while_a_writer_ingests_restore_consistent(served, tmp_path, hash_embedder):
    """The indexes are copied before the database, so a restore only ever catches up: no index
    is ahead of its database (which would be rebuilt and reported as a repair)."""
    groundwork, docs = served
    stop = threading.Event()
    written: list[int] = []
    errors: list[BaseException] = []

    def writer() -> None:
        n = 100
        try:
            while not stop.is_set():
                groundwork.ingest([_write_doc(docs, n)], progress=False)  # commits, then the indexes catch up
                written.append(n)
                if n % 5 == 0:  # deletes too
                    (docs / f"doc{n - 3:04d}.txt").unlink(missing_ok=True)
                    groundwork.ingest([docs], sync=True, progress=False)
                n += 1
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        snapshots = []
        for i in range(4):
            while len(written) < 3 * (i + 1):
                time.sleep(0.01)
            snapshots.append((tmp_path / f"snap{i}", create_snapshot(groundwork.settings, tmp_path / f"snap{i}")))
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not errors, errors
    positions = [manifest.database["position"] for _, manifest in snapshots]
    assert positions == sorted(positions) and positions[0] < positions[-1]
    for i, (folder, manifest) in enumerate(snapshots):
        indexes, database = manifest.indexes, manifest.database
        assert indexes["skipped"] is None, indexes
        assert indexes["vectors_position"] <= database["position"] and indexes["keyword_position"] <= database["position"]
        target = _settings(tmp_path / f"restored{i}")
        report = restore_and_verify(target, folder, embedder=hash_embedder)["verify"]
        assert report["consistent"], report["problems"]
        assert report["repaired"] == []  # nothing was ahead of the database, nothing rebuilt
        assert report["position"] == report["database_position"] == database["position"]


def test_a_commit_between_manifest_and_files_is_retried(served, tmp_path, monkeypatch, hash_embedder):
    """A race forced at the worst moment: right after the copy has read an index's manifest, a
    commit replaces the files it names. The copy notices (a missing generation, a changed
    meta.json) and starts over, so it ends with the newer state, consistent."""
    from index import snapshot

    groundwork, docs = served
    real_read = snapshot._read_bytes
    raced: list[str] = []
    start = groundwork.store.max_seq()

    def read_then_commit(path, what):
        data = real_read(path, what)
        if what not in raced:
            raced.append(what)
            groundwork.ingest([_write_doc(docs, 500 + len(raced))], progress=False)
        return data

    monkeypatch.setattr(snapshot, "_read_bytes", read_then_commit)
    manifest = create_snapshot(groundwork.settings, tmp_path / "snap")
    assert raced == ["vector manifest", "keyword manifest"]
    assert manifest.indexes["skipped"] is None
    # Both copies were taken again after their race, so each holds the commit that interrupted it.
    assert start < manifest.indexes["vectors_position"] <= manifest.indexes["keyword_position"] == manifest.database["position"]
    read_snapshot(tmp_path / "snap")  # every file as the manifest says
    report = restore_and_verify(_settings(tmp_path / "restored"), tmp_path / "snap", embedder=hash_embedder)["verify"]
    assert report["consistent"] and report["repaired"] == []


@pytest.mark.parametrize("damage", ["flip-database", "flip-keyword", "truncate-vectors", "delete-file", "edit-manifest"])
def test_a_damaged_snapshot_is_refused_before_anything_is_restored(served, tmp_path, damage):
    groundwork, _docs = served
    folder = tmp_path / "snap"
    create_snapshot(groundwork.settings, folder)
    if damage == "flip-database":
        _flip(folder / "database" / "groundwork.db")
    elif damage == "flip-keyword":
        _flip(max((folder / "indexes" / "v1" / "keyword" / "tantivy").glob("*.idx"), key=lambda p: p.stat().st_size))
    elif damage == "truncate-vectors":
        path = next((folder / "indexes" / "v1" / "vectors").glob("*.faiss"))
        path.write_bytes(path.read_bytes()[:-100])
    elif damage == "delete-file":
        (folder / "indexes" / "v1" / "keyword" / "manifest.json").unlink()
    else:
        data = json.loads((folder / "snapshot.json").read_text())
        data["database"]["position"] += 1
        (folder / "snapshot.json").write_text(json.dumps(data))
    target = _settings(tmp_path / "restored")
    with pytest.raises(SnapshotCorrupt) as raised:
        restore_snapshot(target, folder)
    assert raised.value.problems
    assert not target.data_dir.exists()


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))


def test_refusals_protect_existing_data(served, tmp_path, hash_embedder):
    groundwork, _docs = served
    folder = tmp_path / "snap"
    create_snapshot(groundwork.settings, folder)
    with pytest.raises(SnapshotRefused):  # never into a folder that holds something
        create_snapshot(groundwork.settings, folder)
    # The data directory of a running process (it holds the index writer lock): refused even with force.
    with pytest.raises(SnapshotRefused, match="running"):
        restore_snapshot(groundwork.settings, folder, force=True)

    occupied = _settings(tmp_path / "occupied")
    occupied.data_dir.mkdir()
    (occupied.data_dir / "notes.txt").write_text("keep me")
    with pytest.raises(SnapshotRefused, match="not empty"):
        restore_snapshot(occupied, folder)
    # With force the database, indexes and uploads are replaced; nothing else is touched.
    (occupied.data_dir / "groundwork.db-wal").write_bytes(b"a stale log that must not be replayed")
    report = restore_and_verify(occupied, folder, force=True, embedder=hash_embedder)["verify"]
    assert report["consistent"] and (occupied.data_dir / "notes.txt").read_text() == "keep me"


def test_a_damaged_live_index_is_left_out_and_rebuilt_at_restore(served, tmp_path, hash_embedder):
    groundwork, _docs = served
    before = _results(groundwork)
    _flip(next((groundwork.settings.data_dir / "indexes" / "v1" / "vectors").glob("*.faiss")))
    manifest = create_snapshot(groundwork.settings, tmp_path / "snap")
    assert "damaged" in manifest.indexes["skipped"]["vectors"]
    assert manifest.indexes["keyword_position"] == manifest.database["position"]
    restored = _settings(tmp_path / "restored")
    assert restore_and_verify(restored, tmp_path / "snap", embedder=hash_embedder)["verify"]["consistent"]
    again = _open(restored, hash_embedder)
    try:
        assert _results(again) == before
    finally:
        again.close()


def test_uploaded_originals_travel_with_the_snapshot(served, tmp_path):
    groundwork, _docs = served
    upload = groundwork.settings.data_dir / "uploads" / ("ab" * 32) / "policy.txt"
    upload.parent.mkdir(parents=True)
    upload.write_text("uploaded bytes")
    (upload.parent.parent / ".incoming-123").write_text("half an upload")
    create_snapshot(groundwork.settings, tmp_path / "snap")
    target = _settings(tmp_path / "restored")
    restore_snapshot(target, tmp_path / "snap")
    assert (target.data_dir / "uploads" / ("ab" * 32) / "policy.txt").read_text() == "uploaded bytes"
    assert not (target.data_dir / "uploads" / ".incoming-123").exists()


def test_cli_create_restore_and_exit_codes(served, tmp_path, capsys, monkeypatch, hash_embedder):
    from functools import partial

    from service import snapshots

    groundwork, _docs = served
    data = str(groundwork.settings.data_dir)
    assert main(["--data-dir", data, "snapshot", "create", str(tmp_path / "snap"), "--json"]) == EXIT_OK
    summary = json.loads(capsys.readouterr().out)
    assert summary["database"]["kind"] == "sqlite" and summary["files"] > 3

    monkeypatch.setattr(snapshots, "restore_and_verify", partial(snapshots.restore_and_verify, embedder=hash_embedder))
    restored = str(tmp_path / "restored")
    assert main(["--data-dir", restored, "snapshot", "restore", str(tmp_path / "snap")]) == EXIT_OK
    assert "verify: consistent" in capsys.readouterr().out
    # Into the now non-empty directory: refused (usage), then allowed with --force.
    assert main(["--data-dir", restored, "snapshot", "restore", str(tmp_path / "snap")]) == EXIT_USAGE
    assert "not empty" in capsys.readouterr().err
    assert main(["--data-dir", restored, "snapshot", "restore", str(tmp_path / "snap"), "--force"]) == EXIT_OK
    capsys.readouterr()
    _flip(tmp_path / "snap" / "database" / "groundwork.db")
    assert main(["--data-dir", str(tmp_path / "other"), "snapshot", "restore", str(tmp_path / "snap")]) == EXIT_PROBLEM
    out = capsys.readouterr().out
    assert "NOT RESTORED" in out and "database/groundwork.db" in out


def test_http_snapshot_route(fresh):
    server = fresh()
    with server.client(server.keys["admin"]) as client:
        created = client.post("/v1/snapshots", json={"name": "nightly"})
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["database"]["position"] >= body["indexes"]["vectors_position"] > 0 and body["files"] > 3
        assert client.post("/v1/snapshots", json={"name": "nightly"}).status_code == 409
        assert client.post("/v1/snapshots", json={"name": "../escape"}).status_code == 400
        assert client.post("/v1/snapshots").status_code == 201  # named by the time
    with server.client(server.keys["writer"]) as client:
        assert client.post("/v1/snapshots", json={"name": "mine"}).status_code == 403
    folder = server.groundwork.settings.data_dir / "snapshots" / "nightly"
    assert read_snapshot(folder).database["position"] == body["database"]["position"]


@pytest.mark.integration
def test_postgres_snapshot_restores_into_an_empty_database(tmp_path, fresh_postgres_url, postgres_url, hash_embedder):
    import uuid

    import psycopg

    docs = tmp_path / "docs"
    docs.mkdir()
    for n in range(8):
        _write_doc(docs, n)
    settings = _settings(tmp_path / "data", database_url=fresh_postgres_url)
    groundwork = _open(settings, hash_embedder)
    try:
        groundwork.ingest([docs], progress=False)
        groundwork.refresh_indexes()
        before = _results(groundwork)
        summary = take_snapshot(settings, tmp_path / "snap")
    finally:
        groundwork.close()
    assert summary["database"]["kind"] == "postgresql" and summary["database"]["position"] == summary["indexes"]["vectors_position"]

    host_part = postgres_url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_part.split(":")
    name = "r_" + uuid.uuid4().hex[:12]
    with psycopg.connect(f"host={host} port={port} user=gw dbname=postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    target = _settings(tmp_path / "restored", database_url=postgres_url.rsplit("/", 1)[0] + "/" + name)
    report = restore_and_verify(target, tmp_path / "snap", embedder=hash_embedder)["verify"]
    assert report["consistent"] and report["repaired"] == []
    with pytest.raises(SnapshotRefused, match="not empty"):  # the database now holds tables
        restore_snapshot(_settings(tmp_path / "third", database_url=target.database_url), tmp_path / "snap")
    again = _open(target, hash_embedder)
    try:
        assert _results(again) == before
    finally:
        again.close()
