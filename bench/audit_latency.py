"""What the audit trail costs /v1/search: the same server, the same queries, audit_mode
``off``, ``buffered`` and ``acknowledged`` (the default: the response waits for its row's group
commit) in alternating rounds, so a busy neighbour slows every mode alike.

    python bench/audit_latency.py [--data-dir D] [--clients 4] [--seconds 4] [--rounds 5] [--database-url URL]

The server runs in this process (uvicorn on a loopback port, the configured embedding model,
data/samples ingested into a fresh data dir unless --data-dir holds an ingested corpus); the
clients run in a child process with keep-alive connections, so their CPU is not the server's
GIL. Between rounds only the trail's mode changes (its writer thread keeps running). Reported:
per mode, the median over rounds of p50, p99 and requests/s, and the ratio to ``off``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import REPO, machine, median, percentile, table  # noqa: E402

MODES = ("off", "buffered", "acknowledged")
QUERIES = [
    "How many days of paid annual leave do employees get?", "How do I rotate the VPN certificate?",
    "What was revenue in EMEA in Q3?", "Who owns the migration action item?", "What is the API rate limit?",
    "When is the code freeze?", "What did we decide about the vendor renewal?", "How long is the free trial?",
]


def _clients(url: str, key: str, clients: int, seconds: float, out) -> None:
    import asyncio

    import httpx

    async def one(n: int, deadline: float, samples: list[float]) -> None:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
            i = n
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.post("/v1/search", json={"query": QUERIES[i % len(QUERIES)], "k": 10})
                response.raise_for_status()
                samples.append(time.perf_counter() - started)
                i += clients

    async def run() -> list[float]:
        samples: list[float] = []
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*(one(n, deadline, samples) for n in range(clients)))
        return samples

    out.send(asyncio.run(run()))


def measure(url: str, key: str, clients: int, seconds: float) -> list[float]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_clients, args=(url, key, clients, seconds, child))
    proc.start()
    samples = parent.recv()
    proc.join()
    return samples


def commit_wait(args) -> int:
    """The acknowledged mode's own cost: how long a request waits for its row to commit."""
    import threading

    from index.audit_store import AuditStore
    from index.db import open_database
    from index.settings import Settings
    from service import auth
    from service.audit import AuditTrail

    overrides = {"data_dir": args.data_dir or Path(tempfile.mkdtemp(prefix="gw-audit-commit-"))}
    if args.database_url:
        overrides["database_url"] = args.database_url
    settings = Settings(**overrides)
    trail = AuditTrail(AuditStore(open_database(settings)), settings)
    trail.start()
    caller = auth.KeyInfo(key_id=1, prefix="bench", name="bench", role="reader", principal=auth.Principal(id="bench"))
    rows = []
    for threads in (1, 8):
        for _ in range(args.rounds):
            waits: list[float] = []
            lock = threading.Lock()

            def worker():
                for n in range(50):
                    started = time.perf_counter()
                    trail.record_blocking(trail.event(caller, "POST /v1/search", "search", 200, query=QUERIES[n % len(QUERIES)],
                                                      document_ids=[1, 2, 3], chunk_ids=list(range(10))))
                    with lock:
                        waits.append(time.perf_counter() - started)

            pool = [threading.Thread(target=worker) for _ in range(threads)]
            started = time.perf_counter()
            for t in pool:
                t.start()
            for t in pool:
                t.join()
            elapsed = time.perf_counter() - started
            rows.append((threads, percentile(waits, 0.5) * 1000, percentile(waits, 0.99) * 1000, len(waits) / elapsed))
    trail.stop()
    out = []
    for threads in (1, 8):
        mine = [r for r in rows if r[0] == threads]
        out.append([threads, f"{median([r[1] for r in mine]):.2f}", f"{median([r[2] for r in mine]):.2f}", f"{median([r[3] for r in mine]):.0f}"])
    print(f"machine: {machine()}; database: {settings.resolved_database_url().split('://')[0]}; {args.rounds} rounds of 50 rows per thread")
    print(table(out, ["threads", "commit wait p50 ms", "p99 ms", "rows/s"]))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, help="an ingested data dir (default: a fresh one with data/samples)")
    parser.add_argument("--database-url", help="e.g. a PostgreSQL URL (default: SQLite in the data dir)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0, help="per mode per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--commit-only", action="store_true",
                        help="only the wait for a row's group commit (AuditTrail.record_blocking), 1 and 8 threads, no HTTP")
    args = parser.parse_args()
    if args.commit_only:
        return commit_wait(args)

    from index.settings import Settings
    from service import auth
    from service.engine import Groundwork
    from service.http.app import create_app
    from tests.service.conftest import start_server

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="gw-audit-bench-"))
    overrides = {"data_dir": data_dir, "reranker_enabled": False, "rate_limit_per_minute": 0, "audit_mode": "acknowledged"}
    if args.database_url:
        overrides["database_url"] = args.database_url
    settings = Settings(**overrides)
    groundwork = Groundwork(settings)
    if args.data_dir is None:
        groundwork.ingest([p for p in (REPO / "data" / "samples").iterdir() if p.name != "README.md"], progress=False)
    key, _ = auth.create_key(groundwork.store, "reader", ["*"], "audit-bench")
    app = create_app(groundwork, start_jobs=False)
    server, thread, url = start_server(app)
    trail = app.state.services.audit
    results: dict[str, list[dict]] = {mode: [] for mode in MODES}
    try:
        trail.mode = "off"
        measure(url, key, args.clients, 2.0)  # warm-up: model, caches, connections
        for round_no in range(args.rounds):
            order = MODES if round_no % 2 == 0 else tuple(reversed(MODES))
            for mode in order:
                trail.mode = mode
                samples = measure(url, key, args.clients, args.seconds)
                results[mode].append({"p50": percentile(samples, 0.5) * 1000, "p99": percentile(samples, 0.99) * 1000,
                                      "rps": len(samples) / args.seconds})
                print(f"round {round_no + 1} {mode:<12} p50 {results[mode][-1]['p50']:.2f} ms  p99 {results[mode][-1]['p99']:.2f} ms  "
                      f"{results[mode][-1]['rps']:.0f} req/s", file=sys.stderr)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        groundwork.close()
    base = {k: median([r[k] for r in results["off"]]) for k in ("p50", "p99", "rps")}
    rows = []
    for mode in MODES:
        m = {k: median([r[k] for r in results[mode]]) for k in ("p50", "p99", "rps")}
        rows.append([mode, f"{m['p50']:.2f}", f"{m['p99']:.2f}", f"{m['rps']:.0f}", f"{m['p50'] / base['p50']:.2f}x",
                     f"{m['p99'] / base['p99']:.2f}x"])
    print(f"machine: {machine()}; database: {settings.resolved_database_url().split('://')[0]}; {args.clients} clients, "
          f"{args.rounds} rounds x {args.seconds:g} s per mode; medians over rounds")
    print(table(rows, ["audit_mode", "p50 ms", "p99 ms", "req/s", "p50 vs off", "p99 vs off"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
