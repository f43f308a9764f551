"""One table model and one text rendering for every format's tables.

Whatever a table came from (a PDF page's layout, the HTML that unstructured derives from DOCX,
PPTX, XLSX and HTML files), it becomes a caption, a header naming each value column (several
header rows merged into one name per column) and rows of a label and values, rendered so that a
row keeps its label next to its values and each value says which column it is in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CURRENCY = "$€£¥"
_DASHES = "-–—−"
_AMOUNT = re.compile(
    rf"^[{CURRENCY}]?\s*[(\[]?[{_DASHES}+]?[{CURRENCY}]?\s*[{_DASHES}]?\s*(\d{{1,3}}(,\d{{3}})+|\d+)?(\.\d+)?\s*(%|x|bps)?[)\]]?\s*%?$",
    re.IGNORECASE,
)
_YEAR = re.compile(r"^(fy\s?)?(19|20)\d\d$", re.IGNORECASE)


def is_amount(text: str) -> bool:
    """A figure as tables print it: ``1,234`` ``(56.7)`` ``$ 12`` ``45%`` ``—`` ``n/a``; not a bare year."""
    text = text.strip()
    if not text:
        return False
    if text.strip(_DASHES) == "" or text.casefold() in ("n/a", "na", "nm"):
        return True
    return any(c.isdigit() for c in text) and bool(_AMOUNT.match(text)) and not _YEAR.match(text)


@dataclass(slots=True)
class TableRow:
    label: str
    values: list[str]  # one per value column, "" where the row has none


@dataclass(slots=True)
class Table:
    caption: list[str]  # title lines above the table
    stub_header: str  # the header above the row labels, e.g. "(In millions)"
    headers: list[str]  # one per value column, "" where a column has none
    rows: list[TableRow]


def render_table(table: Table) -> tuple[str, int]:
    """The table as text lines, and how many leading lines (caption, header) name its columns.

    Each row reads ``label | header: value | ...`` so that a row keeps its label, its figures
    and what each figure is, even when the table is split across chunks.
    """
    head: list[str] = [line for line in table.caption if line]
    if table.stub_header or any(table.headers):
        head.append(" | ".join([table.stub_header, *table.headers]).strip())
    lines = []
    for row in table.rows:
        cells = [row.label] if row.label else []
        for name, value in zip(table.headers, row.values):
            if value:
                cells.append(f"{name}: {value}" if name else value)
        if cells:
            lines.append(" | ".join(cells))
    return "\n".join(head + lines), len(head)


# --- HTML tables ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Cell:
    text: str
    header: bool  # a <th>, or a cell of a <thead> row


def html_table(text_as_html: str) -> Table | None:
    """The table in unstructured's ``text_as_html``, or None when it holds no rows.

    Header rows are the ``<thead>``/``<th>`` rows; without any, the leading rows that hold no
    figures when later rows do (period headers over figures), else the first row. Merged
    header cells repeat over the columns they span; a header row that ends early, or leaves a
    cell empty after a filled one, is taken to span to the right ("Three Months Ended" over
    two dates), as DOCX and PPTX merges come through.
    """
    import lxml.html

    try:
        root = lxml.html.fragment_fromstring(text_as_html, create_parent="div")
    except Exception:  # lxml raises several unrelated types on junk markup
        return None
    caption = [" ".join(c.text_content().split()) for c in root.iter("caption")]
    grid: list[list[_Cell]] = []
    for tr in root.iter("tr"):
        in_head = any(ancestor.tag == "thead" for ancestor in tr.iterancestors())
        row: list[_Cell] = []
        for cell in tr:
            if cell.tag not in ("td", "th"):
                continue
            text = " ".join(cell.text_content().split())
            try:
                span = max(1, min(int(cell.get("colspan") or 1), 1000))
            except ValueError:
                span = 1
            is_header = in_head or cell.tag == "th"
            row.extend(_Cell(text if is_header or n == 0 else "", is_header) for n in range(span))
        if any(cell.text for cell in row):
            grid.append(row)
    if not grid:
        return None
    width = max(len(row) for row in grid)
    count = _header_count(grid)
    header_rows = [[c.text for c in row] + [""] * (width - len(row)) for row in grid[:count]]
    body_rows = [_join_symbols([c.text for c in row] + [""] * (width - len(row))) for row in grid[count:]]
    used = [c == 0 or any(row[c] for row in body_rows) for c in range(width)]  # spacer and "$" columns go
    values = sum(used) - 1
    header_rows = [_align_header(row, used, values) for row in header_rows]
    body_rows = [[text for text, keep in zip(row, used) if keep] for row in body_rows]
    columns = [" ".join(dict.fromkeys(row[c] for row in header_rows if row[c])) for c in range(values + 1)]
    body = [TableRow(texts[0], texts[1:]) for texts in body_rows]
    return Table([c for c in caption if c], columns[0], columns[1:], body)


def _align_header(row: list[str], used: list[bool], values: int) -> list[str]:
    """A header row over the value columns that remain once spacer columns are gone.

    unstructured's HTML drops ``colspan``, so a header's position may not match the columns
    below it: as many names as value columns are taken in order, a lone name spans them all,
    anything else keeps its position and spreads right.
    """
    names = [text for text in row[1:] if text]
    if len(names) == values:
        return [row[0], *names]
    if len(names) == 1:
        return [row[0], *names * values]
    return _spread_right([text for text, keep in zip(row, used) if keep])


_CURRENCY_CELL = frozenset(CURRENCY)
_CLOSING_CELLS = frozenset({")", "%", ")%", "%)"})


def _join_symbols(texts: list[str]) -> list[str]:
    """Filings' HTML puts "$" and ")" in cells of their own: join them to their figure."""
    out = list(texts)
    for c, text in enumerate(out):
        if text in _CURRENCY_CELL:
            following = next((k for k in range(c + 1, len(out)) if out[k]), None)
            if following is not None:
                out[following] = text + out[following]
                out[c] = ""
        elif text in _CLOSING_CELLS:
            previous = next((k for k in range(c - 1, 0, -1) if out[k]), None)
            if previous is not None:
                out[previous] += text
                out[c] = ""
    return out


def _header_count(grid: list[list[_Cell]]) -> int:
    marked = 0
    while marked < len(grid) - 1 and all(cell.header or not cell.text for cell in grid[marked]) and any(
        cell.header for cell in grid[marked]
    ):
        marked += 1
    if marked:
        return marked
    has_figures = [any(is_amount(cell.text) and cell.text.strip(_DASHES) for cell in row[1:]) for row in grid]
    if any(has_figures):
        leading = next(k for k, figures in enumerate(has_figures) if figures)
        return min(leading, 3) if leading < len(grid) else 1
    return 1 if len(grid) > 1 else 0


def _spread_right(texts: list[str]) -> list[str]:
    width = len(texts)
    filled = sum(1 for text in texts[1:] if text)
    if filled == 0 or filled == width - 1:
        return texts
    out = list(texts)
    for c in range(2, width):
        if not out[c] and out[c - 1]:
            out[c] = out[c - 1]
    return out
