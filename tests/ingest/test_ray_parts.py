"""The Ray runner's pure parts, and its failure without Ray: no cluster needed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.ray_ingest import RayUnavailable, split_by_length, worker_settings


@given(st.lists(st.text(max_size=40), max_size=60), st.integers(min_value=1, max_value=8))
def test_shares_keep_every_text_once_in_order(texts, parts):
    shares = split_by_length(texts, parts)
    assert [t for share in shares for t in share] == texts
    assert 1 <= len(shares) <= max(parts, 1)


def test_shares_are_balanced_by_length():
    shares = split_by_length(["x" * 100] * 40, 4)
    assert [len(s) for s in shares] == [10, 10, 10, 10]


def test_worker_settings_carry_no_database_url_or_secret(tmp_path):
    from index.settings import Settings

    values = worker_settings(Settings(data_dir=tmp_path, database_url="postgresql+psycopg://gw@127.0.0.1/x", openai_api_key="sk-x"))
    assert "database_url" not in values and "openai_api_key" not in values
    assert Path(values["model_cache_dir"]).is_absolute()
    Settings(**values)  # a worker can build its settings from them


def test_without_ray_the_flag_fails_at_once_saying_what_to_install(monkeypatch, tmp_path, capsys):
    from service.cli import EXIT_FAILED, main

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    from ingest.ray_ingest import require_ray

    with pytest.raises(RayUnavailable, match=r"\[ray\] extra"):
        require_ray()
    (tmp_path / "a.txt").write_text("some text")
    code = main(["--data-dir", str(tmp_path / "data"), "ingest", str(tmp_path / "a.txt"), "--ray", "--no-progress"])
    assert code == EXIT_FAILED
    assert "[ray] extra" in capsys.readouterr().err
