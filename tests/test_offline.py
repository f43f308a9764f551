"""The whole main job runs with the network unavailable: ingest the samples (parser worker
processes included) and answer, with every non-loopback connection refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

BLOCKER = '''
import socket

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _allowed(address):
    host = address[0] if isinstance(address, tuple) else address
    return isinstance(host, str) and (host.startswith("127.") or host in ("::1", "localhost") or host.startswith("/"))


def _connect(self, address):
    if self.family == socket.AF_UNIX or _allowed(address):
        return _real_connect(self, address)
    raise OSError(101, f"network disabled for this test: {address!r}")


def _connect_ex(self, address):
    if self.family == socket.AF_UNIX or _allowed(address):
        return _real_connect_ex(self, address)
    return 101


def _getaddrinfo(host, *args, **kwargs):
    if host in (None, "localhost") or str(host).startswith("127.") or host == "::1":
        return _real_getaddrinfo(host, *args, **kwargs)
    raise socket.gaierror(-3, f"name resolution disabled for this test: {host}")


_real_getaddrinfo = socket.getaddrinfo
socket.socket.connect = _connect
socket.socket.connect_ex = _connect_ex
socket.getaddrinfo = _getaddrinfo
'''


@pytest.mark.integration
@pytest.mark.slow
def test_ingest_and_answer_without_network(tmp_path):
    blocker_dir = tmp_path / "blocker"
    blocker_dir.mkdir()
    (blocker_dir / "sitecustomize.py").write_text(BLOCKER, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update({
        "PYTHONPATH": os.pathsep.join([str(blocker_dir), str(REPO)]),
        "GROUNDWORK_DATA_DIR": str(tmp_path / "data"),
        "GROUNDWORK_PARSE_WORKERS": "1",
    })
    # Prove the blocker is active in a child interpreter.
    probe = subprocess.run([sys.executable, "-c", "import socket; socket.create_connection(('192.0.2.1', 80), timeout=2)"],
                           env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "disabled for this test" in probe.stderr

    ingest = subprocess.run([sys.executable, "-m", "service.cli", "ingest", str(REPO / "data" / "samples"), "--json"],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert ingest.returncode == 0, ingest.stderr
    summary = json.loads(ingest.stdout)
    assert summary["failed"] == 0, summary
    assert summary["added"] >= 7

    ask = subprocess.run([sys.executable, "-m", "service.cli", "ask", "How many days of paid annual leave do employees get?", "--json"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert ask.returncode == 0, ask.stderr
    answer = json.loads(ask.stdout)
    assert answer["grounded"] and "25" in answer["answer"]
    assert any(c["source"].endswith("hr-policy.pdf") for c in answer["citations"])
