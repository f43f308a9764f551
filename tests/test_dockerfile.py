"""The image recipe stays in step with the code, checked without a Docker daemon: every COPY
source exists, the command is a console script of the package, the apt packages setup.sh
installs are in the image, the model export cache is warmed with importable code, the service
runs as an unprivileged user, and the healthcheck asks a route the service has."""

from __future__ import annotations

import ast
import importlib
import re
import shlex
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction: comments dropped, continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        whole = pending + stripped
        pending = ""
        keyword, _, rest = whole.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return out


@pytest.fixture(scope="module")
def recipe() -> list[tuple[str, str]]:
    return instructions((REPO / "Dockerfile").read_text(encoding="utf-8"))


def _all(recipe, keyword: str) -> list[str]:
    return [args for kw, args in recipe if kw == keyword]


def test_parser_joins_continuations_and_drops_comments():
    parsed = instructions("# c\nFROM x\nRUN a \\\n  # inner\n  && b\nUSER u\n")
    assert parsed == [("FROM", "x"), ("RUN", "a && b"), ("USER", "u")]


def test_every_copy_source_exists(recipe):
    copies = _all(recipe, "COPY")
    assert copies
    for args in copies:
        parts = [p for p in shlex.split(args) if not p.startswith("--")]
        assert len(parts) >= 2, args
        for source in parts[:-1]:
            assert (REPO / source).exists(), f"COPY {source}: not in the build context"


def test_command_is_a_console_script_of_the_package(recipe):
    commands = _all(recipe, "CMD") + _all(recipe, "ENTRYPOINT")
    assert commands, "no CMD or ENTRYPOINT"
    program = ast.literal_eval(commands[-1])[0]  # exec form
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert program in scripts, f"{program} is not a console script in pyproject.toml"
    module, _, function = scripts[program].partition(":")
    assert callable(getattr(importlib.import_module(module), function))
    copied = {shlex.split(args)[-2] for args in _all(recipe, "COPY")}
    assert module.split(".")[0] in copied, f"the package {module.split('.')[0]} is not copied into the image"


def test_apt_packages_of_setup_are_in_the_image(recipe):
    """setup.sh installs LibreOffice (DOC/PPT) and Tesseract's models (OCR) on a developer
    machine; the image needs the same."""
    def packages(text: str) -> set[str]:
        found: set[str] = set()
        for match in re.finditer(r"apt-get install ([^\n;&|)]*)", text.replace("\\\n", " ")):
            found |= {w for w in match.group(1).split() if not w.startswith("-") and not w.startswith(">")}
        return found

    # The headless browser that drives the console's tests is no part of the service.
    wanted = packages((REPO / "scripts" / "setup.sh").read_text()) - {"chromium", "chromium-driver"}
    image = packages(" ; ".join(_all(recipe, "RUN")))
    assert {"libreoffice-writer-nogui", "libreoffice-impress-nogui", "tesseract-ocr-eng", "tesseract-ocr-osd"} <= wanted
    assert wanted <= image, f"missing from the image: {sorted(wanted - image)}"


def test_model_export_cache_is_warmed_at_build_time(recipe):
    env = " ".join(_all(recipe, "ENV"))
    # Offline mode needs no ENV line: the product sets it itself (ingest/runtime/offline.py).
    assert "GROUNDWORK_MODEL_CACHE_DIR=" in env
    warm = [args for args in _all(recipe, "RUN") if "python -c" in args and "embed_documents" in args]
    assert warm, "no RUN warms the embedder's export cache"
    code = shlex.split(warm[0].split("python -c", 1)[1].split("&&")[0])[0]
    tree = ast.parse(code)
    for node in ast.walk(tree):  # every name it imports exists in this code base
        if isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module}.{alias.name}"
    from ingest.embedder_st import SentenceTransformerEmbedder

    assert hasattr(SentenceTransformerEmbedder, "from_settings") and hasattr(SentenceTransformerEmbedder, "embed_documents")


def test_runs_as_an_unprivileged_user(recipe):
    users = [args for kw, args in recipe if kw == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the service must not run as root"
    last_user = max(i for i, (kw, _) in enumerate(recipe) if kw == "USER")
    last_command = max(i for i, (kw, _) in enumerate(recipe) if kw in ("CMD", "ENTRYPOINT"))
    assert last_user < last_command
    assert any("useradd" in args and users[-1].split(":")[0] in args for args in _all(recipe, "RUN"))


def test_healthcheck_asks_the_health_route(recipe):
    from service.http.routes_health import health
    from service.http.services import API_PREFIX

    checks = _all(recipe, "HEALTHCHECK")
    assert len(checks) == 1 and "NONE" not in checks[0].upper().split()
    url = re.search(r"https?://[^'\" ]+", checks[0])
    assert url and url.group(0).endswith(API_PREFIX + "/health") and "/health" in health.paths
    assert "--timeout=" in checks[0]
