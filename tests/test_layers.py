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
                       "service.auth"]),
    ("service.engine", ["service.http", "service.cli", "service.server"]),
    ("service.reindexer", ["service.http", "service.engine", "service.cli", "service.server"]),
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
