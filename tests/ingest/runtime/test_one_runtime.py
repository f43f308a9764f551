"""Every model is found, placed and kept offline by ``ingest.runtime``, and only there: one
resolver, one device picker, one place setting the offline environment."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SERVICE_CODE = ("index", "ingest", "service")
EVERYTHING_RUN = (*SERVICE_CODE, "bench", "scripts", "Dockerfile")  # what sets up or runs the product

# (text, the one file allowed to contain it, where to look)
ONE_HOME = [
    ("HF_HUB_OFFLINE", "ingest/runtime/offline.py", EVERYTHING_RUN),
    ("TRANSFORMERS_OFFLINE", "ingest/runtime/offline.py", EVERYTHING_RUN),
    ("try_to_load_from_cache", "ingest/runtime/resolve.py", SERVICE_CODE),
    ("cuda.is_available", "ingest/runtime/device.py", SERVICE_CODE),
    ("convert_model(", "ingest/runtime/openvino.py", SERVICE_CODE),
    ("compile_model(", "ingest/runtime/openvino.py", SERVICE_CODE),
]


def _files(places: tuple[str, ...]) -> list[Path]:
    found: list[Path] = []
    for place in places:
        path = REPO / place
        found.extend([path] if path.is_file() else [p for p in path.rglob("*") if p.suffix in (".py", ".sh")])
    return found


@pytest.mark.parametrize(("text", "home", "places"), ONE_HOME, ids=[text for text, _, _ in ONE_HOME])
def test_one_home(text: str, home: str, places: tuple[str, ...]) -> None:
    found = sorted(str(p.relative_to(REPO)) for p in _files(places) if text in p.read_text(encoding="utf-8", errors="replace"))
    assert found == [home]
