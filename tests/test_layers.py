"""The import graph keeps its shape: service -> ingest -> index, and inside service the front
doors (cli, server, http) -> engine -> query, never back. Base modules never import their
implementations (factories do), so no import cycles. Imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("index", "ingest", "service")


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


MODULES = {_module_name(p): _imports(p) for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))}


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


# (importer prefix, prefixes it must never import)
RULES = [
    ("index", ["ingest", "service"]),
    ("ingest", ["service"]),
    ("service.query", ["service.http", "service.engine", "service.cli", "service.server", "service.reindexer", "service.jobs",
                       "service.auth", "service.follower"]),
    ("service.engine", ["service.http", "service.cli", "service.server"]),
    ("service.reindexer", ["service.http", "service.engine", "service.cli", "service.server"]),
    ("service.follower", ["service.http", "service.engine", "service.cli", "service.server"]),
    ("service.jobs", ["service.http", "service.engine", "service.cli", "service.server"]),
    ("service.quality_gate", ["service.http", "service.engine", "service.cli", "service.server", "service.reindexer"]),
    ("service.auth", ["service.http", "service.engine", "service.cli", "service.server"]),
    ("service.http", ["service.cli", "service.server"]),
    ("service.query.rerank.base", ["service.query.rerank.cross_encoder", "service.query.rerank.cross_encoder_openvino",
                                   "service.query.rerank.lexical", "service.query.rerank.factory"]),
    ("service.query.generation.base", ["service.query.generation.extractive", "service.query.generation.openai_compat"]),
    ("index.keyword", ["index.keyword_tantivy", "index.keyword_bm25s", "index.keyword_factory"]),
]


@pytest.mark.parametrize(("importer", "forbidden"), RULES, ids=[rule[0] for rule in RULES])
def test_imports_point_one_way(importer, forbidden):
    assert any(_within(module, importer) for module in MODULES), f"no module {importer}: update the rule"
    wrong = sorted(
        f"{module} imports {name}"
        for module, names in MODULES.items() if _within(module, importer)
        for name in names if any(_within(name, f) for f in forbidden)
    )
    assert not wrong, wrong


# --- the database has one home --------------------------------------------------------------------

SQL_LIBRARIES = ("sqlalchemy", "sqlmodel")
SQL_CALLS = {"Session", "select"}  # litestar has its own delete, so the imports catch the rest


def _sql_use(path: Path) -> list[str]:
    source = path.read_text(encoding="utf-8")
    found = [f"Session( at line {n}" for n, line in enumerate(source.splitlines(), 1) if "Session(" in line]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"imports {a.name}" for a in node.names if a.name.split(".")[0] in SQL_LIBRARIES]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in SQL_LIBRARIES:
            found.append(f"imports from {node.module}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in SQL_CALLS:
            found.append(f"calls {node.func.id}() at line {node.lineno}")  # a bare select(...), not a method named select
    return found


def test_no_sql_in_service():
    """SQL lives in index/ (Store and its data-access classes: JobStore, KeyStore,
    IdempotencyStore); service/ only calls them."""
    wrong = {str(p.relative_to(REPO)): use for p in sorted((REPO / "service").rglob("*.py")) if (use := _sql_use(p))}
    assert not wrong, wrong


# --- the engine owns index catch-up ---------------------------------------------------------------


def test_only_the_engine_starts_index_catch_up():
    """``IndexSet.catch_up`` is called by the engine's ``refresh_indexes`` alone, and that by
    the engine and the follower it owns; the front doors (cli, server, http, beir) ask the
    engine for an ingest, a follower or a fixed corpus instead."""
    callers: dict[str, set[str]] = {"catch_up": set(), "refresh_indexes": set()}
    for package in (*PACKAGES, "bench"):
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in callers:
                    callers[node.func.attr].add(str(path.relative_to(REPO)))
    assert callers["catch_up"] == {"index/indexset.py", "service/engine.py"}
    assert callers["refresh_indexes"] == {"service/engine.py", "service/follower.py"}
