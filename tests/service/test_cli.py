"""The admin CLI: JSON shapes, exit codes, reindex and verify, on a small real corpus."""

from __future__ import annotations

import json

import pytest

from service.cli import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, main


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
