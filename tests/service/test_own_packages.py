"""index, ingest and service are top-level packages: another package of one of those names
must stop the CLI at once with a message saying which and where, not fail later on."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from service.own_packages import DISTRIBUTION, foreign_packages

REPO = Path(__file__).resolve().parents[2]


def test_this_installation_is_whole():
    assert foreign_packages() == []


def test_a_shadowing_package_stops_the_cli_with_a_clear_message(tmp_path):
    """A folder named index (here the working directory, first on the path) shadows ours."""
    shadow = tmp_path / "elsewhere"
    (shadow / "index").mkdir(parents=True)
    (shadow / "index" / "__init__.py").write_text('"""Some other project\'s index package."""\n')
    env = os.environ | {"PYTHONPATH": str(REPO), "GROUNDWORK_DATA_DIR": str(tmp_path / "data")}
    run = subprocess.run([sys.executable, "-m", "service.cli", "stats"], cwd=shadow, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 3, run.stderr
    assert f"'index' is imported from {shadow / 'index'}, not from {REPO / 'index'}" in run.stderr
    assert "uninstall or rename" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "data").exists()  # stopped before touching anything


def test_an_overwritten_package_is_caught(monkeypatch):
    import index

    monkeypatch.delattr(index, "__distribution__")
    assert foreign_packages() == [f"'index' in {REPO / 'index'} has been overwritten by another distribution's package of that name"]


def test_a_namespace_package_is_caught(monkeypatch, tmp_path):
    namespace = types.ModuleType("ingest")
    namespace.__file__ = None
    namespace.__path__ = [str(tmp_path / "ingest")]
    monkeypatch.setitem(sys.modules, "ingest", namespace)
    problems = foreign_packages()
    assert len(problems) == 1 and problems[0].startswith("'ingest' is a namespace package over")


@pytest.mark.parametrize("package", ["index", "ingest", "service"])
def test_each_package_marks_itself(package):
    module = __import__(package)
    assert module.__distribution__ == DISTRIBUTION


@pytest.mark.parametrize("module", ["service/cli.py", "service/own_packages.py"])
def test_the_check_runs_before_index_or_ingest_is_imported(module):
    tree = ast.parse((REPO / module).read_text(encoding="utf-8"))
    top_level = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    names = [alias.name for node in top_level if isinstance(node, ast.Import) for alias in node.names]
    names += [node.module for node in top_level if isinstance(node, ast.ImportFrom) and node.module]
    assert not [name for name in names if name.split(".")[0] in ("index", "ingest")]
