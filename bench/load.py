"""HTTP load: N concurrent clients against /v1/search on a running `groundwork serve`
subprocess, next to the query-embedding-only throughput measured in the same run.

    python bench/load.py --data-dir /tmp/gw-samples --clients 8 --seconds 30 [--reindex]

The data dir must already hold an ingested corpus (e.g. `groundwork --data-dir D ingest
data/samples`). With --reindex, an admin reindex is triggered halfway through and every failed
request is counted: the switch must cost none.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import machine, median, percentile, table  # noqa: E402

QUERIES = [
    "How many days of paid annual leave do employees get?", "How do I rotate the VPN certificate?",
    "What was revenue in EMEA in Q3?", "Who owns the migration action item?", "What is the API rate limit?",
    "When is the code freeze?", "What did we decide about the vendor renewal?", "How long is the free trial?",
    "parental leave weeks", "database failover procedure", "expense approval limits", "roadmap mobile offline mode",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def run_load(base: str, clients: int, seconds: float, reindex: bool) -> dict:
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    stop_at = time.perf_counter() + seconds

    async def client(n: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            i = n
            while time.perf_counter() < stop_at:
                query = QUERIES[i % len(QUERIES)]
                i += 1
                t = time.perf_counter()
                try:
                    r = await http.post("/v1/search", json={"query": query, "k": 10})
                    if r.status_code != 200:
                        errors.append(f"HTTP {r.status_code}")
                        continue
                except Exception as exc:  # connection errors count as failures
                    errors.append(type(exc).__name__)
                    continue
                latencies.append((time.perf_counter() - t) * 1000)

    async def trigger_reindex() -> str:
        await asyncio.sleep(seconds / 2)
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            r = await http.post("/v1/reindex")
            return f"reindex requested: HTTP {r.status_code}"

    tasks = [client(n) for n in range(clients)]
    if reindex:
        tasks.append(trigger_reindex())
    started = time.perf_counter()
    results = await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    return {"latencies": latencies, "errors": errors, "elapsed": elapsed, "notes": [r for r in results if isinstance(r, str)]}


def embedding_bound(seconds: float, clients: int) -> float:
    """Single-query embeddings per second with the same model, in-process, same threads."""
    from concurrent.futures import ThreadPoolExecutor

    from index.settings import Settings
    from ingest.embedder_st import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder.from_settings(Settings())
    embedder.embed_queries(QUERIES[:2])
    count = 0
    stop_at = time.perf_counter() + seconds

    def loop(n: int) -> int:
        done, i = 0, n
        while time.perf_counter() < stop_at:
            embedder.embed_queries([QUERIES[i % len(QUERIES)]])
            i += 1
            done += 1
        return done

    started = time.perf_counter()
    with ThreadPoolExecutor(max(1, min(clients, 2))) as pool:
        count = sum(pool.map(loop, range(max(1, min(clients, 2)))))
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--reindex", action="store_true")
    args = parser.parse_args()

    port = free_port()
    env = {**os.environ, "GROUNDWORK_DATA_DIR": str(args.data_dir), "GROUNDWORK_RATE_LIMIT_PER_MINUTE": "0"}
    server = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--dev", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                if httpx.get(base + "/v1/health", timeout=2).status_code == 200:
                    break
            except Exception:
                time.sleep(0.5)
        httpx.post(base + "/v1/search", json={"query": "warm up"}, timeout=60)
        result = asyncio.run(run_load(base, args.clients, args.seconds, args.reindex))
    finally:
        server.terminate()
        server.wait(timeout=30)
    bound = embedding_bound(min(args.seconds, 15), args.clients)
    lat = result["latencies"]
    rps = len(lat) / result["elapsed"]
    print(f"machine: {machine()}")
    print(f"{args.clients} clients, {args.seconds:.0f} s, corpus in {args.data_dir}; " + "; ".join(result["notes"]))
    print(table([
        ["query embedding only, in-process [baseline]", f"{bound:.1f}", "-", "-", "-", "-", "1.00"],
        ["HTTP POST /v1/search (hybrid, k=10)", f"{rps:.1f}", f"{median(lat):.1f}", f"{percentile(lat, 0.95):.1f}",
         f"{percentile(lat, 0.99):.1f}", str(len(result["errors"])), f"{rps / bound:.2f}"],
    ], ["what", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "x baseline"]))
    if result["errors"]:
        from collections import Counter

        print("errors:", dict(Counter(result["errors"])))


if __name__ == "__main__":
    main()
