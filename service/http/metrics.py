"""Prometheus text exposition (format 0.0.4) for the few metrics the service keeps.

A server process with a handful of counters and histograms does not need a client library:
this module renders the documented text format directly. Values live in memory, per process.
"""

from __future__ import annotations

import bisect
import itertools
import math
import threading
from collections.abc import Callable, Iterable, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STAGE_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _format_value(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _labels(names: Sequence[str], values: Sequence[str], extra: tuple[str, str] | None = None) -> str:
    pairs = [f'{n}="{_escape_label(str(v))}"' for n, v in zip(names, values)]
    if extra is not None:
        pairs.append(f'{extra[0]}="{_escape_label(extra[1])}"')
    return "{" + ",".join(pairs) + "}" if pairs else ""


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()):
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, str]) -> tuple[str, ...]:
        try:
            if len(labels) == len(self.labelnames):
                return tuple([str(labels[n]) for n in self.labelnames])
        except KeyError:
            pass
        raise ValueError(f"{self.name} takes labels {self.labelnames}, got {tuple(labels)}")

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {_escape_help(self.documentation)}", f"# TYPE {self.name} {self.kind}"]

    def render(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()):
        super().__init__(name, documentation, labelnames)
        self._values: dict[tuple[str, ...], float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(self._key(labels), 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return self.header() + [f"{self.name}{_labels(self.labelnames, k)} {_format_value(v)}" for k, v in items]


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = (), buckets: Sequence[float] = LATENCY_BUCKETS_S):
        super().__init__(name, documentation, labelnames)
        self.buckets = tuple(sorted(buckets))
        # Per series: how many observations fell in each bucket alone (the last slot being
        # above every bound), then the sum. Rendering makes the counts cumulative, so that an
        # observation (seven per search request) costs one bisection, not a pass over the bounds.
        self._series: dict[tuple[str, ...], list[float]] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        slot = bisect.bisect_left(self.buckets, value)
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = [0.0] * (len(self.buckets) + 2)
            series[slot] += 1
            series[-1] += value

    def count(self, **labels: str) -> int:
        series = self._series.get(self._key(labels))
        return int(sum(series[:-1])) if series else 0

    def render(self) -> list[str]:
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._series.items())
        lines = self.header()
        for key, series in items:
            cumulative = list(itertools.accumulate(series[:-1]))
            for bound, n in zip(self.buckets, cumulative):
                lines.append(f"{self.name}_bucket{_labels(self.labelnames, key, ('le', _format_value(bound)))} {_format_value(n)}")
            lines.append(f"{self.name}_bucket{_labels(self.labelnames, key, ('le', '+Inf'))} {_format_value(cumulative[-1])}")
            lines.append(f"{self.name}_sum{_labels(self.labelnames, key)} {_format_value(series[-1])}")
            lines.append(f"{self.name}_count{_labels(self.labelnames, key)} {_format_value(cumulative[-1])}")
        return lines


class Gauges(_Metric):
    """Gauges read at scrape time from a callback returning {label value tuple: value}."""

    kind = "gauge"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()):
        super().__init__(name, documentation, labelnames)
        self.values: dict[tuple[str, ...], float] = {}

    def set_all(self, values: dict[tuple[str, ...], float]) -> None:
        with self._lock:
            self.values = dict(values)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self.values.items())
        return self.header() + [f"{self.name}{_labels(self.labelnames, k)} {_format_value(v)}" for k, v in items]


class Registry:
    def __init__(self) -> None:
        self._metrics: list[_Metric] = []
        self._collectors: list[Callable[[], None]] = []

    def register(self, metric):
        self._metrics.append(metric)
        return metric

    def on_collect(self, collector: Callable[[], None]) -> None:
        """Run before each render (e.g. to refresh gauges); a failing collector is skipped."""
        self._collectors.append(collector)

    def render(self) -> str:
        for collect in self._collectors:
            try:
                collect()
            except Exception:
                pass
        lines: list[str] = []
        for metric in self._metrics:
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"


class ServiceMetrics:
    """Every metric the HTTP service exports, in one place."""

    def __init__(self) -> None:
        self.registry = Registry()
        r = self.registry
        self.requests = r.register(Counter("groundwork_http_requests_total", "HTTP requests by route and status.", ("method", "route", "status")))
        self.latency = r.register(Histogram("groundwork_http_request_duration_seconds", "HTTP request latency by route.", ("method", "route")))
        self.stages = r.register(Histogram("groundwork_stage_duration_seconds", "Time per query stage (embed_query, dense, keyword, fusion, rerank, generate, ...).", ("stage",), STAGE_BUCKETS_S))
        self.ingest_files = r.register(Counter("groundwork_ingest_files_total", "Files processed by ingestion, by outcome.", ("status",)))
        self.ingest_jobs = r.register(Counter("groundwork_ingest_jobs_total", "Ingestion jobs finished, by final status.", ("status",)))
        self.rate_limited = r.register(Counter("groundwork_rate_limited_total", "Requests refused by the per-key rate limit (429), by key name (its prefix when it has none).", ("key",)))
        self.fallbacks = r.register(Counter("groundwork_fallbacks_total", "Degraded answers: a stage failed and a fallback served the request.", ("stage",)))
        self.index = r.register(Gauges("groundwork_index_size", "Index and store sizes (vectors, keyword_docs, documents, chunks).", ("kind",)))
        self.audit_events = r.register(Counter("groundwork_audit_events_total", "Audit rows: written, failed (their transaction did not commit; in acknowledged mode the request got 503) and dropped (buffered mode, queue full).", ("outcome",)))
        self.audit_pending = r.register(Gauges("groundwork_audit_queue_rows", "Audit rows waiting for the writer thread."))
        self.query_embedding = r.register(Gauges("groundwork_query_embedding_total", "Batched query embedding since start: model calls (batches) and queries; queries/batches is the mean batch size.", ("kind",)))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.inc(method=method, route=route, status=str(status))
        self.latency.observe(seconds, method=method, route=route)

    def observe_stages(self, timings_ms: dict[str, float]) -> None:
        for stage, ms in timings_ms.items():
            self.stages.observe(float(ms) / 1000.0, stage=stage)

    def count_ingest(self, file_statuses: Iterable[str]) -> None:
        for status in file_statuses:
            self.ingest_files.inc(status=status)

    def render(self) -> str:
        return self.registry.render()
