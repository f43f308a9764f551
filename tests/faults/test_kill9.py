"""`kill -9` at random points of an ingest and of a reindex, then a re-run.

Fail closed means: a document is either committed whole or not at all, whatever the moment;
re-running the same job ends exactly where a clean run ends (same documents and chunk
counts, no duplicate or orphaned chunk), and `verify` is consistent, with no repair needed
(a kill between an index write and its manifest is replayed from the change log).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.faults.harness import REPO, keyword_answers, open_groundwork, settings_for, snapshot

pytestmark = pytest.mark.faults

SEEDS = (0, 1, 2)


def _start(action: str, data: Path, *extra: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "tests.faults.driver", action, str(data), *map(str, extra)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.strip() == "READY", line + proc.stderr.read()
    return proc


def _timed_run(action: str, data: Path, *extra: Path) -> float:
    """Seconds from READY to exit of an undisturbed run: the window the kills are drawn from."""
    proc = _start(action, data, *extra)
    started = time.monotonic()
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return time.monotonic() - started


def _kill_at(action: str, data: Path, delay: float, *extra: Path) -> None:
    proc = _start(action, data, *extra)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)


@pytest.fixture(scope="module")
def reference(clean, tmp_path_factory):
    """How long a clean ingest and a clean reindex of the corpus take in a driver process."""
    root = tmp_path_factory.mktemp("timed")
    ingest_s = _timed_run("ingest", root / "data", clean["corpus"])
    shutil.copytree(root / "data", root / "reindexed")
    return {"ingest_s": ingest_s, "reindex_s": _timed_run("reindex", root / "reindexed"), "data": root / "data"}


@pytest.mark.parametrize("seed", SEEDS)
def test_kill_9_during_an_ingest_then_rerun_equals_a_clean_run(seed, clean, reference, tmp_path):
    data = tmp_path / "data"
    delay = random.Random(seed).uniform(0, reference["ingest_s"])
    _kill_at("ingest", data, delay, clean["corpus"])
    gw = open_groundwork(settings_for(data))
    try:
        gw.ingest([clean["corpus"]], progress=False)
        gw.refresh_indexes()
        report = gw.verify()
        assert report["consistent"] and report["repaired"] == [], (delay, report)
        assert keyword_answers(gw) == clean["answers"]
    finally:
        gw.close()
    assert snapshot(data / "groundwork.db") == clean["snapshot"], f"killed after {delay:.2f}s"


@pytest.mark.parametrize("seed", SEEDS)
def test_kill_9_during_a_reindex_leaves_a_usable_version(seed, clean, reference, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(reference["data"], data)
    delay = random.Random(100 + seed).uniform(0, reference["reindex_s"])
    _kill_at("reindex", data, delay)
    gw = open_groundwork(settings_for(data))
    try:
        report = gw.verify()
        assert report["consistent"] and report["repaired"] == [], (delay, report)
        assert keyword_answers(gw) == clean["answers"]
        assert gw.reindex() >= 2  # and the next reindex succeeds over whatever was left
        assert gw.verify()["consistent"]
    finally:
        gw.close()
