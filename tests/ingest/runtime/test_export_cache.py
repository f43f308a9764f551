"""Exports are published whole or not at all, and reused once complete."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.runtime.export_cache import cached_export


def complete(directory: Path) -> bool:
    return (directory / "done").is_file()


def test_builds_once_then_reuses(tmp_path: Path) -> None:
    builds: list[Path] = []

    def build(staging: Path) -> None:
        builds.append(staging)
        (staging / "done").write_text("ok")

    target = tmp_path / "models" / "abc" / "variant"
    assert cached_export(target, build, complete) == target
    assert cached_export(target, build, complete) == target
    assert len(builds) == 1 and complete(target)
    assert [p.name for p in target.parent.iterdir()] == ["variant"]  # no staging folder left


def test_a_failed_build_leaves_nothing_behind(tmp_path: Path) -> None:
    def build(staging: Path) -> None:
        (staging / "half-written").write_text("x")
        raise RuntimeError("converter crashed")

    target = tmp_path / "variant"
    with pytest.raises(RuntimeError, match="converter crashed"):
        cached_export(target, build, complete)
    assert list(tmp_path.iterdir()) == []


def test_an_incomplete_target_is_replaced(tmp_path: Path) -> None:
    target = tmp_path / "variant"
    target.mkdir()
    (target / "stale").write_text("from a crash")
    cached_export(target, lambda staging: (staging / "done").write_text("ok"), complete)
    assert sorted(p.name for p in target.iterdir()) == ["done"]
