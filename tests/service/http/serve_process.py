"""`groundwork` as a user runs it: CLI commands and a `serve` process on a loopback port,
started, waited on until healthy and stopped, for the tests that need a real server process."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import REPO, _free_port


def cli(*args: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service.cli", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def serve(env: dict, log_path: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """A `groundwork serve` process writing to ``log_path``, and its base URL."""
    port = _free_port()
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--host", "127.0.0.1", "--port", str(port), *extra],
                                cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}"


def wait_healthy(proc: subprocess.Popen, base: str, log_path: Path, what: str = "server") -> None:
    deadline = time.monotonic() + 300
    while True:
        assert proc.poll() is None, log_path.read_text()[-3000:]
        try:
            if httpx.get(f"{base}/v1/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{what} did not become healthy"
        time.sleep(0.5)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM (a clean shutdown), SIGKILL after 30 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
