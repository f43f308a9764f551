"""Table windows: a hit inside a split table is read together with the rest of the table.

A table longer than the embedder's budget is stored as several chunks (``ingest.chunking``):
the first holds its caption and header, later pieces repeat that head as their ``context``.
Retrieval ranks the pieces on their own, which is what makes a row findable; but a reader (a
person, or the generator) needs the rows around it: the statement's other lines, its totals,
the periods side by side. So each hit in such a table is served with a *window*: the hit's
piece plus the neighbouring pieces of the same table, grown around the hit (towards the caption
first) while the window stays within ``table_window_chars``. Later hits that the window already
holds are dropped, which leaves their places to other passages.

Citations still point into single chunks: a window is a list of parts, each a whole chunk
text at a known offset of the window text (``part_at``). Pure logic here; the chunk rows come
from ``Store.chunk_neighbours``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

PART_SEPARATOR = "\n\n"  # a blank line: no sentence of a citation spans two chunks


@dataclass(frozen=True)
class Neighbour:
    """A chunk of the hit's document, as the window needs it."""

    chunk_id: int
    ordinal: int
    kind: str
    context: str  # non-empty on the later pieces of a split table (its repeated head)
    text: str
    pages: tuple[int, ...]


@dataclass(frozen=True)
class WindowPart:
    chunk_id: int
    start: int  # where this chunk's text begins in the window text
    text: str
    pages: tuple[int, ...]

    @property
    def end(self) -> int:
        return self.start + len(self.text)


def table_span(neighbours: Sequence[Neighbour], index: int) -> tuple[int, int]:
    """``(first, last)`` indexes of the table piece run holding ``neighbours[index]``: a later
    piece (non-empty context) always continues the chunk before it; a table run goes on while
    the next chunk is a table piece that continues it. ``neighbours`` are consecutive ordinals."""
    first = index
    while first > 0 and neighbours[first].context and neighbours[first - 1].ordinal == neighbours[first].ordinal - 1:
        first -= 1
    last = index
    while (last + 1 < len(neighbours) and neighbours[last + 1].kind == "table" and neighbours[last + 1].context
           and neighbours[last + 1].ordinal == neighbours[last].ordinal + 1):
        last += 1
    return first, last


def grow(lengths: Sequence[int], index: int, first: int, last: int, max_chars: int) -> tuple[int, int]:
    """The widest run ``[a, b]`` around ``index`` within ``[first, last]`` whose texts (joined by
    the separator) fit ``max_chars``, taking the piece above (towards the caption) before the
    one below at each step. The hit's own piece is always in, whatever its length."""
    a = b = index
    total = lengths[index]
    gap = len(PART_SEPARATOR)
    while True:
        if a > first and total + gap + lengths[a - 1] <= max_chars:
            a -= 1
            total += gap + lengths[a]
        elif b < last and total + gap + lengths[b + 1] <= max_chars:
            b += 1
            total += gap + lengths[b]
        else:
            return a, b


def table_window(neighbours: Sequence[Neighbour], chunk_id: int, max_chars: int) -> list[WindowPart]:
    """The window for the hit ``chunk_id`` (one of ``neighbours``): its parts in document order,
    or ``[]`` when the hit is not in a split table or nothing else fits."""
    index = next((i for i, n in enumerate(neighbours) if n.chunk_id == chunk_id), None)
    if index is None:
        return []
    first, last = table_span(neighbours, index)
    if first == last:
        return []
    a, b = grow([len(n.text) for n in neighbours], index, first, last, max_chars)
    if a == b:
        return []
    parts, offset = [], 0
    for n in neighbours[a : b + 1]:
        parts.append(WindowPart(n.chunk_id, offset, n.text, n.pages))
        offset += len(n.text) + len(PART_SEPARATOR)
    return parts


def window_text(parts: Sequence[WindowPart]) -> str:
    return PART_SEPARATOR.join(part.text for part in parts)


def part_at(parts: Sequence[WindowPart], offset: int) -> WindowPart:
    """The part whose text holds ``offset`` of the window text (a separator belongs to the part
    after it)."""
    for part in parts:
        if offset < part.end:
            return part
    return parts[-1]
