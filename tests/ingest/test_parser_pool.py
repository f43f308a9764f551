"""ParserPool: timeouts, crashes and memory blow-ups cost one file, never the pool."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Iterator

import pytest

from ingest.documents import Element, ElementKind, FailureReason, ParsedDocument, ParseFailure
from ingest.parser_pool import ParserPool, death_failure
from ingest.safe_open import OpenPolicy

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 4.0
MEMORY_MB = 2048


def misbehaving_parse(path: Path, *, max_bytes: int, max_chars: int) -> ParsedDocument:
    """Stand-in parser driven by the file name, run inside the workers."""
    name = path.name
    if name.startswith("hang"):
        time.sleep(3600)
    if name.startswith("segfault"):
        os.kill(os.getpid(), signal.SIGSEGV)
    if name.startswith("hog"):
        hoard = bytearray(8 * MEMORY_MB * 1024 * 1024)
        return ParsedDocument(str(len(hoard)), [], "text/plain")
    if name.startswith("boom"):
        raise ValueError("parser bug")
    if name.startswith("refuse"):
        raise ParseFailure(FailureReason.unsupported_type, "not today")
    text = path.read_text()
    return ParsedDocument(text, [Element(ElementKind.text, 0, len(text))], "text/plain")


@pytest.fixture(scope="module")
def pool() -> Iterator[ParserPool]:
    with ParserPool(2, TIMEOUT_S, MEMORY_MB, 10_000_000, 1_000_000, parse_fn=misbehaving_parse) as running:
        yield running


def write_files(directory: Path, names: list[str]) -> list[Path]:
    paths = []
    for name in names:
        path = directory / name
        path.write_text(f"contents of {name}")
        paths.append(path)
    return paths


def outcomes(pool: ParserPool, paths: list[Path]) -> dict[str, ParsedDocument | ParseFailure]:
    return {path.name: outcome for path, outcome in pool.imap_unordered(paths)}


def test_every_file_gets_exactly_one_outcome(pool: ParserPool, tmp_path: Path) -> None:
    paths = write_files(tmp_path, [f"doc{i}.txt" for i in range(12)])
    results = list(pool.imap_unordered(paths))
    assert sorted(p.name for p, _ in results) == sorted(p.name for p in paths)
    for path, outcome in results:
        assert isinstance(outcome, ParsedDocument)
        assert outcome.text == f"contents of {path.name}"


def test_hanging_parse_is_killed_and_others_still_arrive(pool: ParserPool, tmp_path: Path) -> None:
    paths = write_files(tmp_path, ["hang.txt", "a.txt", "b.txt", "c.txt"])
    results = outcomes(pool, paths)
    assert isinstance(results["hang.txt"], ParseFailure)
    assert results["hang.txt"].reason is FailureReason.timeout
    assert all(isinstance(results[name], ParsedDocument) for name in ("a.txt", "b.txt", "c.txt"))


def test_crash_memory_and_exceptions_are_contained(pool: ParserPool, tmp_path: Path) -> None:
    paths = write_files(tmp_path, ["segfault.txt", "hog.txt", "boom.txt", "refuse.txt", "fine.txt"])
    results = outcomes(pool, paths)
    assert results["segfault.txt"].reason is FailureReason.corrupt
    assert "SIGSEGV" in results["segfault.txt"].detail
    assert results["hog.txt"].reason is FailureReason.too_large
    assert results["boom.txt"].reason is FailureReason.corrupt
    assert results["boom.txt"].detail.startswith("ValueError")
    assert results["refuse.txt"].reason is FailureReason.unsupported_type
    assert isinstance(results["fine.txt"], ParsedDocument)
    # and the pool keeps working afterwards
    assert isinstance(outcomes(pool, write_files(tmp_path, ["after.txt"]))["after.txt"], ParsedDocument)


def test_results_stream_while_the_caller_is_busy(pool: ParserPool, tmp_path: Path) -> None:
    """A slow consumer does not stall parsing, and a timeout still fires during its pause."""
    paths = write_files(tmp_path, ["first.txt", "hang-late.txt", "second.txt", "third.txt"])
    seen = []
    for path, outcome in pool.imap_unordered(paths):
        seen.append((path.name, outcome))
        if len(seen) == 1:
            time.sleep(TIMEOUT_S + 1)  # stand-in for embedding a batch
    failures = {name: o.reason for name, o in seen if isinstance(o, ParseFailure)}
    assert failures == {"hang-late.txt": FailureReason.timeout}
    assert len(seen) == 4


def test_abandoning_an_iteration_leaves_the_pool_usable(pool: ParserPool, tmp_path: Path) -> None:
    paths = write_files(tmp_path, ["x1.txt", "hang-abandoned.txt", "x2.txt", "x3.txt"])
    iterator = pool.imap_unordered(paths)
    next(iterator)
    iterator.close()
    again = outcomes(pool, write_files(tmp_path, ["y.txt"]))
    assert isinstance(again["y.txt"], ParsedDocument)


def test_input_iterable_is_consumed_lazily(pool: ParserPool, tmp_path: Path) -> None:
    paths = write_files(tmp_path, [f"lazy{i}.txt" for i in range(5)])
    produced = []

    def generate() -> Iterator[Path]:
        for path in paths:
            produced.append(path)
            yield path

    iterator = pool.imap_unordered(generate())
    first = next(iterator)
    assert first[0] in paths
    rest = list(iterator)
    assert len(rest) == 4 and len(produced) == 5


def test_workers_open_each_file_through_the_policy(pool: ParserPool, tmp_path: Path) -> None:
    """The check happens in the worker that reads the file, when it reads it: a file swapped
    for a symlink after it was listed (and hashed) is refused there, never read."""
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the index")
    listed, kept = write_files(tmp_path, ["swapped.txt", "kept.txt"])
    listed.unlink()
    listed.symlink_to(secret)
    results = {path.name: outcome for path, outcome in pool.imap_unordered([listed, kept], policy=OpenPolicy())}
    assert results["swapped.txt"].reason is FailureReason.symlink
    assert results["kept.txt"].text == "contents of kept.txt"
    assert results["kept.txt"].sha256 == hashlib.sha256(b"contents of kept.txt").hexdigest()


def test_death_failure_reasons() -> None:
    assert death_failure(-signal.SIGKILL).reason is FailureReason.too_large
    assert death_failure(-signal.SIGSEGV).reason is FailureReason.corrupt
    assert death_failure(3).reason is FailureReason.corrupt


def test_real_parser_in_workers(tmp_path: Path) -> None:
    text_file = tmp_path / "notes.txt"
    text_file.write_text("Site notes\n\nThe inspection found the roof in good condition after the storm.\n")
    empty_file = tmp_path / "empty.txt"
    empty_file.write_bytes(b"")
    with ParserPool(1, 120, 4096, 10_000_000, 1_000_000) as real_pool:
        results = outcomes(real_pool, [text_file, empty_file])
    assert isinstance(results["notes.txt"], ParsedDocument)
    assert "roof in good condition" in results["notes.txt"].text
    assert results["empty.txt"].reason is FailureReason.empty


_INTERRUPTED_RUN = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    from pathlib import Path
    from ingest.parser_pool import ParserPool
    from tests.ingest.test_parser_pool import misbehaving_parse

    directory = Path(sys.argv[1])
    paths = []
    for name in ("hang1.txt", "hang2.txt"):
        (directory / name).write_text("x")
        paths.append(directory / name)
    try:
        with ParserPool(2, 600, 2048, 10**6, 10**6, parse_fn=misbehaving_parse) as pool:
            print("WORKERS", " ".join(str(w.process.pid) for w in pool._workers), flush=True)
            threading.Timer(8, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
            for _ in pool.imap_unordered(paths):
                pass
    except KeyboardInterrupt:
        print("INTERRUPTED", flush=True)
    """
)


def test_keyboard_interrupt_leaves_no_orphans(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", _INTERRUPTED_RUN, str(tmp_path)],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True, text=True, timeout=120,
    )
    assert "INTERRUPTED" in completed.stdout, completed.stderr[-3000:]
    worker_line = next(line for line in completed.stdout.splitlines() if line.startswith("WORKERS"))
    for pid in map(int, worker_line.split()[1:]):
        assert not _alive(pid), f"worker {pid} survived"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead for our purposes
        return stat.read().split(")")[-1].split()[0] != "Z"
