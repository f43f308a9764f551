"""Parse files in worker processes that can be killed.

Parsers for real-world documents hang, blow up memory and occasionally crash the interpreter.
Each worker is a separate process with an address-space cap; a parse that overruns its time
is ended with SIGKILL (together with any converter it started) and the worker replaced, so one
bad file costs one result, never the job.

Usage::

    with ParserPool.from_settings(settings) as pool:
        for path, outcome in pool.imap_unordered(paths):
            ...  # outcome is a ParsedDocument or a ParseFailure

Results arrive in completion order while other files are still being parsed: a dispatcher
thread keeps the workers busy (up to ``buffer`` finished results waiting) and enforces
timeouts even while the caller is busy with a previous result.

Given an :class:`~ingest.safe_open.OpenPolicy`, a worker opens each file through its checks
and parses a private copy (see ``ingest.safe_open``): the check happens in the process that
reads the file, at the moment it reads it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
import warnings
import weakref
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from ingest.documents import FailureReason, ParsedDocument, ParseFailure

if TYPE_CHECKING:
    from index.settings import Settings
    from ingest.safe_open import OpenPolicy

logger = logging.getLogger(__name__)

ParseFunction = Callable[..., ParsedDocument]
Outcome = ParsedDocument | ParseFailure

WORKER_START_TIMEOUT_S = 180.0
"""A worker that is not ready by then (imports, model load) counts as broken."""
_POLL_S = 0.25
_SHUTDOWN_GRACE_S = 2.0
_FATAL_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE}
# Native libraries each start a thread pool per process; with several workers that oversubscribes.
_WORKER_ENVIRONMENT = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class ParserPoolError(RuntimeError):
    """The pool itself cannot work (workers fail to start), as opposed to a file failing."""


# ============================================================================================
# worker side
# ============================================================================================


@dataclass(frozen=True)
class _WorkerConfig:
    parse_fn: ParseFunction
    memory_mb: int
    max_bytes: int
    max_chars: int
    parse_options: dict[str, Any] = field(default_factory=dict)


def _worker_main(connection: Connection, config: _WorkerConfig) -> None:
    """Serve parse requests until told to stop or the parent goes away."""
    os.environ.update(_WORKER_ENVIRONMENT)
    try:
        os.setpgid(0, 0)  # own process group: a kill reaches converters it started too
    except OSError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    _watch_parent(os.getppid())
    try:
        _limit_memory(config.memory_mb)
        # Library chatter about quirks in a file says nothing the outcome does not.
        warnings.simplefilter("ignore")
        logging.getLogger().setLevel(logging.ERROR)
        for name in ("unstructured", "pdfminer", "pypandoc", "pikepdf", "PIL"):
            logging.getLogger(name).setLevel(logging.ERROR)
        from ingest.runtime.spacy_model import ensure_offline_nlp

        ensure_offline_nlp(preload=True)
    except BaseException as exc:  # report why, then exit: the parent cannot use this worker
        connection.send(("init_failed", f"{type(exc).__name__}: {exc}"))
        return
    connection.send(("ready", None))

    while True:
        try:
            request = connection.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        task_id, path, policy = request
        outcome, retire = _run_parse(config, Path(path), policy)
        try:
            connection.send(("result", (task_id, outcome, retire)))
        except Exception as exc:  # unpicklable outcome: still answer for the file
            failure = ParseFailure(FailureReason.corrupt, f"result not transferable: {exc}")
            connection.send(("result", (task_id, failure, retire)))
        if retire:
            return


def _run_parse(config: _WorkerConfig, path: Path, policy: "OpenPolicy | None" = None) -> tuple[Outcome, bool]:
    """Parse one file; the flag says the process state is suspect and the worker should exit."""
    try:
        if policy is not None:
            from ingest.safe_open import parse_checked

            return parse_checked(config.parse_fn, path, policy, max_bytes=config.max_bytes, max_chars=config.max_chars,
                                 **config.parse_options), False
        return config.parse_fn(path, max_bytes=config.max_bytes, max_chars=config.max_chars, **config.parse_options), False
    except ParseFailure as failure:
        return failure, False
    except MemoryError:
        detail = f"parsing needed more than the {config.memory_mb} MB memory limit"
        return ParseFailure(FailureReason.too_large, detail), True
    except RecursionError:
        return ParseFailure(FailureReason.corrupt, "structure nested too deeply to parse"), True
    except Exception as exc:
        return ParseFailure(FailureReason.corrupt, f"{type(exc).__name__}: {exc}"[:500]), False


def _limit_memory(memory_mb: int) -> None:
    if memory_mb <= 0:
        return
    import resource

    limit = memory_mb * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _watch_parent(parent_pid: int) -> None:
    """Exit (taking any converter along) if the parent dies without shutting us down."""

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                try:
                    os.killpg(0, signal.SIGKILL)
                finally:
                    os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


# ============================================================================================
# parent side
# ============================================================================================


@dataclass(eq=False)
class _Worker:
    process: Any  # multiprocessing.context.SpawnProcess
    connection: Connection
    started_at: float
    ready: bool = False
    task: tuple[int, Path] | None = None
    deadline: float | None = None

    @property
    def idle(self) -> bool:
        return self.ready and self.task is None


@dataclass
class _Run:
    """State of one ``imap_unordered`` call, owned by its dispatcher thread."""

    paths: Iterator[Path]
    results: "queue.Queue[tuple[str, Any]]"
    policy: "OpenPolicy | None" = None
    stop: threading.Event = field(default_factory=threading.Event)
    exhausted: bool = False
    next_task_id: int = 0


_DONE = "done"
_ITEM = "item"
_ERROR = "error"


def _kill(worker: _Worker) -> None:
    process = worker.process
    if process.pid is not None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, OSError):
            pass
        try:
            process.kill()
        except (ProcessLookupError, OSError, ValueError):
            pass
    process.join(timeout=5)
    worker.connection.close()


def _kill_all(workers: list[_Worker]) -> None:
    for worker in list(workers):
        _kill(worker)


def death_failure(exitcode: int | None) -> ParseFailure:
    """Explain a worker that died in the middle of a file."""
    if exitcode is not None and exitcode < 0:
        number = -exitcode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        if number == signal.SIGKILL:
            return ParseFailure(FailureReason.too_large, "parser process was killed (SIGKILL, most likely out of memory)")
        if number in _FATAL_SIGNALS:
            return ParseFailure(FailureReason.corrupt, f"parser process crashed ({name})")
        return ParseFailure(FailureReason.corrupt, f"parser process ended by {name}")
    return ParseFailure(FailureReason.corrupt, f"parser process exited unexpectedly (exit code {exitcode})")


class ParserPool:
    """N parser processes with per-file timeouts, memory caps and crash isolation.

    Start with ``with`` (or ``start()``/``close()``). ``imap_unordered`` yields
    ``(path, ParsedDocument | ParseFailure)`` for every path it is given, in completion order;
    only one ``imap_unordered`` iteration may run at a time. ``parse_fn`` (a picklable,
    module-level function with ``parse_file``'s signature) replaces the parser, which is how
    tests inject hangs and crashes. ``parse_options`` are extra keyword arguments for every
    call; ``parse_file`` takes ``ocr``, whose per-file budget is fitted inside ``timeout_s``
    (OCR runs in the workers, under their time and memory limits).
    """

    def __init__(
        self,
        workers: int,
        timeout_s: float,
        memory_mb: int,
        max_bytes: int,
        max_chars: int,
        *,
        parse_fn: ParseFunction | None = None,
        buffer: int | None = None,
        parse_options: dict[str, Any] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        parse_options = dict(parse_options or {})
        if parse_fn is None:
            from ingest.ocr import OcrOptions
            from ingest.parsing import parse_file

            parse_fn = parse_file
            parse_options["ocr"] = (parse_options.get("ocr") or OcrOptions()).within(timeout_s)
        self.workers = workers
        self.timeout_s = timeout_s
        self.buffer = buffer if buffer is not None else 2 * workers
        self._config = _WorkerConfig(parse_fn, memory_mb, max_bytes, max_chars, parse_options)
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self._running = False
        self._closed = False
        self._lock = threading.Lock()
        self._active_run: _Run | None = None
        self._dispatcher: threading.Thread | None = None
        # Safety net for pools that are dropped without close(): no orphans either way.
        self._finalizer = weakref.finalize(self, _kill_all, self._workers)

    @classmethod
    def from_settings(cls, settings: "Settings", **overrides: Any) -> "ParserPool":
        from ingest.ocr import OcrOptions

        options: dict[str, Any] = {
            "workers": settings.parse_workers,
            "timeout_s": settings.parse_timeout_s,
            "memory_mb": settings.parse_memory_mb,
            "max_bytes": settings.max_file_bytes,
            "max_chars": settings.max_document_chars,
            "parse_options": {"ocr": OcrOptions.from_settings(settings)},
        }
        options.update(overrides)
        return cls(**options)

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> "ParserPool":
        self.start()
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        self.close(graceful=exc_type is None)

    def start(self) -> None:
        """Launch the workers; they load their models in the background."""
        from ingest.runtime.spacy_model import OfflineModelMissing, spacy_model_available

        if self._closed:
            raise ParserPoolError("pool is closed")
        if self._running:
            return
        if not spacy_model_available():
            raise OfflineModelMissing("the bundled spaCy model package is not installed")
        self._running = True
        self._warn_if_ocr_unavailable()
        for _ in range(self.workers):
            self._workers.append(self._spawn())

    def _warn_if_ocr_unavailable(self) -> None:
        """Say once, at start, that images and scans will fail for want of OCR (not per file)."""
        from ingest.ocr import OcrOptions, availability

        options = self._config.parse_options.get("ocr")
        if isinstance(options, OcrOptions) and options.enabled:
            missing = availability(options)
            if missing:
                logger.warning("OCR unavailable: %s; images will fail with unsupported_type, scanned PDF pages stay unread", missing)

    def close(self, graceful: bool = True) -> None:
        """Stop everything; ``graceful`` lets idle workers exit on their own first."""
        if self._closed:
            return
        self._closed = True
        run, dispatcher = self._active_run, self._dispatcher
        if run is not None:
            run.stop.set()
        if dispatcher is not None and dispatcher is not threading.current_thread():
            dispatcher.join()
        if graceful:
            for worker in self._workers:
                if worker.idle:
                    try:
                        worker.connection.send(None)
                    except (OSError, ValueError):
                        pass
            deadline = time.monotonic() + _SHUTDOWN_GRACE_S
            for worker in self._workers:
                worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
        _kill_all(self._workers)
        self._workers.clear()
        self._running = False

    # --- parsing -----------------------------------------------------------------------------

    def imap_unordered(self, paths: Iterable[Path | str], *, policy: "OpenPolicy | None" = None) -> Iterator[tuple[Path, Outcome]]:
        """Parse ``paths`` (consumed lazily) and yield each outcome as soon as it is known.
        With ``policy`` each file is opened through its checks and parsed from a private copy."""
        if not self._running:
            raise ParserPoolError("pool is not started; use it as a context manager")
        with self._lock:
            if self._active_run is not None:
                raise ParserPoolError("only one imap_unordered iteration may run at a time")
            run = _Run(paths=iter(Path(p) for p in paths), results=queue.Queue(), policy=policy)
            self._active_run = run
        self._dispatcher = threading.Thread(target=self._dispatch, args=(run,), name="parser-dispatch", daemon=True)
        self._dispatcher.start()
        return self._consume(run)

    def _consume(self, run: _Run) -> Iterator[tuple[Path, Outcome]]:
        try:
            while True:
                kind, payload = run.results.get()
                if kind == _DONE:
                    return
                if kind == _ERROR:
                    raise payload
                yield payload
        finally:
            run.stop.set()
            dispatcher = self._dispatcher
            if dispatcher is not None:
                dispatcher.join()
            with self._lock:
                self._active_run = None
                self._dispatcher = None

    def parse(self, path: Path | str) -> Outcome:
        """Parse a single file in a worker (convenience for one-off uploads)."""
        for _path, outcome in self.imap_unordered([path]):
            return outcome
        raise ParserPoolError("no result")  # unreachable: every path yields once

    # --- dispatcher thread -------------------------------------------------------------------

    def _spawn(self) -> _Worker:
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_worker_main, args=(child_end, self._config), name="groundwork-parser", daemon=True
        )
        process.start()
        child_end.close()
        return _Worker(process, parent_end, time.monotonic())

    def _replace(self, worker: _Worker) -> None:
        _kill(worker)
        index = self._workers.index(worker)
        self._workers[index] = self._spawn()

    def _dispatch(self, run: _Run) -> None:
        try:
            self._dispatch_loop(run)
        except BaseException as exc:  # surface in the consumer rather than dying silently
            run.results.put((_ERROR, exc))
        else:
            run.results.put((_DONE, None))
        finally:
            if run.stop.is_set():
                # Abandoned mid-way: files still being parsed are of no interest any more.
                for worker in list(self._workers):
                    if worker.task is not None:
                        worker.task = worker.deadline = None
                        if self._closed:
                            _kill(worker)
                        else:
                            self._replace(worker)

    def _dispatch_loop(self, run: _Run) -> None:
        while not run.stop.is_set():
            self._hand_out(run)
            busy = [worker for worker in self._workers if worker.task is not None]
            if run.exhausted and not busy:
                return
            self._wait_and_collect(run)
            self._enforce_deadlines(run)

    def _hand_out(self, run: _Run) -> None:
        for worker in self._workers:
            if run.exhausted or run.stop.is_set():
                return
            if not worker.idle:
                continue
            in_flight = sum(1 for w in self._workers if w.task is not None)
            if run.results.qsize() + in_flight >= self.buffer + self.workers:
                return
            try:
                path = next(run.paths)
            except StopIteration:
                run.exhausted = True
                return
            run.next_task_id += 1
            try:
                worker.connection.send((run.next_task_id, str(path), run.policy))
            except (OSError, ValueError):
                run.results.put((_ITEM, (path, ParseFailure(FailureReason.corrupt, "parser process unavailable"))))
                self._replace(worker)
                continue
            worker.task = (run.next_task_id, path)
            worker.deadline = time.monotonic() + self.timeout_s if self.timeout_s and self.timeout_s > 0 else None

    def _wait_and_collect(self, run: _Run) -> None:
        timeout = _POLL_S
        deadlines = [w.deadline for w in self._workers if w.deadline is not None]
        if deadlines:
            timeout = max(0.0, min(timeout, min(deadlines) - time.monotonic()))
        handles: dict[Any, _Worker] = {}
        for worker in self._workers:
            handles[worker.connection] = worker
            handles[worker.process.sentinel] = worker
        ready = wait(list(handles), timeout=timeout)
        for worker in {handles[handle] for handle in ready}:
            self._service(run, worker)
        now = time.monotonic()
        for worker in list(self._workers):
            if not worker.ready and now - worker.started_at > WORKER_START_TIMEOUT_S:
                raise ParserPoolError(f"parser worker did not start within {WORKER_START_TIMEOUT_S:.0f}s")

    def _service(self, run: _Run, worker: _Worker) -> None:
        """Read whatever the worker sent, then deal with it having exited."""
        if worker not in self._workers:
            return  # already replaced earlier in this round
        try:
            while worker.connection.poll():
                kind, payload = worker.connection.recv()
                if kind == "ready":
                    worker.ready = True
                elif kind == "init_failed":
                    raise ParserPoolError(f"parser worker failed to start: {payload}")
                elif kind == "result":
                    task_id, outcome, retiring = payload
                    if worker.task is not None and worker.task[0] == task_id:
                        run.results.put((_ITEM, (worker.task[1], outcome)))
                    worker.task, worker.deadline = None, None
                    if retiring:  # it is exiting; must not be handed another file
                        self._replace(worker)
                        return
        except (EOFError, OSError):
            pass
        if worker.process.is_alive():
            return
        worker.process.join()
        if worker.task is not None:
            run.results.put((_ITEM, (worker.task[1], death_failure(worker.process.exitcode))))
        elif not worker.ready:
            raise ParserPoolError(f"parser worker exited during start-up (exit code {worker.process.exitcode})")
        self._replace(worker)

    def _enforce_deadlines(self, run: _Run) -> None:
        now = time.monotonic()
        for worker in list(self._workers):
            if worker.task is not None and worker.deadline is not None and now >= worker.deadline:
                path = worker.task[1]
                logger.warning("parse of %s exceeded %.0fs; killing its worker", path, self.timeout_s)
                run.results.put((_ITEM, (path, ParseFailure(FailureReason.timeout, f"parsing took longer than {self.timeout_s:g}s"))))
                worker.task = None
                self._replace(worker)
