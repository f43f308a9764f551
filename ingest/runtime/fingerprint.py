"""A model directory's fingerprint: what its outputs depend on, as one sha256.

It names a model's exports in the export cache, and it is the embedder's fingerprint that
indexes record, so an index built with other weights is refused rather than searched.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

# Files that never influence a model's outputs; hashing them would make the fingerprint
# change when documentation is edited or an exported copy is added beside the weights.
_FINGERPRINT_SKIP_DIRS = frozenset({"onnx", "openvino", ".git", ".cache"})
_FINGERPRINT_SKIP_SUFFIXES = (".md", ".onnx", ".onnx_data", ".xml", ".lock")


def fingerprint_model_dir(directory: Path) -> str:
    """sha256 over (relative path, sha256) of every output-relevant file under ``directory``.

    Cached per process on the files' sizes and mtimes, since hashing a large model's weights
    takes a noticeable fraction of a second per gigabyte.
    """
    directory = Path(directory).resolve()
    files = sorted(_fingerprinted_files(directory))
    if not files:
        raise FileNotFoundError(f"no model files under {directory}")
    stats = tuple((rel, (directory / rel).stat().st_size, (directory / rel).stat().st_mtime_ns) for rel in files)
    return _fingerprint_cached(str(directory), stats)


@lru_cache(maxsize=32)
def _fingerprint_cached(directory: str, stats: tuple[tuple[str, int, int], ...]) -> str:
    outer = hashlib.sha256()
    for rel, _size, _mtime in stats:
        outer.update(rel.encode("utf-8") + b"\0" + _sha256_file(Path(directory) / rel).encode("ascii") + b"\n")
    return outer.hexdigest()


def _fingerprinted_files(directory: Path) -> list[str]:
    found: list[str] = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = [d for d in dirs if d not in _FINGERPRINT_SKIP_DIRS and not d.startswith(".")]
        for name in names:
            if name.startswith(".") or name.lower().endswith(_FINGERPRINT_SKIP_SUFFIXES):
                continue
            found.append(Path(root, name).relative_to(directory).as_posix())
    return found


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
