"""Bulk ingestion spread over a Ray cluster: parsing on CPU workers, embedding in model actors.

Only the two expensive stages move. The driver (``ingest.pipeline.IngestRunner``, unchanged)
still lists files, skips unchanged ones by sha256, chunks, and commits each document in its own
store transaction, so idempotency, ``--sync``, per-file failures, progress, the JSON summary and
every crash guarantee are the single-process path's own. Ray plugs in through the runner's two
seams: a parser factory (:class:`RayParsePool`, a drop-in for ``ParserPool``) and an embedder
(:class:`RayEmbedder`). Workers receive settings without the database URL and never open the
database: with Postgres, a worker on another node never touches a local SQLite file.

Each parse actor owns a one-worker ``ParserPool``, so a file is parsed by the same killable
process, under the same time and memory limits, failing alone with the same reasons. Each embed
actor loads the model once (``SentenceTransformerEmbedder.from_settings``: fp16 torch on a GPU
node, the OpenVINO export on a CPU node) and embeds in its token-budgeted batches.

A worker process killed mid-job is restarted by Ray and its call retried; only when the retries
are spent does the job fail (never the file: a lost worker says nothing about the file, and a
recorded failure would be skipped by the re-run). A driver killed mid-job takes its actors with
it; re-running the job finishes the work, as in the single-process path.

Files are read by the workers at the paths the driver lists, so on a cluster of several machines
the paths must be visible at the same place on every node (a shared file system).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from index.errors import GroundworkError
from index.settings import Settings
from ingest.documents import ParsedDocument, ParseFailure
from ingest.embedder import Embedder

log = logging.getLogger(__name__)

LOCAL = "local"
"""``ray_address`` value that starts a private single-machine cluster for the job."""

# Settings a worker must not carry: it never opens the database, and secrets stay on the driver.
_DRIVER_ONLY_SETTINGS = frozenset({"database_url", "openai_api_key"})
_ACTOR_RETRIES = 3
_ACTOR_START_TIMEOUT_S = 300.0  # model load and parser start-up; longer means the cluster lacks room for them
_CALLS_IN_FLIGHT_PER_PARSER = 2  # one parsing, one queued: no idle gap between files


class RayUnavailable(GroundworkError):
    """Ray is not installed (the ``[ray]`` extra) or the cluster cannot be reached."""

    code = "ray_unavailable"


class RayWorkerLost(GroundworkError):
    """A Ray worker died more often than its retries allow; re-running the job finishes it."""

    code = "ray_worker_lost"
    transient = True


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayUnavailable("distributed ingestion needs Ray: install the [ray] extra (pip install 'groundwork[ray]')") from None
    return ray


def worker_settings(settings: Settings) -> dict[str, Any]:
    """The settings a worker is built from: everything but the database URL and secrets."""
    values = settings.model_dump(mode="json", exclude=set(_DRIVER_ONLY_SETTINGS))
    if settings.model_cache_dir is None:
        # Where the driver keeps exported models; a node without that folder exports into it.
        values["model_cache_dir"] = str((settings.data_dir / "models").resolve())
    values["data_dir"] = str(Path(settings.data_dir).resolve())
    return values


def _settings_from(values: dict[str, Any]) -> Settings:
    from ingest.runtime.offline import set_offline_environment

    set_offline_environment()  # a worker node's environment is not the driver's: never download
    return Settings(**values)


# ============================================================================================
# worker side (classes made Ray actors lazily, so that importing this module needs no Ray)
# ============================================================================================


class ParseWorker:
    """One Ray actor: a one-process ``ParserPool`` that parses the files it is sent."""

    def __init__(self, settings_values: dict[str, Any], parse_fn: Any = None):
        from ingest.parser_pool import ParserPool

        settings = _settings_from(settings_values)
        overrides: dict[str, Any] = {"workers": 1}
        if parse_fn is not None:
            overrides["parse_fn"] = parse_fn
        self._pool = ParserPool.from_settings(settings, **overrides)
        self._pool.start()

    def parse(self, path: str, policy: Any) -> ParsedDocument | ParseFailure:
        for _path, outcome in self._pool.imap_unordered([path], policy=policy):
            return outcome
        raise RuntimeError("the parser pool returned no outcome")  # unreachable: each path yields once

    def pid(self) -> int:
        return os.getpid()


class EmbedWorker:
    """One Ray actor holding the embedding model, loaded once."""

    def __init__(self, settings_values: dict[str, Any]):
        from ingest.embedder_st import SentenceTransformerEmbedder

        self._embedder = SentenceTransformerEmbedder.from_settings(_settings_from(settings_values))

    def identity(self) -> dict[str, Any]:
        e = self._embedder
        return {"model_name": e.model_name, "dimension": e.dimension, "max_seq_length": e.max_seq_length,
                "fingerprint": e.fingerprint, "device": e.device, "backend": e.backend}

    def embed(self, texts: list[str]) -> np.ndarray:
        return self._embedder.embed_documents(texts)

    def pid(self) -> int:
        return os.getpid()


# ============================================================================================
# driver side
# ============================================================================================


def _call(ray: Any, refs: Any, timeout: float | None = None) -> Any:
    try:
        return ray.get(refs, timeout=timeout)
    except ray.exceptions.GetTimeoutError:
        raise RayUnavailable(f"Ray workers did not start within {timeout:.0f} s: does the cluster have a free CPU (or GPU) "
                             "for each of them? (ray_parse_actors, ray_embed_actors)") from None
    except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.ObjectLostError) as exc:
        raise RayWorkerLost(f"a Ray worker was lost beyond its retries: {exc}") from exc


class RayEmbedder(Embedder):
    """An ``Embedder`` whose document vectors come from embed actors across the cluster.

    A call is split into one contiguous share per actor, balanced by text length; each actor
    batches its share by tokens. The identity (fingerprint, dimensions) is the actors' own, and
    they must agree: vectors of two models never go into one index.
    """

    def __init__(self, ray: Any, actors: list[Any], model_name: str):
        self._ray = ray
        self._actors = actors
        identities = _call(ray, [a.identity.remote() for a in actors], _ACTOR_START_TIMEOUT_S)
        first = identities[0]
        for other in identities[1:]:
            if (other["fingerprint"], other["dimension"]) != (first["fingerprint"], first["dimension"]):
                raise RayUnavailable(f"embed workers disagree on the model: {first['fingerprint'][:12]} on {first['device']} "
                                     f"against {other['fingerprint'][:12]} on {other['device']}")
        self.model_name = model_name
        self.dimension = int(first["dimension"])
        self.max_seq_length = int(first["max_seq_length"])
        self.fingerprint = str(first["fingerprint"])
        self.device = ",".join(sorted({str(i["device"]) for i in identities}))
        self.backend = ",".join(sorted({str(i["backend"]) for i in identities}))

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        shares = split_by_length(list(texts), len(self._actors))
        refs = [actor.embed.remote(share) for actor, share in zip(self._actors, shares) if share]
        parts = _call(self._ray, refs)
        return np.concatenate([np.asarray(p, dtype=np.float32) for p in parts], axis=0)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError("the Ray embedder serves ingestion only; queries use the service's own embedder")

    def tokenizer_path(self) -> Path | None:
        from ingest.runtime.resolve import resolve_model

        return resolve_model(self.model_name)  # the driver's own copy: chunk budgets are counted here


def split_by_length(texts: list[str], parts: int) -> list[list[str]]:
    """``texts`` cut into at most ``parts`` contiguous runs of about equal total length, in order."""
    if parts <= 1 or len(texts) <= 1:
        return [texts]
    total = sum(len(t) + 1 for t in texts)
    target = total / parts
    shares: list[list[str]] = [[]]
    running = 0.0
    for text in texts:
        if running >= target * len(shares) and len(shares) < parts:
            shares.append([])
        shares[-1].append(text)
        running += len(text) + 1
    return shares


class RayParsePool:
    """``ParserPool``'s interface over the parse actors: outcomes in completion order."""

    def __init__(self, ray: Any, actors: list[Any]):
        self._ray = ray
        self._actors = actors

    def __enter__(self) -> "RayParsePool":
        return self

    def __exit__(self, *exc: object) -> None:
        pass  # the actors outlive one job; RayCluster.close() ends them

    def imap_unordered(self, paths: Iterable[Path | str], *, policy: Any = None) -> Iterator[tuple[Path, ParsedDocument | ParseFailure]]:
        waiting = iter(Path(p) for p in paths)
        in_flight: dict[Any, tuple[Path, Any]] = {}

        def submit(actor: Any) -> None:
            path = next(waiting, None)
            if path is not None:
                in_flight[actor.parse.remote(str(path), policy)] = (path, actor)

        for actor in self._actors:
            for _ in range(_CALLS_IN_FLIGHT_PER_PARSER):
                submit(actor)
        try:
            while in_flight:
                ready, _ = self._ray.wait(list(in_flight), num_returns=1)
                path, actor = in_flight.pop(ready[0])
                outcome = _call(self._ray, ready[0])
                submit(actor)
                yield path, outcome
        finally:
            for ref in in_flight:  # the job stopped early: do not leave parses queued for it
                try:
                    self._ray.cancel(ref)
                except Exception:  # already finished, or not cancellable once running: it ends alone
                    pass


class RayCluster:
    """The driver's link to a Ray cluster and the actors ingestion uses, started once.

    ``address``: ``local`` starts a private cluster on this machine; ``auto`` joins the one
    running here (``ray start``); anything else is a cluster address (``host:port`` or
    ``ray://host:10001``). Actors: ``ray_parse_actors`` parsers (0: one per CPU the cluster has
    left after the embedders) spread over the nodes, and ``ray_embed_actors`` embedders (0: one
    per GPU, each on its own GPU, or a single CPU one when the cluster has no GPU).
    """

    def __init__(self, settings: Settings, address: str, *, parse_fn: Any = None):
        ray = require_ray()
        self._ray = ray
        self._started_ray = False
        self.lock = threading.Lock()  # one job at a time uses the actors
        if not ray.is_initialized():
            runtime_env = {"env_vars": _worker_environment()}
            try:
                if address == LOCAL:
                    # CPUs are a count for scheduling here: enough for every actor asked for.
                    wanted = settings.ray_parse_actors + max(settings.ray_embed_actors, 1)
                    ray.init(include_dashboard=False, log_to_driver=False, runtime_env=runtime_env,
                             num_cpus=max(os.cpu_count() or 1, wanted))
                else:
                    ray.init(address=address, log_to_driver=False, runtime_env=runtime_env)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise RayUnavailable(f"cannot reach the Ray cluster at {address!r}: {exc}") from exc
            self._started_ray = True
        values = worker_settings(settings)
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        cpus = int(resources.get("CPU", 1))
        options = {"max_restarts": _ACTOR_RETRIES, "max_task_retries": _ACTOR_RETRIES}
        embedders = settings.ray_embed_actors or max(gpus, 1)
        embed_cls = ray.remote(EmbedWorker)
        if gpus:
            self.embed_actors = [embed_cls.options(num_gpus=1, num_cpus=1, **options).remote(values) for _ in range(embedders)]
        else:
            self.embed_actors = [embed_cls.options(num_cpus=1, **options).remote(values) for _ in range(embedders)]
        parsers = settings.ray_parse_actors or max(1, cpus - embedders)
        parse_cls = ray.remote(ParseWorker)
        self.parse_actors = [parse_cls.options(num_cpus=1, scheduling_strategy="SPREAD", **options).remote(values, parse_fn)
                             for _ in range(parsers)]
        try:
            self.embedder = RayEmbedder(ray, self.embed_actors, settings.embedding_model)
            _call(ray, [a.pid.remote() for a in self.parse_actors], _ACTOR_START_TIMEOUT_S)  # started, not just scheduled
        except BaseException:
            self.close()
            raise

    def parser_pool(self) -> RayParsePool:
        return RayParsePool(self._ray, self.parse_actors)

    def worker_pids(self) -> dict[str, list[int]]:
        """Process ids of the actors (for tests that kill one)."""
        return {"parse": _call(self._ray, [a.pid.remote() for a in self.parse_actors]),
                "embed": _call(self._ray, [a.pid.remote() for a in self.embed_actors])}

    def close(self) -> None:
        for actor in [*getattr(self, "parse_actors", []), *getattr(self, "embed_actors", [])]:
            try:
                self._ray.kill(actor)
            except Exception:  # already gone
                pass
        self.parse_actors, self.embed_actors = [], []
        if self._started_ray:
            self._ray.shutdown()
            self._started_ray = False


def _worker_environment() -> dict[str, str]:
    """Environment the job's workers get: offline model loading, and this code when it runs
    from a source checkout rather than an installed package."""
    from ingest.runtime.offline import OFFLINE_ENVIRONMENT

    env = dict(OFFLINE_ENVIRONMENT)
    source_root = str(Path(__file__).resolve().parent.parent)
    if "site-packages" not in source_root:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (source_root, os.environ.get("PYTHONPATH", "")) if p)
    return env
