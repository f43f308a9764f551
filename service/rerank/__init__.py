"""Second-stage reranking of retrieved candidates."""

from service.rerank.base import Reranker, load_reranker

__all__ = ["Reranker", "load_reranker"]
