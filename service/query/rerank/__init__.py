"""Second-stage reranking of retrieved candidates."""

from service.query.rerank.base import Reranker, RerankerUnavailable
from service.query.rerank.factory import RERANKER_OFF, load_reranker, reranker_configured

__all__ = ["RERANKER_OFF", "Reranker", "RerankerUnavailable", "load_reranker", "reranker_configured"]
