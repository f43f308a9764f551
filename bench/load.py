"""HTTP load: N concurrent clients against /v1/search on a running `groundwork serve`
subprocess, next to the query-embedding-only throughput measured in the same run.

    python bench/load.py --data-dir /tmp/gw-samples --clients 8 --seconds 30 [--rounds 3] [--reindex]
    python bench/load.py --data-dir D --queries ../shared/data/scifact-train/queries.jsonl --clients 8,16,32

The data dir must already hold an ingested corpus (e.g. `groundwork --data-dir D ingest
data/samples`). The baseline is the service's embedder, in-process, embedding one query per
call from one caller per core (the callers share that one model instance, whose calls run one at
a time, each on every core): what the server would reach if embedding the query were its only
cost. Baseline and load alternate for --rounds rounds and medians are reported, because the
machine is shared and either can be slowed at any moment. CPU ms/req is the server processes'
CPU per answered request, which a busy neighbour does not inflate the way it does req/s.
With --reindex, an admin reindex is triggered halfway through the first round and every failed
request is counted: the switch must cost none. Several client counts (--clients 8,16,32) are
each measured in every round, next to the same baseline: closed-loop clients leave a batching
server idle between their requests, so fewer clients than it can overlap understate what it
serves, and the curve shows where it saturates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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


class RawClient:
    """A keep-alive HTTP/1.1 client that sends pre-encoded requests and reads just enough of
    each response to check it: a load generator must cost the shared CPU far less than the
    server it measures (httpx spends about 1.4 ms of CPU per request here)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, payload: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        try:
            self.writer.write(payload)
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            lower = head.lower()
            at = lower.find(b"content-length:")
            if at < 0:
                raise ValueError("response without Content-Length")
            length = int(lower[at + 15 : lower.index(b"\r\n", at)])
            return status, await self.reader.readexactly(length)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def encode_search(host: str, port: int, query: str, key: str | None = None) -> bytes:
    body = json.dumps({"query": query, "k": 10}).encode()
    authorization = f"Authorization: Bearer {key}\r\n" if key else ""
    return (f"POST /v1/search HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n{authorization}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def run_load(base: str, clients: int, seconds: float, reindex: bool, queries: list[str], client_kind: str = "raw",
                   key: str | None = None) -> dict:
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    host, port = base.split("//", 1)[1].rsplit(":", 1)
    payloads = [encode_search(host, int(port), q, key) for q in queries]
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    stop_at = time.perf_counter() + seconds

    async def drive(n: int, send) -> None:
        """One client: send queries back to back until the time is up; ``send`` returns None
        for a good response or a label for the failure."""
        i = n
        while time.perf_counter() < stop_at:
            t = time.perf_counter()
            try:
                problem = await send(i)
            except Exception as exc:  # connection errors count as failures
                problem = type(exc).__name__
            i += 1
            if problem is None:
                latencies.append((time.perf_counter() - t) * 1000)
            else:
                errors.append(problem)

    async def raw_client(n: int) -> None:
        http = RawClient(host, int(port))

        async def send(i: int) -> str | None:
            status, body = await http.request(payloads[i % len(payloads)])
            return None if status == 200 and body.startswith(b'{"results"') else f"HTTP {status}"

        try:
            await drive(n, send)
        finally:
            http.close()

    async def httpx_client(n: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30, headers=headers) as http:

            async def send(i: int) -> str | None:
                r = await http.post("/v1/search", json={"query": queries[i % len(queries)], "k": 10})
                return None if r.status_code == 200 else f"HTTP {r.status_code}"

            await drive(n, send)

    async def trigger_reindex() -> str:
        await asyncio.sleep(seconds / 2)
        async with httpx.AsyncClient(base_url=base, timeout=60, headers=headers) as http:
            r = await http.post("/v1/reindex")
            return f"reindex requested: HTTP {r.status_code}"

    client = raw_client if client_kind == "raw" else httpx_client
    tasks = [client(n) for n in range(clients)]
    if reindex:
        tasks.append(trigger_reindex())
    started = time.perf_counter()
    results = await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    return {"latencies": latencies, "errors": errors, "elapsed": elapsed, "notes": [r for r in results if isinstance(r, str)]}


def index_version(base: str):
    """The index version the server is searching (``/v1/health`` shows it to every caller)."""
    import httpx

    return httpx.get(base + "/v1/health", timeout=10).json().get("indexes", {}).get("version")


def process_cpu_seconds(pid: int) -> float:
    """User+system CPU of a process and its threads, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class EmbeddingBound:
    """Single-query embedding with the service's model, in-process, one caller per core sharing
    its one instance (calls run one at a time, each on every core): the throughput a server
    would reach if embedding the query were its only cost."""

    def __init__(self, queries: list[str]):
        from index.settings import Settings
        from ingest.embedder_st import SentenceTransformerEmbedder

        self.queries = queries
        self.embedder = SentenceTransformerEmbedder.from_settings(Settings())
        self.embedder.embed_queries(queries[:2])

    def measure(self, seconds: float) -> tuple[float, float]:
        """(queries/s, CPU ms per query)."""
        from concurrent.futures import ThreadPoolExecutor

        stop_at = time.perf_counter() + seconds
        callers = os.cpu_count() or 1

        def loop(n: int) -> int:
            done, i = 0, n
            while time.perf_counter() < stop_at:
                self.embedder.embed_queries([self.queries[i % len(self.queries)]])
                i += 1
                done += 1
            return done

        started, cpu_started = time.perf_counter(), time.process_time()
        with ThreadPoolExecutor(callers) as pool:
            count = sum(pool.map(loop, range(callers)))
        return count / (time.perf_counter() - started), (time.process_time() - cpu_started) * 1000 / max(count, 1)


def load_queries(path: Path | None, limit: int = 2000) -> list[str]:
    if path is None:
        return QUERIES
    from service.beir import read_jsonl

    return [query["text"] for query in read_jsonl(path)][:limit]


def client_counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("give one or more positive client counts, e.g. 8 or 8,16,32")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--clients", type=client_counts, default=[8],
                        help="concurrent clients; several (8,16,32) measure each level in every round, a saturation curve")
    parser.add_argument("--seconds", type=float, default=30, help="HTTP load time per client level, split over the rounds")
    parser.add_argument("--rounds", type=int, default=3, help="baseline and load alternate this many times; medians are reported")
    parser.add_argument("--reindex", action="store_true", help="switch to a rebuilt index halfway through the first round")
    parser.add_argument("--queries", type=Path, default=None, help="BEIR queries.jsonl to draw queries from (default: built-in)")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw", help="load generator (raw: lean keep-alive sockets)")
    parser.add_argument("--auth", action="store_true", help="serve with authentication, as deployed, and send an API key "
                                                             "(created for the run and revoked after it); default: dev mode")
    args = parser.parse_args()
    queries = load_queries(args.queries)
    per_round = args.seconds / args.rounds

    port = free_port()
    env = {**os.environ, "GROUNDWORK_DATA_DIR": str(args.data_dir), "GROUNDWORK_RATE_LIMIT_PER_MINUTE": "0"}
    key = None
    command = [sys.executable, "-m", "service.cli", "serve", "--port", str(port)]
    if args.auth:
        created = subprocess.run([sys.executable, "-m", "service.cli", "keys", "create", "--role", "admin", "--group", "*",
                                  "--name", "load-bench"], env=env, capture_output=True, text=True, check=True)
        key = created.stdout.strip().splitlines()[-1]
    else:
        command.append("--dev")
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    rounds: list[dict] = []  # one per round: the baseline and each client level's load
    notes: list[str] = []
    try:
        import httpx

        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                if httpx.get(base + "/v1/health", timeout=2).status_code == 200:
                    break
            except Exception:
                time.sleep(0.5)
        bound = EmbeddingBound(queries)
        version_before = index_version(base)
        asyncio.run(run_load(base, max(args.clients), 3.0, False, queries, args.client, key))  # warm up
        for n in range(args.rounds):
            bound_rps, bound_cpu = bound.measure(min(per_round, 5.0))
            levels = {}
            for clients in args.clients:
                server_cpu = _tree_cpu_seconds(server.pid)
                client_cpu = time.process_time()
                reindex_now = args.reindex and n == 0 and clients == args.clients[0]
                result = asyncio.run(run_load(base, clients, per_round, reindex_now, queries, args.client, key))
                client_cpu = time.process_time() - client_cpu
                server_cpu = _tree_cpu_seconds(server.pid) - server_cpu
                done = max(len(result["latencies"]), 1)
                notes.extend(result["notes"])
                levels[clients] = {"rps": len(result["latencies"]) / result["elapsed"], "server_cpu": server_cpu * 1000 / done,
                                   "client_cpu": client_cpu * 1000 / done, **result}
            rounds.append({"bound": bound_rps, "bound_cpu": bound_cpu, "levels": levels})
        if args.reindex:  # the switch must have happened while the clients ran, or it proves nothing
            notes.append(f"index version {version_before} before the rounds, {index_version(base)} after")
    finally:
        server.terminate()
        server.wait(timeout=30)
        if key:
            subprocess.run([sys.executable, "-m", "service.cli", "keys", "revoke", key.split("_")[1]], env=env, capture_output=True)

    print(f"machine: {machine()}")
    print(f"clients {','.join(map(str, args.clients))} ({args.client}, {'API key' if key else 'dev mode'}), {args.rounds} rounds of "
          f"{per_round:.0f} s per level, {len(queries)} distinct queries, corpus in {args.data_dir}; " + "; ".join(notes))
    rows = []
    for n, r in enumerate(rounds, 1):
        rows.append([f"round {n}: embedding only [baseline]", f"{r['bound']:.1f}", f"{r['bound_cpu']:.2f}", "-", "-", "-", "-", "1.00"])
        for clients, level in r["levels"].items():
            lat = level["latencies"]
            rows.append([f"round {n}: HTTP POST /v1/search, {clients} clients", f"{level['rps']:.1f}", f"{level['server_cpu']:.2f}",
                         f"{median(lat):.1f}", f"{percentile(lat, 0.95):.1f}", f"{percentile(lat, 0.99):.1f}", str(len(level["errors"])),
                         f"{level['rps'] / r['bound']:.2f}"])
    rows.append(["median: embedding only [baseline]", f"{median([r['bound'] for r in rounds]):.1f}",
                 f"{median([r['bound_cpu'] for r in rounds]):.2f}", "-", "-", "-", "-", "1.00"])
    errors: list[str] = []
    for clients in args.clients:
        levels = [(r, r["levels"][clients]) for r in rounds]
        all_lat = [x for _, level in levels for x in level["latencies"]]
        level_errors = [e for _, level in levels for e in level["errors"]]
        errors += level_errors
        rows.append([f"median: HTTP POST /v1/search (hybrid, k=10), {clients} clients", f"{median([lv['rps'] for _, lv in levels]):.1f}",
                     f"{median([lv['server_cpu'] for _, lv in levels]):.2f}", f"{median(all_lat):.1f}", f"{percentile(all_lat, 0.95):.1f}",
                     f"{percentile(all_lat, 0.99):.1f}", str(len(level_errors)), f"{median([lv['rps'] / r['bound'] for r, lv in levels]):.2f}"])
    print(table(rows, ["what", "req/s", "CPU ms/req", "p50 ms", "p95 ms", "p99 ms", "errors", "x baseline"]))
    print(f"load generator CPU: {median([lv['client_cpu'] for r in rounds for lv in r['levels'].values()]):.2f} ms/req, on the same "
          "cores as the server; CPU ms/req counts the server's processes only")
    if errors:
        from collections import Counter

        print("errors:", dict(Counter(errors)))


def _tree_cpu_seconds(pid: int) -> float:
    """CPU of the server and its worker processes."""
    total = process_cpu_seconds(pid)
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return total + sum(_tree_cpu_seconds(int(c)) for c in children)


if __name__ == "__main__":
    main()
