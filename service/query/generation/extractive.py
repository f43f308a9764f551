"""Answers made only of sentences quoted from the passages: no language model involved.

Every sentence of the answer is a verbatim quote, so every claim is checkable by construction;
what can go wrong is choosing a sentence that does not answer the question. The support score
guards that: the IDF-weighted share of the question's content terms a sentence contains (a
term found only in the passage's headings counts half), scaled slightly by the passage's rank
and, when an embedder is given, blended with the question-sentence cosine. A question whose
terms the passages do not contain gets no sentence above the threshold and is refused.
Only the sentences that ask count as the question (an app's trailing "Answer in USD
millions." is about form); a table row the question names (label and period) moves ahead of
prose that merely shares words, and a row answers a question about someone's figure only
where its place names them.
Sentences addressed to the answering system rather than to a reader (``query.injection``)
are never candidates, and the answer's notes say which sources hold them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np

from index.settings import Settings
from service.query.citations import (
    TABLE_CELL_SEPARATOR,
    YEAR,
    ContextSentence,
    ContextSentences,
    citation_for,
    content_terms,
    display_text,
    sentence_spans,
    strip_markers,
    words,
)
from service.query import synonyms
from service.query.generation import changes, units
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
# A table row's cell separators and a currency sign before a figure are not code: counted as
# code symbols, they halved the score of a short row such as "TOTAL ASSETS | 2021: $59,268".
_TABLE_AND_CURRENCY = re.compile(r" \| |\$(?=[\d(])")
NAMED_ROW_BOOST = 1.25  # a supported table row whose label the question names, in a period it names
_POSSESSIVE = re.compile(r"([^\W_][\w&.-]*)['\u2019]s\b")
_LEAD_IN_MIN_WORDS = 3  # "Please answer the following question: what is ...?" asks after the colon
# "Based on the balance sheet, what is ...?": a phrase that frames where to look (by its first
# word, and naming a source: statement, data, report ...), then the question after a comma. Not
# "When did ..., what ...?", whose second word makes it a question, and never a phrase with a
# figure or year in it ("In 2021, what were sales?" asks about 2021).
# "(in USD millions)", "(in percent)": the unit the answer should take, not what it is about.
# "(in units of percents and round to one decimal place)": what follows the unit in the aside is
# about form too, unless it names a figure or year ("(in percent of 2019)" asks something).
_UNITS_ASIDE = re.compile(r"\s*\((?:in|as)\s+(?:units\s+of\s+)?(?:usd\s+|us\$\s*|\$\s*)?"
                          r"(?:millions?|billions?|thousands?|percents?|percentage|%|usd)\b[^()\d]*\)", re.IGNORECASE)
_FRAMING = re.compile(
    r"^\s*(?:by|based|using|considering|in|according|when|with|from|taking|given|looking|referring|relying|basing|"
    r"drawing|per|on|assuming)\b(?!\s+(?:did|does|do|is|are|was|were|will|has|have|can|should|would)\b)"
    r"[^?\d]*?\b(?:statements?|sheets?|information|data|details|reports?|filings?|documents?|tables?|figures|numbers)\b"
    r"[^?\d]*?,\s+(?=(?:what|how|which|who|whom|whose|where|why|is|are|was|were|did|does|do|has|have)\b)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ScoredSentence:
    sentence: ContextSentence
    score: float


def _rank_factor(rank: int) -> float:
    return 1.0 - RANK_WEIGHT * rank / (rank + 1)


def _shape_factor(text: str) -> float:
    factor = min(1.0, (len(words(text)) + 3) / (FULL_SENTENCE_WORDS + 3))
    symbols = sum(char in _CODE_SYMBOLS for char in _TABLE_AND_CURRENCY.sub(" ", text))
    if "```" in text or symbols > CODE_SYMBOL_SHARE * len(text):
        factor *= 0.5
    return factor


def content_years(question: str) -> list[str]:
    """The years a question names, in order ("FY2016 to FY2017" -> 2016, 2017)."""
    return [term for term in content_terms(question) if YEAR.fullmatch(term)]


def _derived(sentence: ContextSentence, hit: Hit, asked_scale: float | None, change_years: list[str] | None) -> str:
    """What follows by arithmetic from a quoted table row (``sentence`` of the hit's passage),
    added outside the quote: its figures in the scale the question asks (``units``;
    the table's scale is the last one stated above the row in its passage, else the head its
    piece repeats, else its headings), and the change between the periods a question about a
    change compares (``changes``). Empty for prose and when there is nothing to add."""
    if TABLE_CELL_SEPARATOR not in sentence.text or (asked_scale is None and change_years is None):
        return ""
    row = display_text(sentence.text)
    derived = ""
    if asked_scale is not None:
        stated = (units.stated_scale(hit.passage[: sentence.start]) or units.stated_scale(hit.table_head)
                  or units.stated_scale("\n".join(hit.heading_path)))
        restated = units.restated_row(row, stated, asked_scale)
        derived += f" (in {units.scale_word(asked_scale)}: {restated})" if restated else ""
    if change_years is not None:
        change = changes.row_change(row, change_years)
        derived += f" (change {change})" if change else ""
    return derived


def asked_part(question: str) -> str:
    """The sentences of ``question`` that ask (end in "?"), each without a lead-in that ends in a
    colon; the whole text when none asks.

    Apps and analysts append instructions about the answer's form ("Answer in USD millions.",
    "Give a response to the question by relying on the details shown in the cash flow
    statement."), or put them before the question ("By drawing conclusions from the income
    statement, what is ...?"). They say how to answer, not what; no passage sentence holds
    their words, so counting them against every sentence refused answers the context held.
    """
    asked = []
    for start, end in sentence_spans(question):
        sentence = question[start:end]
        if not sentence.rstrip().endswith("?"):
            continue
        _, colon, after = sentence.rpartition(": ")
        if colon and len(words(after)) >= _LEAD_IN_MIN_WORDS:
            sentence = after
        framing = _FRAMING.match(sentence)
        if framing and len(words(sentence[framing.end():])) >= _LEAD_IN_MIN_WORDS:
            sentence = sentence[framing.end():]
        asked.append(_UNITS_ASIDE.sub("", sentence))
    return " ".join(asked) or question


def names_row(question_terms: set[str], text: str) -> bool:
    """Whether ``text`` is a table row ("label | header: value | ...") whose label the question
    names in full and, when the question names years, with a value under one of them.

    "Total assets | August 29, 2021: $59,268" is the answer to "Costco's total assets at the
    end of FY2021", yet a note sentence that mentions assets and "the consolidated balance
    sheets" shares more of the question's words (the question names the statement too).
    """
    label, separator, cells = text.partition(TABLE_CELL_SEPARATOR)
    label_terms = set(content_terms(label))
    if not separator or not label_terms or not label_terms <= question_terms:
        return False
    years = {term for term in question_terms if YEAR.fullmatch(term)}
    if not years:
        return True
    headers = (cell.rpartition(":")[0] for cell in cells.split(TABLE_CELL_SEPARATOR))
    return any(years & set(content_terms(header)) for header in headers)


def synonym_credit(question: str, groups: synonyms.SynonymGroups | None) -> list[tuple[frozenset[str], tuple[tuple[str, ...], ...]]]:
    """For each synonym group a phrase of ``question`` belongs to: that phrase's content terms,
    and the group's phrases. A sentence holding one of the phrases says the question's phrase
    in its own words ("Purchases of property and equipment | 2018: (1,577)" for "capital
    expenditure"), and is credited with its terms."""
    if groups is None:
        return []
    asked = synonyms.words(question)
    credit = []
    for group in groups.groups:
        said = [phrase for phrase in group if synonyms.contains_phrase(asked, phrase)]
        if said:
            terms = frozenset(term for phrase in said for term in content_terms(" ".join(phrase)))
            credit.append((terms, group))
    return credit


def with_synonym_credit(sentence: ContextSentence, credit: Sequence[tuple[frozenset[str], tuple[tuple[str, ...], ...]]]) -> ContextSentence:
    if not credit:
        return sentence
    held = synonyms.words(sentence.text)
    extra = frozenset().union(*(terms for terms, group in credit if any(synonyms.contains_phrase(held, p) for p in group)))
    return replace(sentence, terms=sentence.terms | extra) if extra - sentence.terms else sentence


def owners(question: str) -> set[str]:
    """The terms of the names a question asks about by possessive: "Zenith's total assets"."""
    return {term for name in _POSSESSIVE.findall(question) for term in content_terms(name)}


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
        synonym_groups: synonyms.SynonymGroups | None = None,
    ):
        self.max_sentences = max_sentences
        self.min_support = min_support
        self.context_chunks = context_chunks
        self.embed = embed
        self.synonym_groups = synonym_groups

    @classmethod
    def from_settings(cls, settings: Settings, embed: Embed | None = None) -> ExtractiveGenerator:
        return cls(
            max_sentences=settings.answer_max_sentences,
            min_support=settings.answer_min_support,
            context_chunks=settings.context_chunks,
            embed=embed,
            synonym_groups=synonyms.load(settings.answer_synonyms),
        )

    def score(self, question: str, passages: Sequence[Hit]) -> tuple[list[ScoredSentence], list[str]]:
        """Every sentence of the context with its support for the question, best first."""
        context = ContextSentences(passages[: self.context_chunks])
        question = asked_part(question)
        question_terms = set(content_terms(question))
        headings = [
            {" ".join(words(h)) for h in [hit.title or "", *hit.heading_path] if h} for hit in context.passages
        ]
        # Text addressed to the answering system ("when anyone asks ..., answer X") is data:
        # never an answer sentence, and the answer says the sources hold some.
        addressed = {s for s in context.sentences
                     if addresses_the_system(s.text, lead_in(context.texts[s.passage], s.start, s.end))}
        # A table row never names its company: when the question says whose figure it wants, a
        # row answers only if its place (document context, title, headings) names that owner.
        owned_by = owners(question)

        def someone_elses_row(s: ContextSentence) -> bool:
            return bool(owned_by) and TABLE_CELL_SEPARATOR in s.text and not owned_by <= s.terms | context.heading_terms[s.passage]

        credit = synonym_credit(question, self.synonym_groups)
        candidates = [
            with_synonym_credit(s, credit) for s in context.sentences
            if s not in addressed and _is_candidate(s, question_terms, headings[s.passage]) and not someone_elses_row(s)
        ]
        # A row holds each period's figure, never the comparison the question asks for.
        row_terms = question_terms - changes.comparison_terms(question)
        lexical = np.array([context.support(row_terms if TABLE_CELL_SEPARATOR in s.text else question_terms, s)
                            for s in candidates], dtype=np.float64)
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
            ScoredSentence(s, self._boost(float(score), question_terms, s.text)
                           * _rank_factor(s.passage) * _shape_factor(s.text))
            for s, score in zip(candidates, scores)
        ]
        scored.sort(key=lambda item: (-item.score, item.sentence.passage, item.sentence.start))
        return scored, notes

    def _boost(self, score: float, question_terms: set[str], text: str) -> float:
        """A named row moves ahead of sentences that merely share words; it orders, and never
        turns a refusal into an answer (only a row already supported enough is boosted)."""
        if score >= self.min_support and names_row(question_terms, text):
            return score * NAMED_ROW_BOOST
        return score

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
        asked_scale = units.asked_scale(question)
        change_years = content_years(question) if changes.asks_change(question) else None
        for index, item in enumerate(chosen):
            sentence, marker = item.sentence, item.sentence.passage + 1
            separator = "" if index == 0 else " "
            # A document's own "[3]" references would read as citations of this answer.
            derived = _derived(sentence, context[sentence.passage], asked_scale, change_years)
            parts.append(f"{separator}{display_text(strip_markers(sentence.text))} [{marker}]{derived}")
            citations.append(citation_for(context[sentence.passage], marker, sentence.start, sentence.end, item.score))
        answer = Answer(text="".join(parts), citations=citations, grounded=True, generator=self.name, notes=notes)
        return parts, answer

    def answer(self, question: str, passages: Sequence[Hit]) -> Answer:
        return self._parts(question, passages)[1]

    def stream(self, question: str, passages: Sequence[Hit]) -> Iterator[str | Answer]:
        parts, answer = self._parts(question, passages)
        yield from parts or [answer.text]
        yield answer
