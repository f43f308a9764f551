"""Checkable citations: sentence spans, quote location, support scores and ``[n]`` markers.

Everything here is pure and deterministic, so a citation can be re-checked by anyone holding
the cited chunk's text: ``chunk.text[citation.start:citation.end] == citation.quote``, also when
the passage was a table window of several chunks. Both generators
use the same pieces, which keeps their citations comparable: the extractive one scores
sentences against the question, the LLM one scores them against the answer sentence that
carries a marker.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from service.query.prompts import REFUSAL
from service.query.types import Citation, Hit
from service.query.windows import part_at

# --------------------------------------------------------------------------------------------
# Terms
# --------------------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")

# Function words plus the words questions are made of ("how many", "what is"): none of them
# says anything about whether a sentence answers the question.
STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing done down during each either else etc ever
every few for from further get gets got had has have having he her here hers herself him himself
his how i if in into is it its itself just let lets like may me might mine more most much must my
myself neither no nor not now of off on once one only or other others our ours ourselves out over
own per please same shall she should so some such tell than that the their theirs them
themselves then there these they this those through thus to too under until up upon us very via
was we were what whatever when whenever where whereas whether which while who whom whose why
will with within without would yes yet you your yours yourself yourselves
many long often kind sort way ways anyone someone something anything thing things know want
need needs say says said use used using give given happen happens happened
""".split())

_DOUBLE_CONSONANT = re.compile(r"([b-df-hj-np-tv-z])\1$")


def stem(word: str) -> str:
    """A light English suffix stripper: plural, -ing, -ed, -ly. Enough to match query and text
    inflections ("renewing" ~ "renewed" ~ "renew") without a stemming library."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            base = word[: -len(suffix)]
            if _DOUBLE_CONSONANT.search(base) and not base.endswith(("ll", "ss", "zz")):
                base = base[:-1]
            word = base
            break
    else:
        if word.endswith("ly") and len(word) > 5:
            word = word[:-2]
    if word.endswith("e") and len(word) > 4:
        word = word[:-1]
    return word


def words(text: str) -> list[str]:
    tokens = []
    for token in _WORD.findall(text.lower()):
        token = token.replace("\u2019", "'")
        if token.endswith("'s"):
            token = token[:-2]
        tokens.append(token)
    return tokens


YEAR = re.compile(r"(?<!\d)(?:19|20)\d\d(?!\d)")  # also a year inside a word: "FY2021", "2023E"


def content_terms(text: str) -> list[str]:
    """Stemmed words that carry meaning, in order (duplicates kept). A word fusing a year with
    letters counts as the year ("FY2021" -> 2021, "2023E" -> 2023), so a question about FY2021
    meets a table whose header says "August 29, 2021"."""
    out = []
    for w in words(text):
        if w in STOPWORDS:
            continue
        years = YEAR.findall(w) if not w.isdigit() else []
        out.extend(years or [stem(w)])
    return out


# --------------------------------------------------------------------------------------------
# Sentences
# --------------------------------------------------------------------------------------------

_ABBREVIATIONS = frozenset(
    "e.g i.e etc vs mr mrs ms dr prof inc ltd co corp no nr fig approx st jr sr dept est cf al "
    "jan feb mar apr jun jul aug sep sept oct nov dec ca resp incl".split()
)
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*\s+")
_LIST_MARKER = re.compile(r"(?:[-*\u2022\u2023\u25e6\u2013>]+|\(?\d{1,3}[.)]|\(?[a-z]\))\s+")
_LINE = re.compile(r"[^\n]*\n?")
_QUOTE_PREFIX = re.compile(r"[ \t]*(?:>[ \t]?)+")  # e-mail quoting: "> > text"
_BREAKING_LINE_START = re.compile(r"\s*(?:[-*\u2022\u2023\u25e6|#]|\(?\d{1,3}[.)]\s|[A-Z][\w ]{0,40}:\s)")
TABLE_CELL_SEPARATOR = " | "  # ingest.tables renders a row as "label | header: value | ..."
_SOFT_WRAP_MIN_CHARS = 60  # a shorter line ending without punctuation is a line of its own


def _line_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for match in _LINE.finditer(text):
        if match.end() == match.start():
            break
        end = match.end() - 1 if match.group().endswith("\n") else match.end()
        spans.append((match.start(), end))
    return spans


def _split_quote_prefix(line: str) -> tuple[str, str]:
    prefix = _QUOTE_PREFIX.match(line)
    if not prefix:
        return "", line
    return prefix.group().replace(" ", "").replace("\t", ""), line[prefix.end():]


def _continues(previous: str, line: str) -> bool:
    """Whether ``line`` carries on the hard-wrapped sentence of ``previous``."""
    previous_quote, previous_body = _split_quote_prefix(previous)
    quote, body = _split_quote_prefix(line)
    previous_body, body = previous_body.rstrip(), body.strip()
    if quote != previous_quote or not previous_body or not body:
        return False
    if "\t" in line or "\t" in previous or previous_body.lstrip().startswith("|"):
        return False
    if TABLE_CELL_SEPARATOR in previous_body or TABLE_CELL_SEPARATOR in body:
        return False  # a table row (ingest.tables renders "label | header: value"): quoted whole
    if _BREAKING_LINE_START.match(body) or previous_body.endswith((".", "!", "?", ":", ";", "|")):
        return False
    return len(previous_body.strip()) >= _SOFT_WRAP_MIN_CHARS or body[0].islower()


def _blocks(text: str) -> list[tuple[int, int]]:
    """Group lines into blocks: a hard-wrapped paragraph is one block; list items, table rows,
    headings, slide bullets and blank-line separated paragraphs are blocks of their own."""
    blocks: list[tuple[int, int]] = []
    current: tuple[int, int] | None = None
    previous_line = ""
    for start, end in _line_spans(text):
        line = text[start:end]
        if not _split_quote_prefix(line)[1].strip():
            if current:
                blocks.append(current)
            current, previous_line = None, ""
            continue
        if current is not None and _continues(previous_line, line):
            current = (current[0], end)
        else:
            if current:
                blocks.append(current)
            current = (start, end)
        previous_line = line
    if current:
        blocks.append(current)
    return blocks


def _is_boundary(text: str, punct_start: int, next_start: int) -> bool:
    if next_start >= len(text):
        return True
    following = text[next_start]
    if not (following.isupper() or following.isdigit() or following in "\"'(\u201c\u2018[*-\u2022"):
        return False
    if text[punct_start] != ".":
        return True
    word_start = punct_start
    while word_start > 0 and (text[word_start - 1].isalnum() or text[word_start - 1] == "."):
        word_start -= 1
    word = text[word_start:punct_start].lower()
    if word in _ABBREVIATIONS:
        return False
    line_start = text.rfind("\n", 0, word_start) + 1
    if word.isdigit() and not text[line_start:word_start].strip():
        return False  # a numbered list item: "1. Log in"
    return not (len(word) == 1 and word.isalpha())  # an initial: "J. Smith"


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    quote = _QUOTE_PREFIX.match(text, start, end)
    if quote and quote.end() < end:
        start = quote.end()
    marker = _LIST_MARKER.match(text, start, end)
    if marker and marker.end() < end:
        start = marker.end()
    while start < end and text[start] in "| \t":
        start += 1
    while end > start and text[end - 1] in "| \t":
        end -= 1
    return start, end


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence, list item or table row, trimmed of whitespace, list
    markers and table pipes, so ``text[start:end]`` is a quotable sentence."""
    spans = []
    for block_start, block_end in _blocks(text):
        start = block_start
        for match in _SENTENCE_END.finditer(text, block_start, block_end):
            if _is_boundary(text, match.start(), match.end()):
                spans.append((start, match.end()))
                start = match.end()
        spans.append((start, block_end))
    trimmed = (_trim(text, start, end) for start, end in spans)
    return [(start, end) for start, end in trimmed if _WORD.search(text, start, end)]


def sentences(text: str) -> list[str]:
    return [text[start:end] for start, end in sentence_spans(text)]


_WRAP = re.compile(r"\s*\n[ \t>]*|\s+")


def display_text(quote: str) -> str:
    """A quote on one line, without the hard wraps and e-mail quote marks it had in the chunk."""
    return _WRAP.sub(" ", quote).strip()


# --------------------------------------------------------------------------------------------
# Quote location
# --------------------------------------------------------------------------------------------

_TYPOGRAPHIC = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"',
    "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u00a0": " ",
})


def _normalized(text: str, *, fold_case: bool) -> tuple[str, list[int]]:
    """Whitespace runs collapsed to one space, typographic quotes/dashes made plain; returns
    the normalized text and, for each of its characters, the index it came from."""
    chars: list[str] = []
    origin: list[int] = []
    in_space = False
    for index, char in enumerate(text):
        if char.isspace():
            if not in_space:
                chars.append(" ")
                origin.append(index)
            in_space = True
            continue
        in_space = False
        plain = char.translate(_TYPOGRAPHIC)
        if fold_case:
            plain = plain.lower()
        for piece in plain:
            chars.append(piece)
            origin.append(index)
    return "".join(chars), origin


def locate_quote(text: str, quote: str) -> tuple[int, int] | None:
    """Offsets of ``quote`` in ``text``: exact first, then ignoring differences in whitespace,
    typographic punctuation and finally case. ``text[start:end]`` is always the text's own
    spelling of the quote, so a model's re-spaced quote still maps to checkable offsets."""
    if not quote.strip():
        return None
    index = text.find(quote)
    if index >= 0:
        return index, index + len(quote)
    for fold_case in (False, True):
        haystack, origin = _normalized(text, fold_case=fold_case)
        needle, _ = _normalized(quote.strip(), fold_case=fold_case)
        index = haystack.find(needle)
        if index >= 0:
            return origin[index], origin[index + len(needle) - 1] + 1
    return None


# --------------------------------------------------------------------------------------------
# Support scores
# --------------------------------------------------------------------------------------------

HEADING_CREDIT = 0.5  # a question term found only in the passage's title or headings counts half
UNSEEN_WEIGHT = 1.25  # a question term absent from every context sentence weighs extra: no answer is likelier


def idf_weights(term_sets: Iterable[AbstractSet[str]]) -> tuple[dict[str, float], float]:
    """BM25-style IDF over the context's sentences, plus the weight of an unseen term (the
    highest: a question term no sentence contains is the strongest sign of no answer)."""
    sets = list(term_sets)
    total = len(sets)
    frequency: dict[str, int] = {}
    for terms in sets:
        for term in terms:
            frequency[term] = frequency.get(term, 0) + 1
    weights = {t: math.log(1.0 + (total - df + 0.5) / (df + 0.5)) for t, df in frequency.items()}
    return weights, UNSEEN_WEIGHT * math.log(1.0 + (total + 0.5) / 0.5)


def weighted_coverage(
    query_terms: AbstractSet[str],
    sentence_terms: AbstractSet[str],
    idf: Mapping[str, float],
    unseen_idf: float,
    context_terms: AbstractSet[str] = frozenset(),
) -> float:
    """IDF-weighted share of the query's terms that the sentence contains, in [0, 1]."""
    if not query_terms:
        return 0.0
    total = covered = 0.0
    own = False
    for term in query_terms:
        weight = idf.get(term, unseen_idf)
        total += weight
        if term in sentence_terms:
            covered += weight
            own = True
        elif term in context_terms:
            covered += HEADING_CREDIT * weight
    if not own or total <= 0:
        return 0.0
    return covered / total


@dataclass(frozen=True)
class ContextSentence:
    passage: int  # 0-based position of the passage in the context
    start: int
    end: int
    terms: frozenset[str]
    text: str


@dataclass
class ContextSentences:
    """The sentences of a context's passages with their terms and the context's IDF."""

    passages: Sequence[Hit]
    texts: list[str] = field(init=False)  # each passage's text as read (a table window's, joined once)
    sentences: list[ContextSentence] = field(init=False)
    idf: dict[str, float] = field(init=False)
    unseen_idf: float = field(init=False)
    heading_terms: list[frozenset[str]] = field(init=False)

    def __post_init__(self) -> None:
        self.texts = [hit.passage for hit in self.passages]
        self.sentences = [
            ContextSentence(number, start, end, frozenset(content_terms(text[start:end])), text[start:end])
            for number, text in enumerate(self.texts)
            for start, end in sentence_spans(text)
        ]
        self.idf, self.unseen_idf = idf_weights(s.terms for s in self.sentences)
        # What a sentence's place says about it: the document (title, and the context line that
        # names its company, form and period) and the headings above it. A table row such as
        # "Total assets | August 29, 2021: $59,268" answers "Costco's total assets in FY2021"
        # only together with that place.
        self.heading_terms = [
            frozenset(content_terms(" ".join([hit.title or "", hit.document_context or "",
                                              *hit.heading_path])))
            for hit in self.passages
        ]

    def support(self, query_terms: AbstractSet[str], sentence: ContextSentence, *, with_headings: bool = True) -> float:
        headings = self.heading_terms[sentence.passage] if with_headings else frozenset()
        return weighted_coverage(query_terms, sentence.terms, self.idf, self.unseen_idf, headings)

    def best_in_passage(self, passage: int, claim: str) -> tuple[ContextSentence | None, float]:
        """The passage's sentence that best supports ``claim`` (an answer sentence)."""
        terms = set(content_terms(claim))
        best, best_score = None, -1.0
        for sentence in self.sentences:
            if sentence.passage != passage:
                continue
            score = self.support(terms, sentence, with_headings=False)
            if score > best_score:
                best, best_score = sentence, score
        return best, max(best_score, 0.0)


# --------------------------------------------------------------------------------------------
# Markers
# --------------------------------------------------------------------------------------------

_MAX_MARKER_CHARS = 40
_MARKER = re.compile(r"[ \t]*\[([\d\s,]{1,%d})\]" % _MAX_MARKER_CHARS)
_MARKER_BODY = re.compile(r"\s*\d{1,4}\s*(?:,\s*\d{1,4}\s*)*")
_MARKER_PREFIX = re.compile(r"[ \t]*\[[\d\s,]{0,%d}$" % _MAX_MARKER_CHARS)
_TRAILING_SPACE = re.compile(r"\s+$")
NOT_IN_CONTEXT = "not in context"


def marker_numbers(marker_text: str) -> list[int] | None:
    """The numbers of one bracketed marker body ("1, 3" -> [1, 3]); None if it is no marker."""
    if not _MARKER_BODY.fullmatch(marker_text):
        return None
    return [int(part) for part in marker_text.split(",")]


def find_markers(text: str) -> list[tuple[int, int, list[int]]]:
    """``(start, end, numbers)`` of each ``[n]`` / ``[n, m]`` marker; ``[n][m]`` is two."""
    found = []
    for match in _MARKER.finditer(text):
        numbers = marker_numbers(match.group(1))
        if numbers is not None:
            found.append((match.start() + match.group(0).index("["), match.end(), numbers))
    return found


class MarkerFilter:
    """Drops citation markers that point outside the context, from streamed text.

    Text is held back only while it might still become a marker or precede one (trailing
    whitespace, an unclosed ``[12,``), so deltas flow almost unchanged, and the concatenated output equals
    :func:`clean_markers` of the concatenated input however the input was split.
    """

    def __init__(self, context_size: int):
        self.context_size = context_size
        self.dropped: list[dict] = []
        self._pending = ""

    def feed(self, delta: str) -> str:
        self._pending += delta
        hold_from = len(self._pending)
        prefix = _MARKER_PREFIX.search(self._pending)
        if prefix:
            hold_from = prefix.start()
        else:
            space = _TRAILING_SPACE.search(self._pending)
            if space:
                hold_from = space.start()
        ready, self._pending = self._pending[:hold_from], self._pending[hold_from:]
        return self._rewrite(ready)

    def finish(self) -> str:
        ready, self._pending = self._pending, ""
        return self._rewrite(ready)

    def _rewrite(self, text: str) -> str:
        return _MARKER.sub(self._replace, text) if "[" in text else text

    def _replace(self, match: re.Match) -> str:
        numbers = marker_numbers(match.group(1))
        if numbers is None:
            return match.group(0)
        valid = [n for n in numbers if 1 <= n <= self.context_size]
        for number in numbers:
            if number not in valid and all(d["marker"] != number for d in self.dropped):
                self.dropped.append({"marker": number, "reason": NOT_IN_CONTEXT})
        if len(valid) == len(numbers):
            return match.group(0)
        if not valid:
            return ""
        blanks = match.group(0)[: match.group(0).index("[")]
        return f"{blanks}[{', '.join(map(str, valid))}]"


def clean_markers(text: str, context_size: int) -> tuple[str, list[dict]]:
    """Remove markers (or the numbers in them) that point outside ``1..context_size``."""
    marker_filter = MarkerFilter(context_size)
    cleaned = marker_filter.feed(text) + marker_filter.finish()
    return cleaned, marker_filter.dropped


def strip_markers(text: str) -> str:
    return _MARKER.sub("", text)


# --------------------------------------------------------------------------------------------
# Grounding an LLM answer
# --------------------------------------------------------------------------------------------

def _normalized_sentence(text: str) -> str:
    return " ".join(words(strip_markers(text)))


def is_refusal(text: str, refusal: str = REFUSAL) -> bool:
    """Whether an answer is the refusal sentence (ignoring case, spacing and punctuation)."""
    answer, expected = _normalized_sentence(text), _normalized_sentence(refusal)
    return answer == expected or (answer.startswith(expected) and not find_markers(text))


def claims_with_markers(text: str) -> list[tuple[str, list[int]]]:
    """Each answer sentence (markers removed) with the marker numbers it carries. A marker
    that opens a sentence ("... year. [1] Next") belongs to the sentence before it."""
    claims: list[tuple[str, list[int]]] = []
    for start, end in sentence_spans(text):
        segment = text[start:end]
        cursor, leading = 0, []
        for marker_start, marker_end, numbers in find_markers(segment):
            if segment[cursor:marker_start].strip():
                break
            leading.extend(numbers)
            cursor = marker_end
        if leading and claims:
            claims[-1][1].extend(leading)
        else:
            cursor = 0
        body = segment[cursor:]
        numbers = [n for _, _, found in find_markers(body) for n in found]
        claim = strip_markers(body).strip()
        if claim:
            claims.append((claim, numbers))
        elif numbers and claims:
            claims[-1][1].extend(numbers)
    return claims


@dataclass
class Grounding:
    citations: list[Citation]
    grounded: bool
    notes: list[str]


def citation_for(hit: Hit, marker: int, start: int, end: int, support: float) -> Citation:
    """The citation of ``hit.passage[start:end]``: in a table window, of the chunk (part) that
    holds it, with offsets in that chunk's text, so ``chunk.text[start:end] == quote`` holds."""
    chunk_id, page, text = hit.chunk_id, hit.page, hit.text
    if hit.window:
        part = part_at(hit.window, start)
        chunk_id, text = part.chunk_id, part.text
        page = part.pages[0] if part.pages else None
        start, end = max(0, start - part.start), max(0, min(end, part.end) - part.start)
    return Citation(
        marker=marker, chunk_id=chunk_id, document_id=hit.document_id, source=hit.source,
        title=hit.title, page=page, quote=text[start:end], start=start, end=end,
        support=round(float(support), 4),
    )


def ground_answer(text: str, passages: Sequence[Hit], refusal: str = REFUSAL) -> Grounding:
    """Citations for an answer whose markers are already cleaned: for each marker, the
    sentence of the cited passage that best supports the answer sentence carrying it."""
    if not text.strip() or is_refusal(text, refusal):
        return Grounding([], False, [])
    context = ContextSentences(passages)
    best: dict[tuple[int, int, int], Citation] = {}
    notes: list[str] = []
    for claim, numbers in claims_with_markers(text):
        for number in numbers:
            if not 1 <= number <= len(passages):
                continue
            sentence, support = context.best_in_passage(number - 1, claim)
            hit = passages[number - 1]
            start, end = (sentence.start, sentence.end) if sentence else (0, len(hit.passage))
            if support <= 0:
                notes.append(f"marker [{number}] has no supporting sentence in its source")
            key = (number, start, end)
            if key not in best or best[key].support < support:
                best[key] = citation_for(hit, number, start, end, support)
    if not best:
        notes.append("the answer cites no sources")
    return Grounding(list(best.values()), True, list(dict.fromkeys(notes)))
