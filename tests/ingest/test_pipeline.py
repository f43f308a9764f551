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
