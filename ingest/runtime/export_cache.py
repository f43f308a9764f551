"""Exported model graphs, built once per source fingerprint and published atomically.

An export lives in ``<cache>/<fingerprint of the source model's files>/<variant>``: new
weights get a new folder, and a recipe change is caught by each exporter's ``complete`` check.

Several processes (the service, an ingest job, a test run) may start at once on a cold cache;
each builds into its own staging folder beside the target and renames it into place, so a
reader only ever sees a complete export, and a crash mid-export leaves nothing it would trust.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.runtime.fingerprint import fingerprint_model_dir

if TYPE_CHECKING:
    from index.settings import Settings


def cache_root(settings: Settings) -> Path:
    """Where exports are kept: ``model_cache_dir``, else ``<data_dir>/models``."""
    return settings.model_cache_dir or settings.data_dir / "models"


def export_dir(cache: Path, model_dir: Path, variant: str) -> Path:
    """The folder for ``variant`` (say ``openvino-int8``) of the model in ``model_dir``."""
    return Path(cache) / fingerprint_model_dir(model_dir) / variant


def cached_export(target: Path, build: Callable[[Path], None], complete: Callable[[Path], bool]) -> Path:
    """``target`` when ``complete(target)``, else ``build(staging)`` and rename it to ``target``."""
    if complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(staging)
        if target.exists():  # a concurrent export that finished first, or a stale one
            if complete(target):
                return target
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(staging, target)
        except OSError:  # lost a race with another process exporting the same model
            if not complete(target):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
