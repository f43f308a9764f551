"""Background reindexing: one rebuild at a time, its outcome kept for the status route."""

from __future__ import annotations

import threading
import time

from service.reindexer import Reindexer


def _wait_until_idle(reindexer: Reindexer) -> None:
    deadline = time.monotonic() + 10
    while reindexer.running and time.monotonic() < deadline:
        time.sleep(0.01)


def test_one_rebuild_at_a_time_and_its_version_is_kept():
    release = threading.Event()
    calls: list[bool] = []

    def rebuild(reembed: bool) -> int:
        calls.append(reembed)
        release.wait(10)
        return 7

    reindexer = Reindexer(rebuild)
    assert reindexer.state().running is False and reindexer.state().started_at is None
    assert reindexer.start(reembed=True) is True
    assert reindexer.start(reembed=False) is False  # the route answers 409
    assert reindexer.state().running is True
    release.set()
    _wait_until_idle(reindexer)
    state = reindexer.state()
    assert (state.running, state.version, state.error, calls) == (False, 7, None, [True])
    assert state.finished_at >= state.started_at


def test_a_failed_rebuild_reports_why_and_the_next_one_can_start():
    outcomes = iter([RuntimeError("disk full"), 3])

    def rebuild(_reembed: bool) -> int:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    reindexer = Reindexer(rebuild)
    reindexer.start(reembed=False)
    _wait_until_idle(reindexer)
    assert reindexer.state().error == "RuntimeError: disk full"
    assert reindexer.start(reembed=False) is True
    _wait_until_idle(reindexer)
    assert (reindexer.state().error, reindexer.state().version) == (None, 3)


def test_a_gated_rebuild_keeps_the_gates_figures_whether_it_switched_or_not():
    from types import SimpleNamespace

    class Refused(Exception):
        gate = {"passed": False, "live_ndcg": 0.7, "new_ndcg": 0.2}

    outcomes = iter([Refused("nDCG@10 dropped"), SimpleNamespace(version=4, gate={"passed": True})])

    def rebuild(reembed: bool, gate=None):
        assert gate == "labelled"
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    reindexer = Reindexer(rebuild)
    reindexer.start(reembed=True, gate="labelled")
    _wait_until_idle(reindexer)
    state = reindexer.state()
    assert state.version is None and state.error == "Refused: nDCG@10 dropped" and state.gate["passed"] is False
    reindexer.start(reembed=True, gate="labelled")
    _wait_until_idle(reindexer)
    state = reindexer.state()
    assert (state.version, state.error, state.gate) == (4, None, {"passed": True})
