"""A small in-memory BM25 index over what names each document (title, context line, file name).

A question that names a company, product, form or period ("NVIDIA's total net sales in the
quarter ended July 2023") is about one or a few documents; passages from other documents that
share its wording ("total net sales") are not evidence. Chunk retrieval cannot see this on its
own, so this index scores documents by how well the question's words name them; retrieval adds
that score to each chunk of the document (``service.query.ranking``).

Built from the catalog's document attributes and rebuilt when the catalog changes, from terms
remembered per document (``DocumentTerms``); scoring is vectorised per query term.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable

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


# A word that names a period or a form, not whose document it is: a year or other number,
# "FY2018", "Q2", "2Q", "H1", "10-K", "8-K".
# "FY 2023" and "10-K" come as two words each; "FY", "K" and "Q" alone are such words too.
_PERIOD_WORD = re.compile(r"\d+|(?:fy|cy)'?\d{2,4}|q[1-4]|[1-4]q|h[12]|\d{1,2}[kq]|fy|cy|ytd|q|h|k", re.IGNORECASE)


def period_terms(text: str) -> set[str]:
    """The ``terms`` of the words of ``text`` that name a period or form ("FY2023" -> fy2023,
    fy, 2023; "Q2" -> q2, q, 2): they pick among the documents a name picks, and name none
    on their own, since every company has a 2023."""
    return {term for match in _WORD.finditer(text) if _PERIOD_WORD.fullmatch(match.group(0)) for term in terms(match.group(0))}


class DocumentTerms:
    """Each document's terms as ids in one vocabulary that only grows, remembered with the
    description they came from, so a rebuild after a change tokenizes only what changed.

    At 220k documents tokenizing every description took 2.1 s of a 6.5 s rebuild, and the
    catalog rebuilds the index after every change past ``document_index_sync_max``
    documents, on a thread that holds the interpreter lock: searches ran 10x slower meanwhile
    (``bench/scale.py``). One per catalog. An index built earlier keeps answering while a
    later build adds words: ids are never reused, and words newer than an index are unknown
    to it.
    """

    def __init__(self) -> None:
        self.vocabulary: dict[str, int] = {}
        self._by_document: dict[int, tuple[str, np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()  # two builds at once must not give two words one id

    def of(self, doc_id: int, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(term ids, their counts) of one description."""
        known = self._by_document.get(doc_id)
        if known is not None and known[0] == text:
            return known[1], known[2]
        bag: dict[int, int] = {}
        vocabulary = self.vocabulary
        words = terms(text)
        with self._lock:
            for word in words:
                term_id = vocabulary.setdefault(word, len(vocabulary))
                bag[term_id] = bag.get(term_id, 0) + 1
        ids = np.fromiter(bag.keys(), dtype=np.int64, count=len(bag))
        counts = np.fromiter(bag.values(), dtype=np.float64, count=len(bag))
        self._by_document[doc_id] = (text, ids, counts)
        return ids, counts

    def keep_only(self, doc_ids: Iterable[int]) -> None:
        """Forget documents no longer described (deleted ones)."""
        keep = set(doc_ids)
        with self._lock:
            self._by_document = {d: v for d, v in self._by_document.items() if d in keep}


class DocumentIndex:
    """BM25 (k1, b) over one short description per document.

    Postings live in three arrays sorted by term id (compressed rows): built with a few numpy
    calls instead of a Python loop per (document, term), which took most of a rebuild at
    200k documents.
    """

    def __init__(self, descriptions: Iterable[tuple[int, str]], *, k1: float = 1.2, b: float = 0.5,
                 cache: DocumentTerms | None = None):
        cache = cache if cache is not None else DocumentTerms()
        ids: list[int] = []
        term_parts: list[np.ndarray] = []
        count_parts: list[np.ndarray] = []
        for doc_id, text in descriptions:
            term_ids, counts = cache.of(int(doc_id), text or "")
            if not len(term_ids):
                continue
            ids.append(int(doc_id))
            term_parts.append(term_ids)
            count_parts.append(counts)
        self.document_ids = np.asarray(ids, dtype=np.int64)
        self._vocabulary = cache.vocabulary
        n = len(ids)
        vocabulary_size = len(cache.vocabulary)
        if not n:
            self._offsets = np.zeros(vocabulary_size + 1, dtype=np.int64)
            self._rows = np.zeros(0, dtype=np.int64)
            self._weights = np.zeros(0, dtype=np.float64)
            self._idf = np.zeros(vocabulary_size, dtype=np.float64)
            return
        per_document = np.fromiter((len(part) for part in term_parts), dtype=np.int64, count=n)
        term_ids = np.concatenate(term_parts)
        counts = np.concatenate(count_parts)
        rows = np.repeat(np.arange(n, dtype=np.int64), per_document)
        lengths = np.add.reduceat(counts, np.concatenate([[0], np.cumsum(per_document)[:-1]]))
        norm = k1 * (1 - b + b * lengths / lengths.mean())
        weights = counts * (k1 + 1) / (counts + norm[rows])
        order = np.argsort(term_ids, kind="stable")  # rows stay ascending within a term
        self._rows, self._weights = rows[order], weights[order]
        frequency = np.bincount(term_ids, minlength=vocabulary_size)
        self._offsets = np.concatenate([[0], np.cumsum(frequency)])
        self._idf = np.log(1 + (n - frequency + 0.5) / (frequency + 0.5))

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
        named = np.zeros(len(self.document_ids), dtype=bool)  # matched by a word that is no period
        matched = False
        vocabulary, offsets = self._vocabulary, self._offsets
        periods = period_terms(query)
        for term in dict.fromkeys(name_terms(query) if names_only else terms(query)):  # each distinct word once
            term_id = vocabulary.get(term)
            if term_id is None or term_id + 1 >= len(offsets):  # unknown, or new since this build
                continue
            start, end = offsets[term_id], offsets[term_id + 1]
            if start == end:
                continue
            np.add.at(total, self._rows[start:end], self._weights[start:end] * self._idf[term_id])
            if term not in periods:
                named[self._rows[start:end]] = True
            matched = True
        if not matched:
            return {}
        if named.any():
            # "JnJ ... Q2 of FY2023": the name picks JnJ's documents, the periods rank them; a
            # filing of another company that matches "2023" and "Q2" is not named by them.
            total[~named] = 0.0
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
