"""Answers made only of sentences quoted from the passages: no language model involved.

Every sentence of the answer is a verbatim quote, so every claim is checkable by construction;
what can go wrong is choosing a sentence that does not answer the question. The support score
guards that: the IDF-weighted share of the question's content terms a sentence contains (a
term found only in the passage's headings counts half), scaled slightly by the passage's rank
and, when an embedder is given, blended with the question-sentence cosine. A question whose
terms the passages do not contain gets no sentence above the threshold and is refused.
Sentences addressed to the answering system rather than to a reader (``query.injection``)
are never candidates, and the answer's notes say which sources hold them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from index.settings import Settings
from service.query.citations import (
    ContextSentence,
    ContextSentences,
    citation_for,
    content_terms,
    display_text,
    strip_markers,
    words,
)
from service.query.generation.base import refusal_answer
from service.query.injection import addresses_the_system, lead_in, source_note
from service.query.types import Answer, Hit

log = logging.getLogger(__name__)

Embed = Callable[[list[str]], np.ndarray]

RANK_WEIGHT = 0.1       # the last passage's sentences lose at most this share of their score
EMBED_WEIGHT = 0.4      # share of the cosine in the blended score when an embedder is given
RELATIVE_FLOOR = 0.5    # a sentence must score at least this share of the best one
DUPLICATE_JACCARD = 0.8  # sentences sharing this much of their words say the same thing
MIN_SENTENCE_WORDS = 3
FULL_SENTENCE_WORDS = 6  # shorter fragments (agenda items, list labels) score proportionally less
CODE_SYMBOL_SHARE = 0.06  # commands and config lines are evidence, rarely an answer: score them half
_CODE_SYMBOLS = frozenset("=/\\@$|<>{}_`~;")


@dataclass(frozen=True)
class ScoredSentence:
    sentence: ContextSentence
    score: float


def _rank_factor(rank: int) -> float:
    return 1.0 - RANK_WEIGHT * rank / (rank + 1)


def _shape_factor(text: str) -> float:
    factor = min(1.0, (len(words(text)) + 3) / (FULL_SENTENCE_WORDS + 3))
    symbols = sum(char in _CODE_SYMBOLS for char in text)
    if "```" in text or symbols > CODE_SYMBOL_SHARE * len(text):
        factor *= 0.5
    return factor


def _is_candidate(sentence: ContextSentence, question_terms: set[str], headings: set[str]) -> bool:
    """Questions, headings, fragments and restatements of the question answer nothing."""
    text = sentence.text.rstrip()
    if text.endswith("?") or len(words(text)) < MIN_SENTENCE_WORDS:
        return False
    if " ".join(words(text)) in headings:
        return False
    return bool(sentence.terms - question_terms)


def _cosines(embed: Embed, question: str, texts: list[str]) -> np.ndarray:
    vectors = np.asarray(embed([question, *texts]), dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.maximum(norms, 1e-12)
    return np.clip(vectors[1:] @ vectors[0], 0.0, 1.0)


def _near_duplicate(a: str, b: str) -> bool:
    set_a, set_b = set(words(a)), set(words(b))
    if not set_a or not set_b:
        return False
    return len(set_a & set_b) / len(set_a | set_b) >= DUPLICATE_JACCARD


class ExtractiveGenerator:
    """Answers with the best-supported sentences of the top passages, each cited ``[n]``."""

    name = "extractive"

    def __init__(
        self,
        *,
        max_sentences: int = 4,
        min_support: float = 0.35,
        context_chunks: int = 6,
        embed: Embed | None = None,
    ):
        self.max_sentences = max_sentences
        self.min_support = min_support
        self.context_chunks = context_chunks
        self.embed = embed

    @classmethod
    def from_settings(cls, settings: Settings, embed: Embed | None = None) -> ExtractiveGenerator:
        return cls(
            max_sentences=settings.answer_max_sentences,
            min_support=settings.answer_min_support,
            context_chunks=settings.context_chunks,
            embed=embed,
        )

    def score(self, question: str, passages: Sequence[Hit]) -> tuple[list[ScoredSentence], list[str]]:
        """Every sentence of the context with its support for the question, best first."""
        context = ContextSentences(passages[: self.context_chunks])
        question_terms = set(content_terms(question))
        headings = [
            {" ".join(words(h)) for h in [hit.title or "", *hit.heading_path] if h} for hit in context.passages
        ]
        # Text addressed to the answering system ("when anyone asks ..., answer X") is data:
        # never an answer sentence, and the answer says the sources hold some.
        addressed = {s for s in context.sentences
                     if addresses_the_system(s.text, lead_in(context.texts[s.passage], s.start, s.end))}
        candidates = [
            s for s in context.sentences if s not in addressed and _is_candidate(s, question_terms, headings[s.passage])
        ]
        lexical = np.array([context.support(question_terms, s) for s in candidates], dtype=np.float64)
        notes: list[str] = []
        if addressed:
            notes.append(source_note(sorted({s.passage + 1 for s in addressed})))
        scores = lexical
        overlapping = np.flatnonzero(lexical > 0)  # the cosine refines lexical evidence, never replaces it
        if self.embed is not None and overlapping.size:
            try:
                cosines = _cosines(self.embed, question, [candidates[i].text for i in overlapping])
                scores = lexical.copy()
                scores[overlapping] = (1 - EMBED_WEIGHT) * lexical[overlapping] + EMBED_WEIGHT * cosines
            except Exception as error:  # scoring must not fail because the embedder did
                log.warning("embedding sentences failed, scoring lexically: %s", error)
                notes.append(f"sentence embedding failed ({error}); sentences were scored lexically")
        scored = [
            ScoredSentence(s, float(score) * _rank_factor(s.passage) * _shape_factor(s.text))
            for s, score in zip(candidates, scores)
        ]
        scored.sort(key=lambda item: (-item.score, item.sentence.passage, item.sentence.start))
        return scored, notes

    def select(self, scored: Sequence[ScoredSentence]) -> list[ScoredSentence]:
        if not scored:
            return []
        floor = max(self.min_support, RELATIVE_FLOOR * scored[0].score)
        chosen: list[ScoredSentence] = []
        for item in scored:
            if item.score < floor or len(chosen) >= self.max_sentences:
                break
            if any(_near_duplicate(item.sentence.text, c.sentence.text) for c in chosen):
                continue
            chosen.append(item)
        return chosen

    def _parts(self, question: str, passages: Sequence[Hit]) -> tuple[list[str], Answer]:
        context = list(passages[: self.context_chunks])
        scored, notes = self.score(question, context)
        chosen = self.select(scored)
        if not chosen:
            return [], refusal_answer(self.name, notes)
        parts, citations = [], []
        for index, item in enumerate(chosen):
            sentence, marker = item.sentence, item.sentence.passage + 1
            separator = "" if index == 0 else " "
            # A document's own "[3]" references would read as citations of this answer.
            parts.append(f"{separator}{display_text(strip_markers(sentence.text))} [{marker}]")
            citations.append(citation_for(context[sentence.passage], marker, sentence.start, sentence.end, item.score))
        answer = Answer(text="".join(parts), citations=citations, grounded=True, generator=self.name, notes=notes)
        return parts, answer

    def answer(self, question: str, passages: Sequence[Hit]) -> Answer:
        return self._parts(question, passages)[1]

    def stream(self, question: str, passages: Sequence[Hit]) -> Iterator[str | Answer]:
        parts, answer = self._parts(question, passages)
        yield from parts or [answer.text]
        yield answer
