"""A small in-memory BM25 index over what names each document (title, context line, file name).

A question that names a company, product, form or period ("NVIDIA's total net sales in the
quarter ended July 2023") is about one or a few documents; passages from other documents that
share its wording ("total net sales") are not evidence. Chunk retrieval cannot see this on its
own, so this index scores documents by how well the question's words name them; retrieval adds
that score to each chunk of the document (``service.query.ranking``).

Built from the catalog's document attributes and rebuilt when the catalog changes; a few
thousand short descriptions take milliseconds. Scoring is vectorised per query term.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

_WORD = re.compile(r"[^\W_]+(?:[&'][^\W_]+)*")
_PARTS = re.compile(r"[^\W\d_]+|\d+")
# Words that name nothing: question words and the commonest function words.
STOP_WORDS = frozenset(
    "a an and are as at be by for from has have how in is it its of on or that the this to was were what when where "
    "which who whom why will with does did do than then there their they these those into over under per vs via".split()
)


def terms(text: str) -> list[str]:
    """Words of ``text``, lowercased; a word mixing letters and digits also counts by its parts
    ("FY2018" -> fy2018, fy, 2018; "10-Q" -> 10, q), so "FY2018" finds "fiscal year 2018 (FY2018)"
    and "10Q" finds "Form 10-Q". Possessives are dropped ("NVIDIA's" -> nvidia)."""
    out: list[str] = []
    for match in _WORD.finditer(text.casefold()):
        word = match.group(0)
        if word.endswith("'s"):
            word = word[:-2]
        word = word.replace("'", "")
        if not word or word in STOP_WORDS:
            continue
        out.append(word)
        parts = _PARTS.findall(word)
        if len(parts) > 1:
            out.extend(p for p in parts if p not in STOP_WORDS)
    return out


_SENTENCE_ENDS = frozenset(".!?:;")


def name_terms(text: str) -> list[str]:
    """``terms`` of the words written as names: with a digit ("3M", "FY2018", "10-K", "2023") or
    a capital letter anywhere but the first letter of a sentence ("NVIDIA", "Best Buy", "eBay").

    Questions name companies, products, forms and periods this way; the rest of a question
    ("total net sales", "inhibits tumour growth") is what a passage should say, which chunk
    retrieval already matches. Matching those words against titles too counts them twice: on
    abstracts, whose titles restate their claims, that cost ranking quality (SciFact).
    """
    kept: list[str] = []
    before, end = ".", 0  # the last non-space character before the word; text starts a sentence
    for match in _WORD.finditer(text):
        gap = text[end : match.start()].rstrip()
        if gap:
            before = gap[-1]
        word, end = match.group(0), match.end()
        body = word[1:] if before in _SENTENCE_ENDS else word
        if any(ch.isdigit() for ch in word) or any(ch.isupper() for ch in body):
            kept.append(word)
        before = word[-1]
    return terms(" ".join(kept))


@dataclass(frozen=True)
class _Postings:
    rows: np.ndarray  # document rows holding the term
    weights: np.ndarray  # BM25 term-frequency part for each, idf applied at query time
    idf: float


class DocumentIndex:
    """BM25 (k1, b) over one short description per document."""

    def __init__(self, descriptions: Iterable[tuple[int, str]], *, k1: float = 1.2, b: float = 0.5):
        ids: list[int] = []
        counts: list[dict[str, int]] = []
        lengths: list[int] = []
        for doc_id, text in descriptions:
            words = terms(text or "")
            if not words:
                continue
            bag: dict[str, int] = {}
            for w in words:
                bag[w] = bag.get(w, 0) + 1
            ids.append(int(doc_id))
            counts.append(bag)
            lengths.append(len(words))
        self.document_ids = np.asarray(ids, dtype=np.int64)
        n = len(ids)
        average = (sum(lengths) / n) if n else 1.0
        by_term: dict[str, tuple[list[int], list[float]]] = {}
        for row, (bag, length) in enumerate(zip(counts, lengths)):
            norm = k1 * (1 - b + b * length / average)
            for term, tf in bag.items():
                rows, weights = by_term.setdefault(term, ([], []))
                rows.append(row)
                weights.append(tf * (k1 + 1) / (tf + norm))
        self._postings = {
            term: _Postings(np.asarray(rows, dtype=np.int64), np.asarray(weights, dtype=np.float64),
                            math.log(1 + (n - len(rows) + 0.5) / (len(rows) + 0.5)))
            for term, (rows, weights) in by_term.items()
        }

    def __len__(self) -> int:
        return len(self.document_ids)

    def scores(self, query: str, *, floor: float = 0.0, allowed: np.ndarray | None = None,
               max_documents: int = 0, names_only: bool = False) -> dict[int, float]:
        """Document id -> score in (0, 1]: BM25 divided by the best document's, keeping those
        at or above ``floor`` of the best. Empty when no document's description matches, or
        when more than ``max_documents`` (if set) pass the floor: a name picks out a few
        documents; words that match many descriptions name none of them (a claim whose words
        recur in paper titles, a bare year), and boosting them all is noise.

        ``names_only`` scores only the words ``name_terms`` keeps.

        ``allowed`` (sorted document ids) limits scoring to those documents, so that the
        normalisation depends on nothing the caller may not see.
        """
        if not len(self.document_ids):
            return {}
        total = np.zeros(len(self.document_ids), dtype=np.float64)
        matched = False
        for term in dict.fromkeys(name_terms(query) if names_only else terms(query)):  # each distinct word once
            postings = self._postings.get(term)
            if postings is None:
                continue
            np.add.at(total, postings.rows, postings.weights * postings.idf)
            matched = True
        if not matched:
            return {}
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=np.int64)
            if len(allowed) == 0:
                return {}
            at = np.minimum(np.searchsorted(allowed, self.document_ids), len(allowed) - 1)
            total[allowed[at] != self.document_ids] = 0.0
        best = float(total.max())
        if best <= 0:
            return {}
        keep = np.flatnonzero(total >= max(floor, 1e-9) * best)
        if max_documents and len(keep) > max_documents:
            return {}
        return {int(self.document_ids[i]): float(total[i] / best) for i in keep}
