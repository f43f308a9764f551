"""Structure-aware chunking: cut a parsed document into spans that fit the embedder's budget.

Chunks follow the document's sections (a heading closes every open section of its level or
deeper), pack whole elements greedily, keep tables whole when they fit and split them by rows
when they do not, and cut over-long prose at sentence, then line, word or token boundaries.
Every chunk is an exact, trimmed span of ``ParsedDocument.text``, so citations can point back
into the document.

Each element is tokenized once; a chunk's count is the sum of its parts. That sum is exact
only where the parts meet at whitespace and the tokenizer never reaches across it (see
``ingest.tokens``); every other chunk is counted again, and split further if it has to be.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import accumulate

from ingest.documents import ElementKind, ParsedDocument
from ingest.tokens import TokenCounter, count_many, is_whitespace_bounded, token_spans_many

# Characters that every tokenizer treats as a word break. Python's ``str.isspace`` is wider
# (it includes control characters such as U+001C that BERT deletes, gluing words together).
_HARD_SPACE = frozenset(" \t\n\r")

# Where a new sentence starts: after terminal punctuation (and closing quotes or brackets)
# followed by whitespace, after CJK full stops, and after a blank line.
_SENTENCE_BREAK = re.compile(
    r"[.!?\u2026][\"'\u201d\u2019\u00bb)\]]*\s+"
    r"|[\u3002\uff01\uff1f][\"'\u201d\u2019\u00bb)\]]*\s*"
    r"|\n[^\S\n]*\n\s*"
)

_NON_SPACE = re.compile(r"\S")

# English averages about four characters a word-piece; sixteen per token does not happen.
_CHARS_SURELY_OVER = 16

_HEADINGS = (ElementKind.title, ElementKind.heading)


@dataclass(frozen=True, slots=True)
class ChunkSpan:
    ordinal: int  # 0..n-1 in document order
    start: int  # offsets into document text; chunk text == doc.text[start:end]
    end: int
    token_count: int  # tokens of doc.text[start:end] by the TokenCounter
    pages: tuple[int, ...]  # sorted distinct pages the chunk touches (empty if unknown)
    heading_path: tuple[str, ...]  # enclosing headings' texts, outermost first (title excluded)
    kind: str  # "text" or "table"
    context: str  # indexed with the chunk but outside its span: a split table's caption and header


@dataclass(frozen=True, slots=True)
class _Unit:
    """An element trimmed to its non-blank text, clipped so that units never overlap."""

    kind: ElementKind
    start: int
    end: int
    page: int | None
    level: int
    head_lines: int = 1


@dataclass(slots=True)
class _Draft:
    """A chunk being built; ``tokens`` is the summed estimate, exact when ``trusted``."""

    start: int
    end: int
    tokens: int
    trusted: bool
    path: tuple[str, ...]
    context: str = ""
    heading_only: bool = False


@dataclass(frozen=True, slots=True)
class _Piece:
    start: int
    end: int
    tokens: int
    trusted: bool


def chunk_document(
    doc: ParsedDocument, tokens: TokenCounter, *, max_tokens: int, overlap_tokens: int = 0, min_tokens: int = 0
) -> list[ChunkSpan]:
    """Cut ``doc`` into chunks of at most ``max_tokens`` tokens each.

    ``overlap_tokens`` is repeated between consecutive pieces of one over-long element (never
    across elements); it is clamped below ``max_tokens / 2`` so that every piece advances.
    Headings that are blank are ignored; the title starts a section but is not in any path.
    A section shorter than ``min_tokens`` does not end its chunk at the next heading: the next
    section joins it while both fit, and the chunk keeps the headings they share. Filings and
    slide decks are full of two-line sections; alone, each is a passage too small to hold the
    figures a question needs, and one that matches a question on its location prefix alone.
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be at least 1")
    overlap = max(0, min(overlap_tokens, (max_tokens - 1) // 2))
    text = doc.text
    units = _normalize(doc)
    if not units:
        return []

    sizes = _measure(text, units, tokens, max_tokens)
    builder = _Builder(text, max_tokens, overlap)
    open_headings: list[_OpenHeading] = []
    section_path: tuple[str, ...] | None = None  # the path to go back to after a titled table
    for k, unit in enumerate(units):
        if section_path is not None:
            builder.close()
            builder.path, section_path = section_path, None
        is_heading = unit.kind in _HEADINGS
        if is_heading:
            path = _enter_heading(open_headings, unit, text)
            if builder.open is not None and builder.open.tokens < min_tokens:
                builder.open.path = _shared_prefix(builder.open.path, path)
            else:
                builder.close()
            builder.path = path
        elif unit.kind is ElementKind.table and not (k and units[k - 1].kind in _HEADINGS):
            table_path = _titled_table_path(open_headings, unit, text)
            if table_path is not None:
                builder.close()
                builder.path, section_path = table_path, builder.path
        join_tokens, join_clean = (sizes.gap_tokens[k - 1], sizes.gap_clean[k - 1]) if k else (0, True)
        if sizes.unit_tokens[k] <= max_tokens:
            builder.add_whole(unit, sizes.unit_tokens[k], join_tokens, join_clean, is_heading)
            continue
        spans = sizes.long_spans[k]
        starts = list(accumulate((unit.start + start for start, _ in spans), max))  # kept monotone
        ends = [unit.start + end for _, end in spans]
        if unit.kind is ElementKind.table:
            builder.add_table(unit, starts, ends, join_tokens, join_clean)
        else:
            builder.add_prose(unit, starts, ends, join_tokens, join_clean, is_heading)
    builder.close()
    return _finalize(text, units, builder.drafts, tokens, max_tokens)


def _shared_prefix(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    shared = 0
    while shared < min(len(a), len(b)) and a[shared] == b[shared]:
        shared += 1
    return a[:shared]


@dataclass(frozen=True, slots=True)
class _Sizes:
    unit_tokens: list[int]
    gap_tokens: list[int]  # tokens of the text between unit k and k+1 (0 when blank)
    gap_clean: list[bool]  # whether units k and k+1 tokenize apart (see ``_is_clean_gap``)
    long_spans: dict[int, list[tuple[int, int]]]  # token spans of units over budget


def _measure(text: str, units: list[_Unit], tokens: TokenCounter, max_tokens: int) -> _Sizes:
    """Tokenize every unit and non-blank gap once, in batches; spans only where needed.

    Units far longer than the budget in characters are surely split, so their spans are
    fetched straight away instead of counting them first and tokenizing them again.
    """
    unit_texts = [text[unit.start : unit.end] for unit in units]
    gaps = [text[before.end : after.start] for before, after in zip(units, units[1:])]
    gap_texts = [gap.strip() for gap in gaps]

    surely_long = [k for k, t in enumerate(unit_texts) if len(t) > _CHARS_SURELY_OVER * max_tokens]
    long_spans = dict(zip(surely_long, token_spans_many(tokens, [unit_texts[k] for k in surely_long])))
    rest = [k for k in range(len(units)) if k not in long_spans]
    counts = count_many(tokens, [unit_texts[k] for k in rest] + [g for g in gap_texts if g])

    unit_tokens = [0] * len(units)
    for k, spans in long_spans.items():
        unit_tokens[k] = len(spans)
    for k, n in zip(rest, counts):
        unit_tokens[k] = n
    gap_counts = iter(counts[len(rest) :])
    gap_tokens = [next(gap_counts) if g else 0 for g in gap_texts]

    also_long = [k for k in rest if unit_tokens[k] > max_tokens]
    long_spans.update(zip(also_long, token_spans_many(tokens, [unit_texts[k] for k in also_long])))
    return _Sizes(unit_tokens, gap_tokens, [_is_clean_gap(gap) for gap in gaps], long_spans)


@dataclass(frozen=True, slots=True)
class _OpenHeading:
    level: int
    title: str
    page: int | None


def _enter_heading(open_headings: list[_OpenHeading], unit: _Unit, text: str) -> tuple[str, ...]:
    """Close the sections the heading ends, open its own, and return the new heading path.

    The title is a level-0 heading: it closes everything and is never part of a path.
    """
    if unit.kind is ElementKind.title:
        open_headings.clear()
    else:
        level = max(1, unit.level)
        while open_headings and open_headings[-1].level >= level:
            open_headings.pop()
        open_headings.append(_OpenHeading(level, " ".join(text[unit.start : unit.end].split()), unit.page))
    return tuple(heading.title for heading in open_headings)


# A caption line that names a table ("CONSOLIDATED BALANCE SHEETS", a sheet's name): short, and
# neither a lead-in sentence ("Cash flows were as follows:") nor a unit note ("(In millions)").
_TITLE_MAX_WORDS = 12


def _titled_table_path(open_headings: list[_OpenHeading], unit: _Unit, text: str) -> tuple[str, ...] | None:
    """The heading path of a table's own chunks when it is not the open section's, else None.

    A table whose head starts with a title line ("CONSOLIDATED BALANCE SHEETS"; not a lead-in
    such as "Cash flows were as follows:", nor a unit line such as "(In millions)") on a later
    page than the innermost open heading is not in that heading's section: PDF headings are
    flat, so without this a filing's balance sheet sat under the income statement's heading
    from the pages before. Its chunks drop that heading (the title is in their text, or in
    their context when the table is split); the text after the table keeps it, as before.
    Caption lines are the table's leading lines without a cell separator (``ingest.tables``).
    A table right after a heading is that heading's, and never gets here.
    """
    if not open_headings or open_headings[-1].page is None or unit.page is None or open_headings[-1].page >= unit.page:
        return None
    lines = text[unit.start : unit.end].split("\n", unit.head_lines)
    for line in lines[: min(unit.head_lines, len(lines) - 1)]:  # a head over at least one row
        line = " ".join(line.split())
        if "|" in line:
            return None
        if line and not line.startswith("(") and not line.endswith((":", ".")) and len(line.split()) <= _TITLE_MAX_WORDS:
            return tuple(heading.title for heading in open_headings[:-1])
    return None


def _normalize(doc: ParsedDocument) -> list[_Unit]:
    """Sort, clip overlaps, trim whitespace and drop blank elements (and blank headings)."""
    text = doc.text
    units: list[_Unit] = []
    covered = 0
    for element in sorted(doc.elements, key=lambda e: (e.start, e.end)):
        start, end = _trim(text, max(element.start, covered, 0), min(element.end, len(text)))
        if start >= end:
            continue
        units.append(_Unit(element.kind, start, end, element.page, element.level, element.head_lines))
        covered = end
    return units


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    if start >= end:
        return start, start
    segment = text[start:end]
    stripped = segment.lstrip()
    if not stripped:
        return start, start
    start += len(segment) - len(stripped)
    return start, start + len(stripped.rstrip())


def _is_clean_gap(gap: str) -> bool:
    """Whether the units on either side of ``gap`` (and any text in it) tokenize apart."""
    inner = gap.strip()
    if not inner:
        return any(c in _HARD_SPACE for c in gap)
    lead = gap[: len(gap) - len(gap.lstrip())]
    trail = gap[len(gap.rstrip()) :]
    return any(c in _HARD_SPACE for c in lead) and any(c in _HARD_SPACE for c in trail)


class _Builder:
    """Greedy packing within the current section; ``close`` ends the open chunk."""

    def __init__(self, text: str, max_tokens: int, overlap: int):
        self.text = text
        self.max_tokens = max_tokens
        self.overlap = overlap
        self.path: tuple[str, ...] = ()
        self.drafts: list[_Draft] = []
        self.open: _Draft | None = None

    def close(self) -> None:
        if self.open is not None:
            self.drafts.append(self.open)
            self.open = None

    def _start(self, piece: _Piece, context: str = "", heading_only: bool = False) -> None:
        self.close()
        self.open = _Draft(piece.start, piece.end, piece.tokens, piece.trusted, self.path, context, heading_only)

    def _extend(self, piece: _Piece, join_tokens: int, join_clean: bool) -> None:
        assert self.open is not None
        self.open.end = piece.end
        self.open.tokens += join_tokens + piece.tokens
        self.open.trusted = self.open.trusted and join_clean and piece.trusted
        self.open.heading_only = False

    def _leftover(self, join_tokens: int) -> int:
        """Budget left beside the open chunk, or 0 when too little is left to be worth using."""
        if self.open is None:
            return 0
        left = self.max_tokens - self.open.tokens - join_tokens
        return left if left >= max(1, self.max_tokens // 2) else 0

    def add_whole(self, unit: _Unit, n: int, join_tokens: int, join_clean: bool, is_heading: bool) -> None:
        piece = _Piece(unit.start, unit.end, n, True)
        if self.open is not None and self.open.tokens + join_tokens + n <= self.max_tokens:
            self._extend(piece, join_tokens, join_clean)
        else:
            self._start(piece, heading_only=is_heading)

    def add_prose(
        self, unit: _Unit, starts: list[int], ends: list[int], join_tokens: int, join_clean: bool, is_heading: bool
    ) -> None:
        """Split an over-long element; its first piece may fill the open chunk, its last stays open."""
        leftover = self._leftover(join_tokens)
        sentence_starts = _sentence_token_starts(self.text, unit, starts)
        cuts = _plan_cuts(
            0,
            len(starts),
            sentence_starts=sentence_starts,
            rank=_boundary_rank(self.text, starts, ends),
            first_budget=leftover or self.max_tokens,
            budget=self.max_tokens,
            overlap=self.overlap,
        )
        for index, (i, j) in enumerate(cuts):
            piece = _piece(self.text, starts, unit.start, unit.end, 0, len(starts), i, j)
            if piece is None:
                continue
            if index == 0 and leftover:
                self._extend(piece, join_tokens, join_clean)
            else:
                self._start(piece, heading_only=is_heading)

    def add_table(self, unit: _Unit, starts: list[int], ends: list[int], join_tokens: int, join_clean: bool) -> None:
        """Split an over-long table by rows; later pieces carry its head (caption, header) as context.

        The head's tokens are held back from later pieces so that head plus rows still fit the
        embedder. A head over half the budget loses caption lines from the top, then its end,
        until it fits in half.
        """
        leftover = self._leftover(join_tokens) if self.open is not None and self.open.heading_only else 0
        lines = _line_spans(self.text, unit.start, unit.end)
        firsts = [bisect_left(starts, line_start) for line_start, _ in lines]
        lasts = [bisect_left(starts, line_end) for _, line_end in lines]
        header, header_tokens = self._table_head(lines, firsts, lasts, starts, ends, unit.head_lines)
        rest_budget = self.max_tokens - header_tokens
        rank = _boundary_rank(self.text, starts, ends)

        pieces: list[_Piece] = []
        current: _Piece | None = None
        for (line_start, line_end), first, last in zip(lines, firsts, lasts):
            line_tokens = last - first
            budget = (leftover or self.max_tokens) if not pieces else rest_budget
            if current is not None and current.tokens + line_tokens <= budget:
                current = _Piece(current.start, line_end, current.tokens + line_tokens, current.trusted)
                continue
            if current is not None:
                pieces.append(current)
                current = None
                budget = rest_budget
            if line_tokens <= budget:
                current = _Piece(line_start, line_end, line_tokens, True)
                continue
            cuts = _plan_cuts(
                first, last, sentence_starts=[first], rank=rank, first_budget=budget, budget=rest_budget, overlap=0
            )
            windows = [_piece(self.text, starts, line_start, line_end, first, last, i, j) for i, j in cuts]
            windows = [w for w in windows if w is not None]
            pieces.extend(windows[:-1])
            current = windows[-1] if windows else None
        if current is not None:
            pieces.append(current)

        for index, piece in enumerate(pieces):
            if index == 0 and leftover:
                self._extend(piece, join_tokens, join_clean)
            else:
                self._start(piece, context=header if index else "")
        self.close()

    def _table_head(
        self,
        lines: list[tuple[int, int]],
        firsts: list[int],
        lasts: list[int],
        starts: list[int],
        ends: list[int],
        head_lines: int,
    ) -> tuple[str, int]:
        """The text later pieces of a split table repeat, and its tokens (at most half the budget)."""
        count = min(head_lines, len(lines) - 1)
        if count <= 0:
            return "", 0
        limit = self.max_tokens // 2
        top = 0
        while top < count - 1 and lasts[count - 1] - firsts[top] > limit:
            top += 1  # drop caption lines first: the column header names the figures
        first, last = firsts[top], min(lasts[count - 1], firsts[top] + limit)
        if last <= first:
            return "", 0
        end = lines[count - 1][1] if last == lasts[count - 1] else ends[last - 1]
        return self.text[lines[top][0] : end], last - first


def _line_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Trimmed, non-blank lines of ``text[start:end]``."""
    lines: list[tuple[int, int]] = []
    at = start
    while at < end:
        newline = text.find("\n", at, end)
        line_end = end if newline < 0 else newline
        line = _trim(text, at, line_end)
        if line[0] < line[1]:
            lines.append(line)
        at = line_end + 1
    return lines


def _sentence_token_starts(text: str, unit: _Unit, starts: list[int]) -> list[int]:
    """Token indices where a sentence begins (always including 0), ascending."""
    found = {0}
    for match in _SENTENCE_BREAK.finditer(text, unit.start, unit.end):
        index = bisect_left(starts, match.end())
        if 0 < index < len(starts):
            found.add(index)
    return sorted(found)


def _boundary_rank(text: str, starts: list[int], ends: list[int]) -> Callable[[int], int]:
    """How good a cut before token ``k`` reads: 2 at a line break, 1 at a space, 0 mid-word."""

    def rank(k: int) -> int:
        gap = text[ends[k - 1] : starts[k]] if k else ""
        if "\n" in gap:
            return 2
        return 1 if any(c.isspace() for c in gap) else 0

    return rank


def _plan_cuts(
    first: int,
    last: int,
    *,
    sentence_starts: Sequence[int],
    rank: Callable[[int], int],
    first_budget: int,
    budget: int,
    overlap: int,
) -> list[tuple[int, int]]:
    """Token ranges covering ``first..last`` in order, each of at most its budget.

    Whole sentences are packed while they fit; a sentence longer than the window is cut at its
    last line break, else its last space, else exactly at the budget, but never in the first
    half of the window. Each next range starts up to ``overlap`` tokens back, snapped forward to
    a sentence start, else a word start, inside that stretch; it always starts past the
    previous range's start and each cut lies beyond the last, so the loop ends.
    """
    ranges: list[tuple[int, int]] = []
    i, floor, window = first, first, max(1, first_budget)
    while True:
        limit = i + window
        if limit >= last:
            ranges.append((i, last))
            return ranges
        sentence = sentence_starts[bisect_right(sentence_starts, limit) - 1]
        if sentence > floor:
            cut = sentence
        else:
            cut = _best_cut(max(floor + 1, i + window // 2), limit, rank)
        ranges.append((i, cut))
        following = cut
        if overlap:
            following = max(cut - overlap, i + 1)
            at = bisect_left(sentence_starts, following)
            if at < len(sentence_starts) and sentence_starts[at] < cut:
                following = sentence_starts[at]
            else:
                following = next((k for k in range(following, cut) if rank(k) >= 1), following)
        i, floor, window = following, cut, max(1, budget)


def _best_cut(low: int, high: int, rank: Callable[[int], int]) -> int:
    """Rightmost line break in ``low..high``, else rightmost space, else ``high``."""
    space = None
    for k in range(high, low - 1, -1):
        r = rank(k)
        if r == 2:
            return k
        if r == 1 and space is None:
            space = k
    return high if space is None else space


def _piece(
    text: str, starts: list[int], seg_start: int, seg_end: int, first: int, last: int, i: int, j: int
) -> _Piece | None:
    """The trimmed character span of tokens ``i..j`` of a segment; inner cuts fall at token starts.

    The count ``j - i`` is trusted only when every inner cut sits right after hard whitespace.
    """
    start = seg_start if i == first else starts[i]
    end = seg_end if j == last else starts[j]
    start, end = _trim(text, start, end)
    if start >= end:
        return None
    trusted = (i == first or text[starts[i] - 1] in _HARD_SPACE) and (j == last or text[starts[j] - 1] in _HARD_SPACE)
    return _Piece(start, end, j - i, trusted)


def _finalize(
    text: str, units: list[_Unit], drafts: list[_Draft], tokens: TokenCounter, max_tokens: int
) -> list[ChunkSpan]:
    """Recount the drafts whose sums are not exact, shrink any that overflow, then annotate."""
    bounded = is_whitespace_bounded(tokens)
    unsure = [k for k, draft in enumerate(drafts) if not (bounded and draft.trusted)]
    recounts = dict(zip(unsure, count_many(tokens, [text[drafts[k].start : drafts[k].end] for k in unsure])))

    unit_ends = [unit.end for unit in units]
    chunks: list[ChunkSpan] = []
    shrunk = False
    for k, draft in enumerate(drafts):
        n = recounts.get(k, draft.tokens)
        if n <= max_tokens:
            parts = [(draft.start, draft.end, n)]
        else:
            parts = _shrink(text, draft.start, draft.end, n, tokens, max_tokens)
            shrunk = True
        for start, end, count in parts:
            pages: set[int] = set()
            kind = "text"
            u = bisect_right(unit_ends, start)
            while u < len(units) and units[u].start < end:
                if units[u].page is not None:
                    pages.add(units[u].page)
                if units[u].kind is ElementKind.table:
                    kind = "table"
                u += 1
            chunks.append(ChunkSpan(0, start, end, count, tuple(sorted(pages)), draft.path, kind, draft.context))
    if shrunk:  # the next piece of a split element may start, by its overlap, inside the shrunk one
        chunks.sort(key=lambda chunk: (chunk.start, chunk.end))
    return [replace(chunk, ordinal=ordinal) for ordinal, chunk in enumerate(chunks)]


def _shrink(
    text: str, start: int, end: int, n: int, tokens: TokenCounter, max_tokens: int
) -> list[tuple[int, int, int]]:
    """Split a span whose real count overflows, re-counting each part, until all parts fit."""
    fitted: list[tuple[int, int, int]] = []
    pending = [(start, end, n)]
    while pending:
        start, end, n = pending.pop()
        cut = _shrink_cut(text, start, end, n, tokens, max_tokens) if n > max_tokens else None
        if cut is None:
            fitted.append((start, end, n))
            continue
        left, right = _trim(text, start, cut), _trim(text, cut, end)
        left_n, right_n = count_many(tokens, [text[left[0] : left[1]], text[right[0] : right[1]]])
        pending.append((*right, right_n))
        pending.append((*left, left_n))
    return fitted


def _shrink_cut(text: str, start: int, end: int, n: int, tokens: TokenCounter, max_tokens: int) -> int | None:
    """A cut that leaves text on both sides: a token start near the budget, else mid-span."""
    spans = tokens.token_spans(text[start:end])
    target = min(len(spans) - 1, max(1, len(spans) * max_tokens // n))
    for k in range(target, 0, -1):
        cut = start + spans[k][0]
        if start < cut < end and _NON_SPACE.search(text, cut, end):
            return cut
    solid = [p for p in range(start, end) if not text[p].isspace()]
    return solid[len(solid) // 2] if len(solid) > 1 else None
