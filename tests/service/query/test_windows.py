"""Table windows: a hit in a split table is served with the pieces around it, within the
character budget, and citations into the window still name the piece they quote."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from service.query.citations import citation_for
from service.query.generation.extractive import ExtractiveGenerator
from service.query.types import Hit
from service.query.windows import PART_SEPARATOR, Neighbour, part_at, table_span, table_window, window_text

HEAD = "CONSOLIDATED STATEMENTS OF CASH FLOWS (In millions)\n | 2023 | 2022"


def _piece(ordinal: int, text: str, *, kind: str = "table", continued: bool = True) -> Neighbour:
    return Neighbour(100 + ordinal, ordinal, kind, HEAD if continued else "", text, (ordinal // 2 + 1,))


def _statement() -> list[Neighbour]:
    """A narrative chunk, a table in four pieces, another narrative chunk, another table."""
    return [
        _piece(0, "Liquidity was strong.", kind="text", continued=False),
        _piece(1, HEAD + "\nNet income | 2023: 5,363 | 2022: 4,869", continued=False),
        _piece(2, "Depreciation | 2023: 1,488 | 2022: 1,544"),
        _piece(3, "Purchases of property, plant and equipment | 2023: (1,577) | 2022: (1,373)"),
        _piece(4, "Net cash used in investing activities | 2023: 222 | 2022: (3,086)"),
        _piece(5, "The notes are an integral part of these statements.", kind="text", continued=False),
        _piece(6, "Segment table | 2023: 1 | 2022: 2", continued=False),
    ]


def test_the_span_is_the_run_of_pieces_of_the_hit_table():
    pieces = _statement()
    assert table_span(pieces, 3) == (1, 4)
    assert table_span(pieces, 1) == (1, 4)
    assert table_span(pieces, 0) == (0, 0)
    assert table_span(pieces, 6) == (6, 6)


def test_a_window_holds_the_whole_table_when_it_fits():
    parts = table_window(_statement(), 103, 10_000)
    assert [p.chunk_id for p in parts] == [101, 102, 103, 104]
    assert "Net income" in window_text(parts) and "investing activities" in window_text(parts)


def test_a_window_grows_towards_the_caption_first():
    pieces = _statement()
    hit = len(pieces[3].text)
    budget = hit + len(PART_SEPARATOR) + len(pieces[2].text)
    assert [p.chunk_id for p in table_window(pieces, 103, budget)] == [102, 103]


def test_no_window_outside_split_tables_or_when_nothing_else_fits():
    pieces = _statement()
    assert table_window(pieces, 100, 10_000) == []  # narrative
    assert table_window(pieces, 106, 10_000) == []  # a table in one chunk
    assert table_window(pieces, 103, 10) == []  # budget below the hit itself
    assert table_window(pieces, 999, 10_000) == []  # not among the neighbours


def test_a_gap_in_the_ordinals_ends_the_table():
    pieces = [p for p in _statement() if p.ordinal != 2]  # e.g. a chunk deleted between reads
    assert [p.chunk_id for p in table_window(pieces, 103, 10_000)] == [103, 104]


@given(st.lists(st.tuples(st.booleans(), st.booleans(), st.integers(1, 60)), min_size=1, max_size=14),
       st.integers(0, 13), st.integers(0, 400))
def test_window_invariants(shape, pick, budget):
    pieces = [Neighbour(10 + i, i, "table" if table else "text", "head" if continued else "", "x" * length, (i,))
              for i, (table, continued, length) in enumerate(shape)]
    hit = pieces[pick % len(pieces)]
    parts = table_window(pieces, hit.chunk_id, budget)
    if not parts:
        return
    ids = [p.chunk_id for p in parts]
    assert hit.chunk_id in ids and len(ids) >= 2
    assert ids == list(range(ids[0], ids[-1] + 1))  # contiguous, in document order
    assert all(p.context for p in pieces if ids[0] < p.chunk_id <= ids[-1])  # later pieces continue the table
    text = window_text(parts)
    assert len(text) <= max(budget, len(hit.text))
    for part in parts:
        assert text[part.start:part.end] == part.text
        assert part_at(parts, part.start) is part and part_at(parts, part.end - 1) is part


def _window_hit() -> Hit:
    pieces = _statement()
    parts = tuple(table_window(pieces, 103, 10_000))
    return Hit(chunk_id=103, document_id=1, score=1.0, text=pieces[3].text, source="10k.pdf", title="Annual report",
               pages=[2], heading_path=[], collection="default", kind="table", ordinal=3, window=parts)


def test_a_citation_into_a_window_names_the_piece_it_quotes():
    hit = _window_hit()
    start = hit.passage.index("Depreciation")
    end = hit.passage.index("\n", start) if "\n" in hit.passage[start:] else len(hit.passage)
    citation = citation_for(hit, 1, start, end, 0.9)
    piece = next(p for p in hit.window if p.chunk_id == citation.chunk_id)
    assert citation.chunk_id == 102 and citation.page == 2
    assert piece.text[citation.start:citation.end] == citation.quote == hit.passage[start:end]


def test_an_extractive_answer_can_quote_a_row_from_a_neighbouring_piece():
    answer = ExtractiveGenerator().answer("How much was depreciation in 2023?", [_window_hit()])
    assert answer.grounded and "1,488" in answer.text
    citation = answer.citations[0]
    piece = next(p for p in _window_hit().window if p.chunk_id == citation.chunk_id)
    assert citation.chunk_id == 102 and piece.text[citation.start:citation.end] == citation.quote
