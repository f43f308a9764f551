"""The admin CLI: JSON shapes, exit codes, reindex and verify, on a small real corpus."""

from __future__ import annotations

import json

import pytest

from service.cli import EXIT_FAILED, EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, main


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# Travel\n\nBook trains for trips under 600 km.\n", encoding="utf-8")
    (folder / "b.txt").write_text("The backup window runs nightly from 01:00 to 03:00 UTC.\n", encoding="utf-8")
    (folder / "c.bin").write_bytes(b"\x00\x01\x02\x03" * 100)
    (folder / "d.md").write_text("# Expense policy\n\nVersion 2.1\n\nEffective date: 1 March 2024\n\nClaims above EUR 5,000 need approval.\n",
                                 encoding="utf-8")
    return folder


def _run(capsys, *args) -> tuple[int, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    if code not in (EXIT_OK, EXIT_PROBLEM):
        print(captured.err)
    return code, captured.out


@pytest.mark.slow
def test_admin_commands(tmp_path, corpus, capsys, monkeypatch):
    monkeypatch.setenv("GROUNDWORK_PARSE_WORKERS", "1")
    data = ["--data-dir", str(tmp_path / "data")]
    code, out = _run(capsys, *data, "ingest", str(corpus), "--json")
    assert code == EXIT_OK
    summary = json.loads(out)
    assert (summary["added"], summary["failed"]) == (3, 1)
    bad = [f for f in summary["files"] if f["status"] == "failed"][0]
    assert bad["path"].endswith("c.bin") and bad["reason"] == "unsupported_type"

    code, out = _run(capsys, *data, "stats", "--json")
    stats = json.loads(out)
    assert code == EXIT_OK and stats["documents"] == 4 and stats["chunks"] == stats["vectors"] > 0

    code, out = _run(capsys, *data, "verify", "--json")
    assert code == EXIT_OK and json.loads(out)["consistent"]

    code, out = _run(capsys, *data, "search", "backup window", "--json", "--k", "1")
    assert code == EXIT_OK and json.loads(out)["results"][0]["source"].endswith("b.txt")

    code, out = _run(capsys, *data, "search", "expense claims approval", "--json", "--k", "1")
    found = json.loads(out)["results"][0]
    assert found["title"] == "Expense policy"
    assert found["document_context"] == "Expense policy · effective date 1 March 2024 · version 2.1"

    code, out = _run(capsys, *data, "reindex")
    assert code == EXIT_OK and "version 2" in out

    code, out = _run(capsys, *data, "documents", "list", "--json")
    docs = json.loads(out)
    assert len(docs) == 4
    policy = [d for d in docs if d["source"].endswith("d.md")][0]["id"]
    code, out = _run(capsys, *data, "documents", "show", str(policy), "--json")
    assert code == EXIT_OK and json.loads(out)["context"].startswith("Expense policy · effective date 1 March 2024")
    target = [d for d in docs if d["source"].endswith("a.md")][0]["id"]
    assert _run(capsys, *data, "documents", "delete", str(target))[0] == EXIT_OK
    assert _run(capsys, *data, "documents", "show", str(target))[0] == EXIT_PROBLEM

    code, out = _run(capsys, *data, "verify", "--json")
    report = json.loads(out)
    assert code == EXIT_OK and report["consistent"] and report["chunks"] == report["vectors"]

    code, out = _run(capsys, *data, "ask", "What is the capital of Mongolia?", "--strict")
    assert code == EXIT_PROBLEM and "does not contain" in out


def test_usage_errors_exit_2(capsys):
    assert main(["ingest"]) == EXIT_USAGE
    assert main(["search", "x", "--k", "notanumber"]) == EXIT_USAGE


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_a_job_that_cannot_run_exits_3_with_or_without_verbose(tmp_path, capsys, verbose):
    """-v adds the traceback; the exit code stays 3 (it used to re-raise and exit 1)."""
    flags = ["-v"] if verbose else []
    code = main([*flags, "--data-dir", str(tmp_path / "data"), "--embedding-model", str(tmp_path / "no-such-model"),
                 "search", "anything", "--no-rerank"])
    err = capsys.readouterr().err
    assert code == EXIT_FAILED
    assert "ModelNotAvailable" in err
    assert ("Traceback (most recent call last)" in err) == verbose


def test_error_families_map_to_exit_codes():
    from index.errors import IndexCorrupt, ModelUnavailable, StorageUnavailable
    from service.cli import exit_code_for
    from service.jobs import PathNotAllowed

    assert exit_code_for(PathNotAllowed("outside every ingest root")) == EXIT_USAGE
    for error in (ModelUnavailable("gone"), IndexCorrupt("bad checksum"), StorageUnavailable("refused"), RuntimeError("a bug")):
        assert exit_code_for(error) == EXIT_FAILED


def test_closed_output_is_not_an_error(tmp_path):
    """`groundwork stats | head` printed a BrokenPipeError traceback."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo), "GROUNDWORK_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "stats"], cwd=repo, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141, err.decode()
    assert b"Traceback" not in err and b"BrokenPipe" not in err


def test_follow_symlinks_is_an_explicit_ingest_option():
    from service.cli import _parser

    assert _parser().parse_args(["ingest", "docs"]).follow_symlinks is False
    assert _parser().parse_args(["ingest", "docs", "--follow-symlinks"]).follow_symlinks is True


def test_verify_exits_1_when_it_had_to_repair(tmp_path, capsys, monkeypatch, hash_embedder):
    """Damage repaired is still damage found: a scheduled `verify` must raise it."""
    from index.settings import Settings
    from service import cli
    from service.engine import Groundwork
    from tests.service.conftest import InlineParser

    settings = Settings(data_dir=tmp_path / "data", reranker_enabled=False)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("The backup window runs nightly from one to three.\n")
    gw = Groundwork(settings, embedder=hash_embedder)
    gw._borrow_parser = lambda: InlineParser(settings)
    gw.ingest([tmp_path / "docs"], progress=False)
    gw.indexes
    gw.close()
    engine_dir = settings.data_dir / "indexes" / "v1" / "keyword" / "tantivy"
    target = max(engine_dir.glob("*.term"), key=lambda p: p.stat().st_size)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    monkeypatch.setattr(cli, "_app", lambda s, **kw: Groundwork(settings, embedder=hash_embedder))
    code = cli.main(["--data-dir", str(settings.data_dir), "verify"])
    out = capsys.readouterr().out
    assert code == EXIT_PROBLEM and "consistent after repairs" in out and "repaired:" in out
    assert cli.main(["--data-dir", str(settings.data_dir), "verify"]) == EXIT_OK
