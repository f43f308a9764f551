"""The ingestion job end to end on real files, real parsing workers, real SQLite and indexes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.engine import Groundwork

REPO = Path(__file__).resolve().parents[2]


def _corpus(root: Path, n: int = 4) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / f"note{i}.md").write_text(
            f"# Topic {i}\n\nThis note explains procedure number {i} in detail.\n\n## Steps\n\n- first step {i}\n- second step {i}\n",
            encoding="utf-8",
        )
    (root / "empty.txt").write_text("   \n", encoding="utf-8")
    return root


@pytest.fixture
def gw(settings, hash_embedder):
    app = Groundwork(settings, embedder=hash_embedder)
    yield app
    app.close()


def test_ingest_is_idempotent_and_reports_each_file(gw, tmp_path):
    folder = _corpus(tmp_path / "docs")
    first = gw.ingest([folder], progress=False).to_json()
    assert (first["added"], first["failed"], first["unchanged"]) == (4, 1, 0)
    failed = [f for f in first["files"] if f["status"] == "failed"]
    assert failed[0]["reason"] == "empty"
    assert set(first) >= {"job_id", "added", "updated", "unchanged", "removed", "failed", "files"}
    chunks = gw.store.stats()["chunks"]

    second = gw.ingest([folder], progress=False).to_json()
    assert (second["added"], second["unchanged"], second["failed"]) == (0, 4, 1)
    assert gw.store.stats()["chunks"] == chunks  # no duplicates

    (folder / "note1.md").write_text("# Topic one\n\nCompletely rewritten content.\n", encoding="utf-8")
    (folder / "note2.md").unlink()
    third = gw.ingest([folder], sync=True, progress=False).to_json()
    assert (third["updated"], third["removed"], third["unchanged"]) == (1, 1, 2)
    gw.refresh_indexes()
    report = gw.verify()
    assert report["consistent"], report
    assert report["vectors"] == gw.store.stats()["chunks"]


def test_the_summary_says_where_the_seconds_went(gw, tmp_path):
    from ingest.pipeline import STAGES

    summary = gw.ingest([_corpus(tmp_path / "docs")], progress=False, index_now=True)
    out, stages = summary.to_json(), summary.stages.seconds
    assert list(out["stages"]) == list(STAGES)
    assert all(seconds >= 0 for seconds in stages.values())
    assert stages["embed"] > 0 and stages["store"] > 0 and stages["index"] > 0, stages
    # Only the embedder runs beside the job's own thread: the rest fits in its seconds.
    assert sum(stages[s] for s in ("list", "parse", "chunk", "embed_wait", "store")) <= out["seconds"] + 0.05


def test_documents_are_stored_in_order_while_the_next_batch_embeds(settings, hash_embedder, tmp_path):
    """Batches overlap (embedding on its own thread), yet every document is stored once, whole,
    and an embedder failure fails the job with only fully embedded documents committed."""
    import threading

    from ingest.pipeline import IngestRunner
    from ingest.tokens import RegexTokenCounter

    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(40):
        (folder / f"doc{i:02}.txt").write_text(f"Document number {i} talks about topic {i} at length. " * 30, encoding="utf-8")
    threads: set[str] = set()

    class Recording:
        def __init__(self, inner, fail_on_call: int | None = None):
            self.inner, self.fail_on_call, self.calls = inner, fail_on_call, 0
            self.fingerprint, self.max_seq_length, self.dimension = inner.fingerprint, inner.max_seq_length, inner.dimension
            self.model_name = getattr(inner, "model_name", "hash")

        def embed_documents(self, texts):
            self.calls += 1
            threads.add(threading.current_thread().name)
            if self.calls == self.fail_on_call:
                raise RuntimeError("embedder broke")
            return self.inner.embed_documents(texts)

        def embed_queries(self, texts):
            return self.inner.embed_queries(texts)

    # Small chunks: a batch every 64 chunks, several batches over 40 files.
    settings = settings.model_copy(update={"chunk_max_tokens": 40, "chunk_min_tokens": 0, "chunk_overlap_tokens": 8,
                                           "embedding_batch_size": 16})
    app = Groundwork(settings, embedder=hash_embedder)
    try:
        embedder = Recording(hash_embedder)
        runner = IngestRunner(settings, app.store, embedder, RegexTokenCounter(), progress=False, parser_factory=app._borrow_parser)
        summary = runner.run([folder])
        assert embedder.calls > 2 and threads and threading.main_thread().name not in threads, (embedder.calls, [f.chunks for f in summary.files])
        assert summary.count("added") == 40 and len(summary.files) == 40
        assert app.store.stats()["chunks"] == sum(f.chunks for f in summary.files)

        for path in folder.iterdir():
            path.write_text(path.read_text(encoding="utf-8") + " Changed.", encoding="utf-8")
        broken = Recording(hash_embedder, fail_on_call=2)
        runner = IngestRunner(settings, app.store, broken, RegexTokenCounter(), progress=False, parser_factory=app._borrow_parser)
        with pytest.raises(RuntimeError, match="embedder broke"):
            runner.run([folder])
        updated = [d for d in (app.store.find_document("default", str(p.resolve())) for p in folder.iterdir())
                   if d.text.endswith("Changed.")]
        assert 0 < len(updated) < 40  # the first batch was committed, the broken one was not
        assert all(d.chunk_count > 0 for d in updated)
        summary = IngestRunner(settings, app.store, embedder, RegexTokenCounter(), progress=False,
                               parser_factory=app._borrow_parser).run([folder])
        assert summary.count("updated") == 40 - len(updated) and summary.count("unchanged") == len(updated)
    finally:
        app.close()


def test_groups_change_on_reingest_without_reembedding(gw, tmp_path):
    folder = _corpus(tmp_path / "docs", n=1)
    gw.ingest([folder], progress=False)
    fingerprint_rows = gw.store.changes_since(0)
    out = gw.ingest([folder], groups=["hr"], progress=False).to_json()
    assert out["unchanged"] == 1
    doc = gw.store.find_document("default", str((folder / "note0.md").resolve()))
    assert doc.groups == ["hr"]
    new_rows = gw.store.changes_since(fingerprint_rows[-1][0])
    assert all(op == "document" for _, op, _, _ in new_rows)  # no chunk re-written


def _cli(data_dir: Path, *args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "GROUNDWORK_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", "GROUNDWORK_PARSE_WORKERS": "1"}
    return subprocess.Popen([sys.executable, "-m", "service.cli", *args], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _snapshot(data_dir: Path) -> dict:
    with sqlite3.connect(data_dir / "groundwork.db") as conn:
        docs = dict(conn.execute("SELECT source, chunk_count FROM document WHERE status='indexed'").fetchall())
        dupes = conn.execute("SELECT COUNT(*) FROM (SELECT document_id, ordinal FROM chunk GROUP BY 1, 2 HAVING COUNT(*) > 1)").fetchone()[0]
        orphans = conn.execute("SELECT COUNT(*) FROM chunk WHERE document_id NOT IN (SELECT id FROM document)").fetchone()[0]
        chunks = conn.execute("SELECT COUNT(*) FROM chunk").fetchone()[0]
    return {"docs": docs, "dupes": dupes, "orphans": orphans, "chunks": chunks}


@pytest.mark.integration
@pytest.mark.slow
def test_kill_9_mid_ingest_then_rerun_equals_clean_run(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    for i in range(60):
        body = "\n\n".join(f"Paragraph {j} of file {i}: the quarterly process {i * j} requires review." for j in range(25))
        (folder / f"f{i:03}.md").write_text(f"# File {i}\n\n{body}\n", encoding="utf-8")

    crashed = tmp_path / "crashed"
    proc = _cli(crashed, "ingest", str(folder), "--json")
    db = crashed / "groundwork.db"
    deadline = time.time() + 240
    killed = False
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
        if not db.exists():
            continue
        try:
            with sqlite3.connect(db, timeout=1) as conn:
                done = conn.execute("SELECT COUNT(*) FROM document").fetchone()[0]
        except sqlite3.Error:
            continue
        if done >= 3:
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
            break
    proc.wait(timeout=30)
    assert killed, "the ingest finished before it could be killed; make the corpus larger"
    partial = _snapshot(crashed)
    assert 0 < len(partial["docs"]) < 60

    rerun = _cli(crashed, "ingest", str(folder), "--json")
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    summary = json.loads(out)
    assert summary["failed"] == 0 and summary["unchanged"] >= len(partial["docs"])

    clean = tmp_path / "clean"
    ref = _cli(clean, "ingest", str(folder), "--json")
    ref.communicate(timeout=600)
    assert ref.returncode == 0

    got, expected = _snapshot(crashed), _snapshot(clean)
    assert got["docs"] == expected["docs"]
    assert got["chunks"] == expected["chunks"]
    assert got["dupes"] == 0 and got["orphans"] == 0
    verify = _cli(crashed, "verify", "--json")
    vout, verr = verify.communicate(timeout=300)
    assert verify.returncode == 0, vout + verr
    assert json.loads(vout)["consistent"]


# --- one bad file never stops a job -----------------------------------------------------------------

@pytest.fixture
def gw_inline(settings, hash_embedder):
    """Parsing in this process through the same checks as the pool's workers (the pool's own
    checks are tested with it): these tests are about the job, not process isolation."""
    from tests.service.conftest import InlineParser

    app = Groundwork(settings, embedder=hash_embedder)
    app._borrow_parser = lambda: InlineParser(settings)
    yield app
    app.close()


def _bytes_path(folder: Path, raw_name: bytes) -> Path:
    return Path(os.fsdecode(os.fsencode(folder) + b"/" + raw_name))


def test_undecodable_file_names_are_stored_escaped_and_reruns_are_idempotent(gw_inline, tmp_path):
    """A name with invalid UTF-8 bytes used to stop the job at its first database write, and
    every re-run the same way; now it is a document like any other, under an escaped name."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.md").write_text("# Good\n\nA file with an ordinary name about otters.\n", encoding="utf-8")
    _bytes_path(folder, b"bad\xff\xfe.md").write_text("# Bad\n\nA file whose name is not text, about badgers.\n")
    _bytes_path(folder, b"d\xe9ir").mkdir()
    _bytes_path(folder, b"d\xe9ir/inner.txt").write_text("Inside a folder whose name is not text: herons.\n")

    first = gw_inline.ingest([folder], progress=False).to_json()
    assert (first["added"], first["failed"]) == (3, 0), first
    sources = {f["path"] for f in first["files"]}
    resolved = str(folder.resolve())
    assert sources == {f"{resolved}/good.md", f"{resolved}/bad\\xff\\xfe.md", f"{resolved}/d\\xe9ir/inner.txt"}
    position = gw_inline.store.max_seq()

    again = gw_inline.ingest([folder], progress=False).to_json()
    assert (again["unchanged"], again["added"], again["failed"]) == (3, 0, 0)
    assert gw_inline.store.max_seq() == position  # nothing rewritten
    assert gw_inline.ingest([_bytes_path(folder, b"bad\xff\xfe.md")], progress=False).to_json()["unchanged"] == 1

    _bytes_path(folder, b"d\xe9ir/inner.txt").unlink()
    synced = gw_inline.ingest([folder], sync=True, progress=False).to_json()
    assert (synced["removed"], synced["unchanged"]) == (1, 2)
    assert [f["path"] for f in synced["files"] if f["status"] == "removed"] == [f"{resolved}/d\\xe9ir/inner.txt"]
    gw_inline.refresh_indexes()
    assert gw_inline.verify()["consistent"]


def test_a_folder_named_with_undecodable_bytes_syncs(gw_inline, tmp_path):
    folder = _bytes_path(tmp_path, b"r\xf6\xf6t")
    folder.mkdir()
    (folder / "a.txt").write_text("Alpha document about lighthouses.\n")
    (folder / "b.txt").write_text("Beta document about harbours.\n")
    assert gw_inline.ingest([folder], progress=False).to_json()["added"] == 2
    (folder / "b.txt").unlink()
    assert gw_inline.ingest([folder], sync=True, progress=False).to_json()["removed"] == 1


def test_symlinks_inside_a_folder_fail_alone_unless_followed(gw_inline, tmp_path):
    folder, outside = tmp_path / "docs", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("The vault combination is elsewhere.\n")
    (folder / "own.txt").write_text("An ordinary document about pelicans.\n")
    (folder / "link.txt").symlink_to(outside / "secret.txt")
    (folder / "linked-folder").symlink_to(outside, target_is_directory=True)

    first = gw_inline.ingest([folder], progress=False).to_json()
    refused = {Path(f["path"]).name: f for f in first["files"] if f["status"] == "failed"}
    assert set(refused) == {"link.txt", "linked-folder"} and first["added"] == 1
    assert all(f["reason"] == "symlink" and "--follow-symlinks" in f["detail"] for f in refused.values())
    position = gw_inline.store.max_seq()
    assert gw_inline.ingest([folder], progress=False).to_json()["failed"] == 2
    assert gw_inline.store.max_seq() == position  # an unchanged link is not recorded again
    gw_inline.refresh_indexes()
    assert not any("vault" in hit.text for hit in _keyword_hits(gw_inline, "vault combination"))

    followed = gw_inline.ingest([folder], progress=False, follow_symlinks=True).to_json()
    assert [Path(f["path"]).name for f in followed["files"] if f["status"] == "added"] == ["secret.txt"]  # once, by its real path


def test_a_file_swapped_for_a_symlink_during_the_job_is_never_read(settings, hash_embedder, tmp_path):
    """Hashing (before parsing) and parsing both open through the checks; swapping the file
    in between, as the probe did during a server-side job, gets it refused, not indexed."""
    from ingest.pipeline import IngestRunner
    from ingest.safe_open import OpenPolicy
    from ingest.tokens import RegexTokenCounter
    from tests.service.conftest import InlineParser

    root = tmp_path / "share"
    root.mkdir()
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    victim = root / "report.txt"
    victim.write_text("A quarterly report about tides.\n")
    (root / "other.txt").write_text("Another report about currents.\n")

    class SwapThenParse(InlineParser):
        def __enter__(self):  # after every file was listed and hashed, before any is parsed
            victim.unlink()
            victim.symlink_to(secret)
            return self

    gw = Groundwork(settings, embedder=hash_embedder)
    try:
        runner = IngestRunner(settings, gw.store, hash_embedder, RegexTokenCounter(), progress=False,
                              parser_factory=lambda: SwapThenParse(settings))
        for policy in (OpenPolicy(), OpenPolicy.confined([root])):
            out = runner.run([root], policy=policy).to_json()
            swapped = next(f for f in out["files"] if f["path"].endswith("report.txt"))
            assert (swapped["status"], swapped["reason"]) == ("failed", "symlink"), swapped
            assert not any("root:x" in (doc.text or "") for doc in gw.store.list_documents())
            victim.unlink()
            victim.write_text("A quarterly report about tides.\n")
    finally:
        gw.close()


def test_ingest_refuses_to_write_into_a_damaged_database(settings, hash_embedder, tmp_path):
    from index.errors import StorageCorrupt

    folder = _corpus(tmp_path / "docs", n=30)
    from tests.service.conftest import InlineParser

    gw = Groundwork(settings, embedder=hash_embedder)
    gw._borrow_parser = lambda: InlineParser(settings)
    gw.ingest([folder], progress=False)
    gw.close()  # checkpoints the WAL into the database file
    database = settings.data_dir / "groundwork.db"
    size = database.stat().st_size
    with open(database, "r+b") as handle:  # 4 KB of garbage in the middle, as the probe did
        handle.seek(size // 2 // 4096 * 4096)
        handle.write(os.urandom(4096))
    (folder / "late.md").write_text("# Late\n\nWritten after the damage.\n", encoding="utf-8")
    try:
        damaged = Groundwork(settings, embedder=hash_embedder)
    except StorageCorrupt as exc:  # the damage hit what opening reads
        assert "integrity check" in str(exc)
        return
    try:
        with pytest.raises(StorageCorrupt, match="refusing to write"):
            damaged.ingest([folder], progress=False)
        report = damaged.verify()
        assert not report["consistent"] and not report["database_integrity"]["ok"]
        assert "integrity check" in report["problems"][0]
    finally:
        damaged.close()


def _keyword_hits(gw, query):
    from service.query.types import Principal, Query

    return gw.pipeline.search(Query(query, Principal(id="t", all_access=True), k=5, mode="keyword")).hits
