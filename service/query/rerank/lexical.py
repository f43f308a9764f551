"""A model-free reranker: BM25-style term matching, scored one text at a time.

It needs no weights, so it works everywhere: it is the stand-in when no cross-encoder is
installed (``reranker_model = "lexical"``). Each text is scored on its own, against a fixed
typical length instead of the candidates' average, so a text's score does not depend on which
other candidates came with it, the same property a cross-encoder has.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from service.query.citations import content_terms

K1 = 1.2
B = 0.75
TYPICAL_TERMS = 120  # content terms in a typical chunk, the length BM25 normalizes against


class LexicalReranker:
    name = "lexical"

    def score(self, query_terms: set[str], text: str) -> float:
        counts = Counter(content_terms(text))
        length_norm = 1 - B + B * sum(counts.values()) / TYPICAL_TERMS
        total = 0.0
        for term in query_terms:
            count = counts.get(term, 0)
            if count:
                total += count * (K1 + 1) / (count + K1 * length_norm)
        return total

    def rerank(self, query: str, texts: Sequence[str]) -> np.ndarray:
        query_terms = set(content_terms(query))
        return np.array([self.score(query_terms, text) for text in texts], dtype=np.float32).reshape(len(texts))
