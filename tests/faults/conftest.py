"""Fixtures of the fault suite: one clean data folder built per session, copied per fault."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.faults.harness import keyword_answers, open_groundwork, settings_for, snapshot, write_corpus


@pytest.fixture(scope="session")
def clean(tmp_path_factory) -> dict:
    """A corpus ingested cleanly, indexes saved and closed, with what a correct copy shows:
    its snapshot and its keyword answers."""
    root = tmp_path_factory.mktemp("clean")
    corpus = write_corpus(root / "corpus")
    data = root / "data"
    gw = open_groundwork(settings_for(data))
    try:
        gw.ingest([corpus], progress=False)
        gw.refresh_indexes()
        answers = keyword_answers(gw)
        assert gw.verify()["consistent"]
    finally:
        gw.close()
    return {"corpus": corpus, "data": data, "snapshot": snapshot(data / "groundwork.db"), "answers": answers}


@pytest.fixture
def damaged_copy(clean, tmp_path) -> Path:
    """A private copy of the clean data folder, to damage."""
    target = tmp_path / "data"
    shutil.copytree(clean["data"], target)
    return target


@pytest.fixture
def restartable_postgres(tmp_path):
    """A private PostgreSQL cluster on a free loopback port: (url, restart). Private, because
    restarting the session's shared cluster would pull it from under other tests."""
    import os
    import subprocess
    import tempfile
    import time

    from tests.conftest import _free_port, _pg_bin

    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not installed")
    base = Path(tempfile.mkdtemp(prefix="gw-pg-faults-"))
    data, port = base / "data", _free_port()
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(base, "postgres", "postgres")
        os.chmod(base, 0o700)
        prefix = ["runuser", "-u", "postgres", "--"]
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    pg_ctl = prefix + [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(base / "pg.log"), "-w", "-t", "60",
                       "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"]
    subprocess.run(prefix + [str(bin_dir / "initdb"), "-D", str(data), "-U", "gw", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True, env=env)
    subprocess.run(pg_ctl + ["start"], check=True, capture_output=True, env=env)
    try:
        import psycopg

        deadline = time.time() + 30
        while True:
            try:
                with psycopg.connect(f"host=127.0.0.1 port={port} user=gw dbname=postgres", autocommit=True) as conn:
                    conn.execute("CREATE DATABASE groundwork")
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.3)

        def restart() -> None:
            subprocess.run(pg_ctl + ["-m", "fast", "restart"], check=True, capture_output=True, env=env)

        yield f"postgresql+psycopg://gw@127.0.0.1:{port}/groundwork", restart
    finally:
        subprocess.run(prefix + [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True, env=env)
        shutil.rmtree(base, ignore_errors=True)
