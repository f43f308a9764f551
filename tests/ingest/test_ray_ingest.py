"""Ingestion on a real local Ray cluster ends where the single-process path ends.

One session-scoped cluster on loopback: a head node and one more worker node, each a `ray start
--block` process in its own process group, both stopped at teardown. The comparisons are on
what the store holds: the same documents, the same chunks, vectors equal within 1e-5.

Both paths embed with the fp32 torch backend. On a CPU with bf16, the default (OpenVINO) runs
the model in bf16, and there a text's vector moves by up to about 5e-4 with the other texts in
its batch; Ray batches differently from the single process (and differently again after a
worker is killed), so a comparison at 1e-5 would test the batching, not Ray. In fp32 batching
moves a vector by about 1e-7.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, SAMPLES, SHARED_DATA, _free_port
from tests.faults.harness import write_corpus

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_RAY = Path(sys.executable).with_name("ray")


def _start_node(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen([str(_RAY), "start", "--block", "--disable-usage-stats", "--node-ip-address=127.0.0.1",
                                 "--num-cpus=1", "--object-store-memory=100000000", *args],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop_node(proc: subprocess.Popen) -> None:
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)  # the node's own process group: its raylet, agents, workers
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _alive_nodes(address: str) -> tuple[int, str]:
    """How many nodes the cluster reports alive, and what the probe said when it could not tell."""
    probe = ("import ray; ray.init(address=%r, log_to_driver=False); print(sum(n['Alive'] for n in ray.nodes()))" % address)
    try:
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return 0, "the probe timed out"
    if done.returncode == 0 and done.stdout.strip():
        return int(done.stdout.strip().splitlines()[-1]), ""
    return 0, done.stderr[-2000:]


@pytest.fixture(scope="session")
def ray_cluster():
    """The address of a two-node Ray cluster on loopback."""
    temp = Path(tempfile.mkdtemp(prefix="gwray-"))  # short: Ray's socket paths live under it
    port = _free_port()
    while 10000 <= port < 20000:  # Ray's default worker port range
        port = _free_port()
    address = f"127.0.0.1:{port}"
    # A loopback cluster of the test's own: no token authentication, which a token left in
    # ~/.ray by another cluster would otherwise switch on (and then refuse this one's clients).
    previous_auth = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    nodes = [_start_node(["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}"], temp / "head.log")]
    try:
        deadline = time.monotonic() + 400  # start-up is seconds, but minutes on a loaded machine
        for wanted, log in ((1, temp / "head.log"), (2, temp / "worker.log")):
            if wanted == 2:
                nodes.append(_start_node([f"--address={address}"], log))
            while (alive := _alive_nodes(address))[0] < wanted:
                assert time.monotonic() < deadline, f"{alive[1]}\n{log.read_text(errors='replace')[-2000:]}"
                time.sleep(1)
        yield address
    finally:
        for node in reversed(nodes):
            _stop_node(node)
        if previous_auth is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = previous_auth


@pytest.fixture(scope="module")
def fp32_embedder():
    """The default model on the fp32 torch backend, as the Ray workers load it here."""
    from ingest.embedder_st import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder.from_settings(_settings(Path(tempfile.gettempdir())))


def _settings(data_dir: Path, **overrides):
    from index.settings import Settings

    values = dict(data_dir=data_dir, parse_workers=1, parse_timeout_s=60, reranker_enabled=False, embedding_backend="torch")
    return Settings(**(values | overrides))


def _stored(database: Path) -> tuple[dict, dict]:
    """(documents by source, chunks by (source, ordinal)) as the store holds them."""
    with sqlite3.connect(database) as conn:
        docs = {row[0]: row[1:] for row in conn.execute(
            "SELECT source, sha256, status, failure_reason, chunk_count, title, context, text FROM document")}
        chunks = {(row[0], row[1]): (row[2:-1], np.frombuffer(row[-1], dtype=np.float32)) for row in conn.execute(
            'SELECT d.source, c.ordinal, c.text, c.context, c.token_count, c.start, c."end", c.heading_path, c.kind, c.embedding '
            "FROM chunk c JOIN document d ON d.id = c.document_id")}
    return docs, chunks


def _assert_same_store(expected_db: Path, actual_db: Path) -> None:
    expected_docs, expected_chunks = _stored(expected_db)
    actual_docs, actual_chunks = _stored(actual_db)
    assert actual_docs == expected_docs
    assert actual_chunks.keys() == expected_chunks.keys()
    for key, (fields, vector) in expected_chunks.items():
        assert actual_chunks[key][0] == fields, key
        np.testing.assert_allclose(actual_chunks[key][1], vector, atol=1e-5, err_msg=str(key))


def _ingest_single(data_dir: Path, paths: list[Path], embedder):
    from service.engine import Groundwork

    gw = Groundwork(_settings(data_dir), embedder=embedder)
    try:
        return gw.ingest(paths, progress=False)
    finally:
        gw.close()


def _ingest_ray(data_dir: Path, paths: list[Path], address: str, **settings):
    from service.engine import Groundwork

    gw = Groundwork(_settings(data_dir, **settings))
    try:
        return gw.ingest(paths, progress=False, ray_address=address)
    finally:
        gw.close()


def _statuses(summary) -> list[tuple[str, str, int]]:
    return sorted((f.path, f.status, f.chunks) for f in summary.files)


def test_samples_ingest_through_ray_like_the_single_process_path(ray_cluster, fp32_embedder, tmp_path):
    single = _ingest_single(tmp_path / "single", [SAMPLES], fp32_embedder)
    distributed = _ingest_ray(tmp_path / "ray", [SAMPLES], ray_cluster)
    assert _statuses(distributed) == _statuses(single)
    assert distributed.count("added") == single.count("added") >= 7
    _assert_same_store(tmp_path / "single" / "groundwork.db", tmp_path / "ray" / "groundwork.db")
    # Idempotent as ever: a second run through Ray changes nothing.
    again = _ingest_ray(tmp_path / "ray", [SAMPLES], ray_cluster)
    assert {f.status for f in again.files} == {"unchanged"}


def test_scifact_abstracts_ingest_through_ray_like_the_single_process_path(ray_cluster, fp32_embedder, tmp_path):
    corpus = SHARED_DATA / "scifact-train" / "corpus.jsonl"
    if not corpus.is_file():
        pytest.skip("shared SciFact data not present")
    folder = tmp_path / "scifact"
    folder.mkdir()
    with corpus.open(encoding="utf-8") as lines:
        for _, line in zip(range(400), lines):
            record = json.loads(line)
            (folder / f"{record['_id']}.txt").write_text(f"{record['title']}\n\n{record['text']}\n", encoding="utf-8")
    single = _ingest_single(tmp_path / "single", [folder], fp32_embedder)
    distributed = _ingest_ray(tmp_path / "ray", [folder], ray_cluster)
    assert _statuses(distributed) == _statuses(single)
    assert single.count("added") == 400
    _assert_same_store(tmp_path / "single" / "groundwork.db", tmp_path / "ray" / "groundwork.db")


def _committed(database: Path) -> int:
    try:
        with sqlite3.connect(database, timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM document WHERE status='indexed'").fetchone()[0]
    except sqlite3.Error:
        return 0


def _cli(data_dir: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           # Small flushes: documents commit a few at a time, so a kill lands between commits.
           "GROUNDWORK_EMBEDDING_BATCH_SIZE": "4", "GROUNDWORK_EMBEDDING_BACKEND": "torch", "GROUNDWORK_CHUNK_MAX_TOKENS": "60", "GROUNDWORK_PARSE_WORKERS": "1"}
    return subprocess.Popen([sys.executable, "-m", "service.cli", "--data-dir", str(data_dir), *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _snapshot(database: Path) -> dict:
    from tests.faults.harness import snapshot

    return snapshot(database)


def test_kill_9_of_the_driver_mid_job_then_rerun_equals_a_clean_run(ray_cluster, fp32_embedder, tmp_path):
    from service.engine import Groundwork

    corpus = write_corpus(tmp_path / "corpus", documents=40)
    clean = Groundwork(_settings(tmp_path / "clean", chunk_max_tokens=60), embedder=fp32_embedder)
    try:
        assert clean.ingest([corpus], progress=False).count("added") == 40
    finally:
        clean.close()

    data = tmp_path / "killed"
    proc = _cli(data, "ingest", str(corpus), "--ray", ray_cluster, "--json")
    deadline = time.monotonic() + 600
    while _committed(data / "groundwork.db") == 0 and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    committed_at_kill = _committed(data / "groundwork.db")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert 0 < committed_at_kill < 40, "the kill should land mid-job"

    rerun = _cli(data, "ingest", str(corpus), "--ray", ray_cluster, "--json")
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err[-3000:]
    summary = json.loads(out)
    assert summary["unchanged"] >= committed_at_kill and summary["added"] + summary["unchanged"] == 40
    assert _snapshot(data / "groundwork.db") == _snapshot(tmp_path / "clean" / "groundwork.db")
    verify = _cli(data, "verify", "--json")
    out, err = verify.communicate(timeout=300)
    assert verify.returncode == 0, err[-3000:]
    assert json.loads(out)["consistent"] is True


def test_kill_9_of_a_parse_worker_mid_job_is_retried(ray_cluster, fp32_embedder, tmp_path):
    from service.engine import Groundwork

    corpus = write_corpus(tmp_path / "corpus", documents=24)
    _ingest_single(tmp_path / "single", [corpus], fp32_embedder)
    gw = Groundwork(_settings(tmp_path / "ray", embedding_batch_size=4))
    try:
        cluster = gw._ray(ray_cluster)
        victim = cluster.worker_pids()["parse"][0]
        outcome: dict = {}
        job = threading.Thread(target=lambda: outcome.update(summary=gw.ingest([corpus], progress=False, ray_address=ray_cluster)))
        job.start()
        deadline = time.monotonic() + 300
        while _committed(tmp_path / "ray" / "groundwork.db") == 0 and job.is_alive():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(victim, signal.SIGKILL)
        job.join(timeout=600)
        assert outcome["summary"].count("added") == 24
    finally:
        gw.close()
    _assert_same_store(tmp_path / "single" / "groundwork.db", tmp_path / "ray" / "groundwork.db")

