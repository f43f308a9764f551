"""Tables on born-digital PDF pages, found from where the words sit (no model, no ruling lines).

pdfminer groups a page's characters into text lines and boxes by proximity, which suits prose
but takes a financial table apart column by column: the row labels end up in one box and each
column of figures in another, far from the labels they belong to. Here the page's lines are cut
into cells at wide horizontal gaps, cells on the same baseline form rows, and a run of rows whose
cells hold figures to the right of a label becomes a table: its value columns come from how the
figures line up, its column headers from the rows above the first figures (several header rows,
such as "Three Months Ended" over "July 30, 2023", merge into one name per column), and its
caption from the title lines just above. SEC filings rarely rule their tables, so alignment is
what is left to go on.

Everything here is pure: the PDF reading lives in ``ingest.parsing``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from statistics import median
from typing import Sequence

from ingest.tables import CURRENCY, Table, TableRow, is_amount

# A gap between two glyphs of a line wider than this many font sizes separates two cells. Word
# spacing is about a quarter of the font size; figures in neighbouring columns sit further apart.
CELL_GAP_EM = 0.8
# Rows of one table are at most this many line heights apart (blank rows between sections).
ROW_GAP_LINES = 2.2
# Header and caption rows above a table: at most this many. A caption line never comes from the
# top band of the page, where running heads ("Table of Contents") sit.
MAX_HEADER_ROWS = 6
MAX_CAPTION_ROWS = 4
RUNNING_HEAD_BAND = 0.07
CAPTION_MAX_CHARS = 160
MIN_DATA_ROWS = 2

_TRAILING_CURRENCY = re.compile(rf"^(.*\S)\s+([{CURRENCY}])$")
_CONTINUED_LABEL = re.compile(r"(,|\b(and|or|of|the|to|for|in|on|from|by|with|net|less|plus|including|excluding))$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Glyph:
    text: str
    x0: float
    x1: float


@dataclass(frozen=True, slots=True)
class Line:
    """A text line as pdfminer found it, in page coordinates with ``top`` measured downwards."""

    box: int  # which text box the line belongs to
    top: float
    bottom: float
    size: float  # font size
    glyphs: tuple[Glyph, ...]

    @property
    def text(self) -> str:
        return "".join(g.text for g in self.glyphs)


@dataclass(slots=True)
class Cell:
    text: str
    x0: float
    x1: float
    top: float
    bottom: float
    lines: tuple[int, ...]  # indices of the Lines it was cut from

    @property
    def amount(self) -> bool:
        return is_amount(self.text)


@dataclass(slots=True)
class Row:
    cells: list[Cell]
    top: float
    bottom: float

    @property
    def lines(self) -> set[int]:
        return {line for cell in self.cells for line in cell.lines}


@dataclass(slots=True)
class PageTable:
    """A table found on a page, where it sits, and the indices of the Lines it took over."""

    table: Table
    top: float
    bottom: float
    lines: set[int]


# --- cells and rows ----------------------------------------------------------------------------


def split_cells(line: Line, index: int, gap_em: float = CELL_GAP_EM) -> list[Cell]:
    """Cut a line where the space between two glyphs is wider than ``gap_em`` font sizes.

    Space glyphs do not count as ink, so a typed space followed by a wide positioning gap still
    separates cells.
    """
    pieces: list[list[Glyph]] = []
    last_ink: Glyph | None = None
    for glyph in line.glyphs:
        if not glyph.text.strip():
            if pieces:
                pieces[-1].append(glyph)
            continue
        if last_ink is None or glyph.x0 - last_ink.x1 > gap_em * line.size:
            pieces.append([])
        pieces[-1].append(glyph)
        last_ink = glyph
    cells: list[Cell] = []
    for glyphs in pieces:
        text = " ".join("".join(g.text for g in glyphs).split())
        ink = [g for g in glyphs if g.text.strip()]
        if text:
            cells.append(Cell(text, ink[0].x0, ink[-1].x1, line.top, line.bottom, (index,)))
    return cells


def attach_currency(cells: list[Cell]) -> list[Cell]:
    """A currency sign set apart belongs to the figure after it (``$ | 1,234`` -> ``$1,234``).

    Filings print the sign at the left edge of a column and the figure right-aligned, often as
    separate text runs; a sign that ended up at the end of the previous cell moves over too.
    """
    out: list[Cell] = []
    carry: Cell | None = None
    for cell in cells:
        if carry is not None:
            if is_amount(cell.text) and cell.text[0] not in CURRENCY:
                cell = Cell(carry.text + cell.text, carry.x0, cell.x1, cell.top, cell.bottom, carry.lines + cell.lines)
            else:
                out.append(carry)
            carry = None
        if cell.text in CURRENCY:
            carry = cell
            continue
        trailing = _TRAILING_CURRENCY.match(cell.text)
        if trailing:
            out.append(Cell(trailing.group(1), cell.x0, cell.x1, cell.top, cell.bottom, cell.lines))
            carry = Cell(trailing.group(2), cell.x1, cell.x1, cell.top, cell.bottom, ())
            continue
        out.append(cell)
    if carry is not None:
        out.append(carry)
    return out


def group_rows(cells: Sequence[Cell]) -> list[Row]:
    """Cells whose vertical extents overlap by half the smaller height share a row."""
    rows: list[Row] = []
    for cell in sorted(cells, key=lambda c: (c.top + c.bottom) / 2):
        row = rows[-1] if rows else None
        if row is not None:
            overlap = min(row.bottom, cell.bottom) - max(row.top, cell.top)
            if overlap >= 0.5 * min(row.bottom - row.top, cell.bottom - cell.top):
                row.cells.append(cell)
                row.top, row.bottom = min(row.top, cell.top), max(row.bottom, cell.bottom)
                continue
        rows.append(Row([cell], cell.top, cell.bottom))
    for row in rows:
        row.cells = attach_currency(sorted(row.cells, key=lambda c: c.x0))
    return rows


# --- tables ------------------------------------------------------------------------------------


def _first_value(row: Row) -> int | None:
    """Index of the row's first figure right of a label, or 0 for a row of figures only."""
    if all(cell.amount for cell in row.cells):
        return 0
    return next((k for k, cell in enumerate(row.cells) if k and cell.amount), None)


def _is_data_row(row: Row) -> bool:
    """Two cells or more with figures: a label and its values, or values whose label is above.

    A figure in the first cell followed by text is a footnote ("(1) Includes ..."), not data.
    """
    return len(row.cells) >= 2 and _first_value(row) is not None


def _value_start(row: Row) -> float:
    k = _first_value(row)
    return row.cells[k or 0].x0


def find_tables(lines: Sequence[Line], page_height: float | None = None) -> list[PageTable]:
    """The tables on one page, top to bottom; lines not in any table are left to the caller."""
    cells = [cell for index, line in enumerate(lines) for cell in split_cells(line, index)]
    if not cells:
        return []
    rows = group_rows(cells)
    line_height = median(row.bottom - row.top for row in rows) or 1.0
    max_gap = ROW_GAP_LINES * line_height
    tables: list[PageTable] = []
    taken_until = 0  # rows before this index belong to an earlier table
    k = 0
    while k < len(rows):
        if not _is_data_row(rows[k]):
            k += 1
            continue
        body = [k]
        value_x0 = _value_start(rows[k])
        pending: list[int] = []
        j = k + 1
        while j < len(rows) and rows[j].top - rows[(pending or body)[-1]].bottom <= max_gap:
            row = rows[j]
            if _is_data_row(row):
                body.extend(pending)
                pending = []
                body.append(j)
                value_x0 = min(value_x0, _value_start(row))
            elif _is_label_only(row, value_x0, line_height):
                pending.append(j)  # a label-only row: a section title, or a label wrapped over lines
            else:
                break
            j += 1
        data_rows = sum(_is_data_row(rows[b]) for b in body)
        if data_rows < MIN_DATA_ROWS:
            k += 1
            continue
        lead = _lead_rows(rows, k, taken_until, value_x0, line_height, max_gap)
        labels = [cell for b in body for cell in rows[b].cells if cell.x1 <= value_x0 and not cell.amount]
        label_span = (min((c.x0 for c in labels), default=value_x0), max((c.x1 for c in labels), default=0.0))
        right = max(cell.x1 for b in body for cell in rows[b].cells)
        header = _header_rows(rows, lead[0] if lead else k, taken_until, value_x0, label_span, right, max_gap)
        if not header:  # nothing above proves these lines belong to the table: only whole boxes
            body_lines = {line for b in body for line in rows[b].lines}
            lead = _whole_boxes_only(lead, rows, lines, body_lines, nearest_last=True)
        body = lead + body
        first = header[0] if header else body[0]
        table_lines = {line for r in (*header, *body) for line in rows[r].lines}
        ceiling = RUNNING_HEAD_BAND * page_height if page_height else 0.0
        caption = _caption_rows(rows, first, taken_until, max_gap, lines, table_lines, ceiling)
        table = _build(rows, caption, header, body, value_x0, line_height)
        if table is not None:
            tables.append(table)
        taken_until = body[-1] + 1
        k = body[-1] + 1
    return tables


def _lead_rows(rows: list[Row], first_body: int, floor: int, value_x0: float, line_height: float, max_gap: float) -> list[int]:
    """Label-only rows right above the first figures ("Revenue:", "Cash flows from operations")."""
    lead: list[int] = []
    k = first_body - 1
    below = rows[first_body]
    while k >= floor:
        row = rows[k]
        if below.top - row.bottom > max_gap or not _is_label_only(row, value_x0, line_height):
            break
        lead.insert(0, k)
        below = row
        k -= 1
    return lead


def _is_label_only(row: Row, value_x0: float, line_height: float) -> bool:
    return not any(cell.amount for cell in row.cells) and all(cell.x1 <= value_x0 + line_height for cell in row.cells)


def _header_rows(
    rows: list[Row], first_body: int, floor: int, value_x0: float, label_span: tuple[float, float], right: float,
    max_gap: float,
) -> list[int]:
    """Rows just above the body, without figures, with text over the value columns only.

    A line that starts over the row labels and reaches into the value columns, or a lone line
    centred on the whole table rather than on its value columns, is a title, not a header.
    """
    label_x0, label_x1 = label_span
    header: list[int] = []
    k = first_body - 1
    below = rows[first_body]
    while k >= floor and len(header) < MAX_HEADER_ROWS:
        row = rows[k]
        if below.top - row.bottom > max_gap or any(cell.amount for cell in row.cells):
            break
        if not any(cell.x1 > value_x0 for cell in row.cells):
            break
        if any(cell.x1 > value_x0 and cell.x0 < label_x1 for cell in row.cells):
            break
        if len(row.cells) == 1 and _centred(row.cells[0], label_x0, right) and not _centred(row.cells[0], value_x0, right):
            break
        header.insert(0, k)
        below = row
        k -= 1
    return header


def _caption_rows(
    rows: list[Row], first: int, floor: int, max_gap: float, lines: Sequence[Line], table_lines: set[int], ceiling: float
) -> list[int]:
    """Title lines right above a table: one cell each, short, without figures, and each the
    whole of its text box (with the table), so that a paragraph's last line stays in place. A
    line ending in a colon introduces the table and is the caption's first line."""
    caption: list[int] = []
    k = first - 1
    below = rows[first]
    while k >= floor and len(caption) < MAX_CAPTION_ROWS:
        row = rows[k]
        if below.top - row.bottom > max_gap or len(row.cells) != 1:
            break
        cell = row.cells[0]
        if cell.amount or len(cell.text) > CAPTION_MAX_CHARS or row.bottom <= ceiling:
            break
        caption.insert(0, k)
        if cell.text.endswith(":"):
            break  # "... were as follows:" introduces the table; lines above it belong to the section
        below = row
        k -= 1
    return _whole_boxes_only(caption, rows, lines, table_lines, nearest_last=True)


def _whole_boxes_only(
    candidates: list[int], rows: list[Row], lines: Sequence[Line], table_lines: set[int], *, nearest_last: bool
) -> list[int]:
    """The candidate rows next to the table whose text boxes the table takes whole.

    Rows are checked from the one nearest the table outwards; the first that shares its box
    with text outside the table ends the run, so a paragraph never loses a line to a table.
    """
    taken = set(table_lines) | {line for c in candidates for line in rows[c].lines}
    order = range(len(candidates) - 1, -1, -1) if nearest_last else range(len(candidates))
    kept: list[int] = []
    for n in order:
        boxes = {lines[i].box for i in rows[candidates[n]].lines}
        if any(line.box in boxes and i not in taken for i, line in enumerate(lines)):
            break
        kept.append(candidates[n])
    return sorted(kept)


def _columns(rows: list[Row], body: list[int], value_x0: float, tolerance: float) -> list[tuple[float, float]]:
    """Value columns as x-intervals: figures that overlap horizontally share a column."""
    spans = sorted(
        (cell.x0, cell.x1) for b in body for cell in rows[b].cells if cell.amount and cell.x0 >= value_x0 - tolerance
    )
    columns: list[list[float]] = []
    for x0, x1 in spans:
        if columns and x0 <= columns[-1][1]:
            columns[-1][1] = max(columns[-1][1], x1)
        else:
            columns.append([x0, x1])
    return [(x0, x1) for x0, x1 in columns]


def _column_of(cell: Cell, columns: list[tuple[float, float]]) -> int:
    """The column a value cell overlaps most, else the nearest one."""
    best, best_score = 0, float("-inf")
    for c, (x0, x1) in enumerate(columns):
        overlap = min(x1, cell.x1) - max(x0, cell.x0)
        score = overlap if overlap > 0 else -min(abs(cell.x0 - x1), abs(x0 - cell.x1))
        if score > best_score:
            best, best_score = c, score
    return best


def _centred(cell: Cell, left: float, right: float, share: float = 0.1) -> bool:
    return abs((cell.x0 + cell.x1) / 2 - (left + right) / 2) <= share * (right - left)


def _centred_over(cell: Cell, columns: list[tuple[float, float]]) -> bool:
    return len(columns) > 1 and _centred(cell, columns[0][0], columns[-1][1], 0.15)


def _header_columns(
    cell: Cell, row_cells: list[Cell], columns: list[tuple[float, float]], tolerance: float, top_row: bool
) -> list[int]:
    """The columns a header cell names.

    A cell over two columns or more names those. In the top header row, a cell set between
    columns ("Fiscal 2024" above four of them) names the columns nearer to it than to the
    row's other cells; lower rows name the column they sit over.
    """
    spanned = [c for c, (x0, x1) in enumerate(columns) if min(x1, cell.x1) - max(x0, cell.x0) > 0]
    if len(spanned) >= 2:
        return spanned
    centre = (cell.x0 + cell.x1) / 2
    if spanned and (not top_row or columns[spanned[0]][0] - tolerance <= centre <= columns[spanned[0]][1] + tolerance):
        return spanned
    if not top_row:
        return [_column_of(cell, columns)]
    centres = [(other.x0 + other.x1) / 2 for other in row_cells]
    mine = [c for c, (x0, x1) in enumerate(columns) if min(centres, key=lambda at: abs(at - (x0 + x1) / 2)) == centre]
    return mine or [_column_of(cell, columns)]


def _build(
    rows: list[Row], caption: list[int], header: list[int], body: list[int], value_x0: float, line_height: float
) -> PageTable | None:
    columns = _columns(rows, body, value_x0, line_height)
    if not columns:
        return None
    column_x0 = columns[0][0] - line_height
    headers: list[list[str]] = [[] for _ in columns]
    stub: list[str] = []
    for n, h in enumerate(header):
        over_values = [cell for cell in rows[h].cells if cell.x1 > column_x0]
        for cell in rows[h].cells:
            if cell.x1 <= column_x0:
                stub.append(cell.text)
            elif len(over_values) == 1 and _centred_over(cell, columns):
                for parts in headers:  # "Years Ended" centred over all the periods below it
                    parts.append(cell.text)
            else:
                for c in _header_columns(cell, over_values, columns, line_height / 2, n == 0):
                    headers[c].append(cell.text)
    table_rows: list[TableRow] = []
    wrapped = ""  # a label cut short at the end of a label-only row, continued by the next row
    for b in body:
        labels, values = [], [""] * len(columns)
        for cell in rows[b].cells:
            if cell.x1 <= column_x0 and not cell.amount:
                labels.append(cell.text)
            else:
                c = _column_of(cell, columns)
                values[c] = f"{values[c]} {cell.text}".strip()
        label = " ".join(labels)
        if not any(values):
            if _CONTINUED_LABEL.search(label):
                wrapped = f"{wrapped} {label}".strip()
                continue
            if wrapped:
                table_rows.append(TableRow(wrapped, [""] * len(columns)))
            wrapped = ""
            table_rows.append(TableRow(label, values))
            continue
        if wrapped:
            label = f"{wrapped} {label}".strip()
            wrapped = ""
        elif not label and table_rows and not any(table_rows[-1].values):
            label = table_rows.pop().label  # values on the line after their label
        table_rows.append(TableRow(label, values))
    if wrapped:
        table_rows.append(TableRow(wrapped, [""] * len(columns)))
    taken = [*caption, *header, *body]
    table = Table(
        caption=[rows[c].cells[0].text for c in caption],
        stub_header=" ".join(stub),
        headers=[" ".join(parts) for parts in headers],
        rows=table_rows,
    )
    return PageTable(table, rows[taken[0]].top, rows[body[-1]].bottom, {line for t in taken for line in rows[t].lines})
