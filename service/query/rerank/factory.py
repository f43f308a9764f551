"""How the configured reranker is chosen and loaded.

Loading never raises and never waits on the network: it returns the reranker or ``None`` with
a status line the service can show (``ok: ...``, ``disabled``, ``unavailable: <reason>``).
"""

from __future__ import annotations

import logging

from index.errors import ModelUnavailable
from index.settings import Settings
from ingest.runtime.device import pick_backend, pick_device
from ingest.runtime.export_cache import cache_root
from ingest.runtime.resolve import RERANKER_MODEL, resolve_model
from service.query.rerank.base import Reranker

log = logging.getLogger(__name__)

LEXICAL_MODEL = "lexical"  # reranker_model value that selects the model-free token-overlap reranker


RERANKER_OFF = "off, set GROUNDWORK_RERANKER_MODEL to enable"


def reranker_configured(settings: Settings) -> bool:
    """Whether a reranker is asked for: only then is its absence a problem worth reporting."""
    return settings.reranker_enabled and bool(settings.reranker_model.strip())


def load_reranker(settings: Settings) -> tuple[Reranker | None, str]:
    """``(reranker, "ok: <name>")``, ``(None, "disabled")``, ``(None, RERANKER_OFF)`` when no
    model is configured (the default), or ``(None, "unavailable: <why>")``."""
    if not settings.reranker_enabled:
        return None, "disabled"
    model = settings.reranker_model.strip()
    if not model:
        return None, RERANKER_OFF
    if model == LEXICAL_MODEL:
        from service.query.rerank.lexical import LexicalReranker

        reranker: Reranker = LexicalReranker()
        return reranker, f"ok: {reranker.name}"
    try:
        resolve_model(model, RERANKER_MODEL)  # a missing model is reported before torch is even imported
        # The reranker shares the embedder's device setting: both default to CUDA when present.
        device = pick_device(settings.embedding_device)
        if pick_backend(settings.reranker_backend, device) == "openvino":
            from service.query.rerank.cross_encoder_openvino import OpenVinoCrossEncoderReranker

            reranker = OpenVinoCrossEncoderReranker.load(model, cache_dir=cache_root(settings), threads=settings.reranker_threads)
        else:
            from service.query.rerank.cross_encoder import CrossEncoderReranker

            reranker = CrossEncoderReranker.load(model, device=device)
    except ModelUnavailable as error:
        log.warning("reranker unavailable: %s", error)
        return None, f"unavailable: {error}"
    except Exception as error:  # a broken model directory must not take search down
        log.exception("loading reranker %r failed", model)
        return None, f"unavailable: loading {model!r} failed: {type(error).__name__}: {error}"
    return reranker, f"ok: {reranker.name}"
