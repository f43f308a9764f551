"""Token buckets with a stepped clock, and the 429 they produce over HTTP."""

from __future__ import annotations

from service.http.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_steady_refill():
    clock = Clock()
    limiter = RateLimiter(60, clock=clock)  # one token per second, burst of 60
    assert all(limiter.check("k").allowed for _ in range(60))
    refused = limiter.check("k")
    assert not refused.allowed and 0 < refused.retry_after_s <= 1.0 and refused.retry_after_header == "1"
    clock.now += 0.5
    assert not limiter.check("k").allowed
    clock.now += 0.5
    assert limiter.check("k").allowed
    assert not limiter.check("k").allowed


def test_keys_are_independent_and_refill_is_capped():
    clock = Clock()
    limiter = RateLimiter(2, clock=clock)
    assert limiter.check("a").allowed and limiter.check("a").allowed
    assert not limiter.check("a").allowed
    assert limiter.check("b").allowed
    clock.now += 3600  # an hour idle refills to the burst size, not beyond
    assert limiter.check("a").allowed and limiter.check("a").allowed
    assert not limiter.check("a").allowed


def test_retry_after_rounds_up_to_whole_seconds():
    clock = Clock()
    limiter = RateLimiter(1, clock=clock)  # one per minute
    assert limiter.check("k").allowed
    refused = limiter.check("k")
    assert refused.retry_after_header == "60"
    clock.now += 59.5
    assert limiter.check("k").retry_after_header == "1"


def test_zero_disables():
    limiter = RateLimiter(0)
    assert not limiter.enabled
    assert all(limiter.check("k").allowed for _ in range(1000))


def test_memory_stays_bounded():
    clock = Clock()
    limiter = RateLimiter(10, clock=clock, max_keys=100)
    for n in range(1000):
        limiter.check(f"key{n}")
        clock.now += 0.001
    assert len(limiter._buckets) <= 100


def test_http_429_with_retry_after_before_any_model_runs(fresh):
    server = fresh(rate_limit_per_minute=3, ingest=False)
    with server.client(server.keys["reader"]) as client:
        statuses = [client.post("/v1/search", json={"query": "vacation"}).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        calls = server.embedder.query_calls
        refused = client.post("/v1/search", json={"query": "vacation"})
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert int(refused.headers["retry-after"]) >= 1
        assert server.embedder.query_calls == calls
    with server.client(server.keys["writer"]) as other:  # another key has its own bucket
        assert other.post("/v1/search", json={"query": "vacation"}).status_code == 200
    with server.client() as anonymous:  # health is not rate limited
        assert all(anonymous.get("/v1/health").status_code == 200 for _ in range(5))


def test_throttled_requests_are_counted_per_key_name(fresh):
    server = fresh(rate_limit_per_minute=2, ingest=False)
    with server.client(server.keys["reader"]) as client:
        statuses = [client.post("/v1/search", json={"query": "vacation"}).status_code for _ in range(5)]
    assert statuses == [200, 200, 429, 429, 429]
    with server.client(server.keys["writer"]) as client:
        assert [client.post("/v1/search", json={"query": "vpn"}).status_code for _ in range(3)] == [200, 200, 429]
    server.app.state.services.limiter._buckets.clear()  # let the admin key scrape
    with server.client(server.keys["admin"]) as client:
        text = client.get("/metrics").text
    assert 'groundwork_rate_limited_total{key="reader"} 3' in text
    assert 'groundwork_rate_limited_total{key="writer"} 1' in text


def test_dev_mode_is_never_throttled(fresh):
    server = fresh(auth="off", rate_limit_per_minute=2, ingest=False)
    with server.client() as client:
        assert {client.post("/v1/search", json={"query": "vacation"}).status_code for _ in range(20)} == {200}


def test_default_allowance_is_sized_for_an_app_calling_with_one_key():
    """One internal app calls with one key for many users: the default must not throttle it
    below what the service itself serves (300+ searches/s on two cores, bench/load.py)."""
    from index.settings import Settings

    limiter = RateLimiter(Settings().rate_limit_per_minute)
    assert limiter.refill_per_s >= 500
    clock = Clock()
    limiter.clock = clock
    allowed = 0
    for _ in range(60 * 350):  # a minute at 350 requests/s
        clock.now += 1 / 350
        allowed += limiter.check("app").allowed
    assert allowed == 60 * 350
