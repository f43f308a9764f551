"""Second-stage reranking of retrieved candidates."""

from service.query.rerank.base import Reranker, RerankerUnavailable
from service.query.rerank.factory import load_reranker

__all__ = ["Reranker", "RerankerUnavailable", "load_reranker"]
