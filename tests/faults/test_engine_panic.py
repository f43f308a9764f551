"""A keyword engine that panics (pyo3 raises Rust panics as a BaseException).

The probe: flipped bytes in tantivy's postings made 28 of 40 keyword queries raise a
PanicException that escaped every handler (a plain-text 500), and 2 of 40 rank wrongly while
verify and health said ok. Fail closed means: the panic surfaces as IndexCorrupt (the error
vocabulary, which the service maps to a JSON error and can answer from the dense retriever
instead), the keyword index is not asked again until it is rebuilt from the database (at the
next catch-up), health says so meanwhile, and afterwards answers are those of a clean copy.
"""

from __future__ import annotations

import pytest

from index.errors import IndexCorrupt
from tests.faults.harness import QUERIES, keyword_answers, open_groundwork, settings_for

pytestmark = pytest.mark.faults


class EnginePanic(BaseException):
    """What pyo3 raises for a panic: not an Exception."""


def test_a_panicking_engine_is_fenced_off_and_rebuilt(clean, damaged_copy, monkeypatch):
    from service.query.types import Principal, Query

    gw = open_groundwork(settings_for(damaged_copy))
    gw.auto_refresh = False  # as under `groundwork serve`: the follower catches up, not the request
    try:
        engine = gw.indexes.keyword.inner
        calls = []

        def panic(*_args, **_kwargs):
            calls.append(1)
            raise EnginePanic("called `Option::unwrap()` on a `None` value")

        monkeypatch.setattr(engine, "search", panic)
        admin = Principal(id="faults", all_access=True)
        for query in QUERIES:
            with pytest.raises(IndexCorrupt):
                gw.pipeline.search(Query(query, admin, k=5, mode="keyword"))
        assert len(calls) == 1  # fenced off after the first
        dense = gw.pipeline.search(Query(QUERIES[0], admin, k=5, mode="dense"))
        assert dense.hits  # the other retriever still answers
        health = gw.storage_health()
        assert health["status"] == "degraded" and "keyword index corrupt" in health["problems"][0]

        gw.refresh_indexes()  # the follower's next round
        assert gw.storage_health()["status"] == "ok"
        assert keyword_answers(gw) == clean["answers"]
        report = gw.verify()
        assert report["consistent"] and any("rebuilt from the database" in r for r in report["repaired"])
    finally:
        gw.close()
