"""Tables on born-digital PDF pages, found from where the words and rules sit (no model).

pdfminer groups a page's characters into text lines and boxes by proximity, which suits prose
but takes a financial table apart column by column: the row labels end up in one box and each
column of figures in another, far from the labels they belong to. Here the page's lines are cut
into cells at wide horizontal gaps, cells on the same baseline form rows, and a run of rows whose
cells hold figures to the right of a label becomes a table: its value columns come from how the
figures line up, its column headers from the rows above the first figures (several header rows,
such as "Three Months Ended" over "July 30, 2023", merge into one name per column), and its
caption from the title lines just above. SEC filings rarely rule their tables, so alignment is
what is left to go on. Tables that are drawn as a grid (manuals, forms) are read from their
rules first, since their cells may hold text rather than figures.

Everything here is pure: the PDF reading lives in ``ingest.parsing``.
"""

from __future__ import annotations

import re
from bisect import bisect_right
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
# The gap between a table and its title may be this many times the widest gap between rows
# (a filing's "(in millions)" line sits 2.4 line heights above "Year Ended December 31,").
CAPTION_GAP_SHARE = 1.5
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
    columns: tuple[tuple[float, float], ...] = ()  # value columns' x-intervals (aligned tables)


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


def find_tables(lines: Sequence[Line], page_height: float | None = None, rules: Sequence[Rule] = ()) -> list[PageTable]:
    """The tables on one page, top to bottom; lines not in any table are left to the caller.

    Tables drawn as a grid of ruling lines come first (their cells may hold any text); the
    figures tables of the remaining lines are then found from alignment alone.
    """
    ceiling = RUNNING_HEAD_BAND * page_height if page_height else 0.0
    ruled = find_ruled_tables(lines, rules, page_height)
    taken = {index for table in ruled for index in table.lines}
    cells = [cell for index, line in enumerate(lines) if index not in taken for cell in split_cells(line, index)]
    if not cells:
        return ruled
    rows = group_rows(cells)
    line_height = median(row.bottom - row.top for row in rows) or 1.0
    max_gap = ROW_GAP_LINES * line_height
    if ruled:  # their captions, then the rest of the page without them
        for found in ruled:
            first = next((k for k, row in enumerate(rows) if row.top >= found.top), len(rows))
            caption = _caption_rows(rows, first, 0, max_gap, lines, found.lines, ceiling, found.top)
            found.table.caption = [" ".join(cell.text for cell in rows[c].cells) for c in caption]
            found.lines |= {line for c in caption for line in rows[c].lines}
            if caption:
                found.top = rows[caption[0]].top
        taken = {index for table in ruled for index in table.lines}
        cells = [cell for cell in cells if not set(cell.lines) & taken]
        if not cells:
            return ruled
        rows = group_rows(cells)
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
        caption = _caption_rows(rows, first, taken_until, max_gap, lines, table_lines, ceiling)
        table = _build(rows, caption, header, body, value_x0, line_height)
        if table is not None:
            if not header and not caption and tables:
                _continue_head(table, tables[-1], line_height)
            tables.append(table)
        taken_until = body[-1] + 1
        k = body[-1] + 1
    return sorted(ruled + tables, key=lambda table: table.top)


def _continue_head(table: PageTable, before: PageTable, line_height: float) -> None:
    """A table with neither caption nor header that sits under another whose value columns it
    shares is that table's continuation, set apart by a wider gap ("Liabilities and equity"
    below "Total assets"): it takes the caption and column names, or its figures name nothing."""
    if not before.columns or len(before.columns) != len(table.columns):
        return
    if any(abs((a0 + a1) / 2 - (b0 + b1) / 2) > 2 * line_height for (a0, a1), (b0, b1) in zip(before.columns, table.columns)):
        return
    table.table.caption = list(before.table.caption)
    table.table.stub_header = table.table.stub_header or before.table.stub_header
    table.table.headers = list(before.table.headers)


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
    rows: list[Row], first: int, floor: int, max_gap: float, lines: Sequence[Line], table_lines: set[int], ceiling: float,
    table_top: float | None = None,
) -> list[int]:
    """Title lines right above a table: one or two cells each, short, without figures, and each the
    whole of its text box (with the table), so that a paragraph's last line stays in place. A
    line ending in a colon introduces the table and is the caption's first line."""
    caption: list[int] = []
    k = first - 1
    below_top = table_top if table_top is not None else rows[first].top
    while k >= floor and len(caption) < MAX_CAPTION_ROWS:
        row = rows[k]
        # A title stands further off its table than rows stand from each other.
        if below_top - row.bottom > (max_gap if caption else CAPTION_GAP_SHARE * max_gap) or len(row.cells) > 2:
            break
        text = " ".join(cell.text for cell in row.cells)  # "Table 2-1   FUNCTION_USAGE view"
        if any(cell.amount for cell in row.cells) or len(text) > CAPTION_MAX_CHARS:
            break
        # The top band holds running heads, but a title whose first line starts there (the
        # company's name over "CONSOLIDATED BALANCE SHEETS") is one text box with the line below.
        if row.bottom <= ceiling and not (caption and _same_box(row, rows[caption[0]], lines)):
            break
        caption.insert(0, k)
        if text.endswith(":"):
            break  # "... were as follows:" introduces the table; lines above it belong to the section
        below_top = row.top
        k -= 1
    return _whole_boxes_only(caption, rows, lines, table_lines, nearest_last=True)


def _same_box(row: Row, other: Row, lines: Sequence[Line]) -> bool:
    return bool({lines[i].box for i in row.lines} & {lines[i].box for i in other.lines})


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
        caption=[" ".join(cell.text for cell in rows[c].cells) for c in caption],
        stub_header=" ".join(stub),
        headers=[" ".join(parts) for parts in headers],
        rows=table_rows,
    )
    return PageTable(table, rows[taken[0]].top, rows[body[-1]].bottom, {line for t in taken for line in rows[t].lines},
                     tuple(columns))


# --- ruled tables ----------------------------------------------------------------------------------

RULE_SNAP = 2.0  # points: rules this close are one rule, and meet when they come this close
MIN_RULE_LENGTH = 4.0
MAX_RULE_THICKNESS = 2.5


@dataclass(frozen=True, slots=True)
class Rule:
    """A ruling line or a rectangle, in page coordinates with ``top`` downwards. Only a stroked
    rectangle's outline rules anything: a filled one is a background (row shading) unless it is
    thin enough to be a line itself."""

    x0: float
    top: float
    x1: float
    bottom: float
    stroked: bool = True


def rule_segments(rules: Sequence[Rule]) -> tuple[list[tuple[float, float, float]], list[tuple[float, float, float]]]:
    """Horizontal (y, x0, x1) and vertical (x, top, bottom) segments, rectangles as four edges."""
    horizontal: list[tuple[float, float, float]] = []
    vertical: list[tuple[float, float, float]] = []
    for r in rules:
        width, height = r.x1 - r.x0, r.bottom - r.top
        if height <= MAX_RULE_THICKNESS and width >= MIN_RULE_LENGTH:
            horizontal.append(((r.top + r.bottom) / 2, r.x0, r.x1))
        elif width <= MAX_RULE_THICKNESS and height >= MIN_RULE_LENGTH:
            vertical.append(((r.x0 + r.x1) / 2, r.top, r.bottom))
        elif r.stroked and width >= MIN_RULE_LENGTH and height >= MIN_RULE_LENGTH:
            horizontal += [(r.top, r.x0, r.x1), (r.bottom, r.x0, r.x1)]
            vertical += [(r.x0, r.top, r.bottom), (r.x1, r.top, r.bottom)]
    return _merge_segments(horizontal), _merge_segments(vertical)


def _merge_segments(segments: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
    """Collinear segments that touch or overlap become one."""
    merged: list[list[float]] = []
    for at, start, end in sorted(segments):
        joined = False
        for seg in reversed(merged):
            if at - seg[0] > RULE_SNAP:
                break
            if start <= seg[2] + RULE_SNAP and end >= seg[1] - RULE_SNAP:
                seg[1], seg[2] = min(seg[1], start), max(seg[2], end)
                joined = True
                break
        if not joined:
            merged.append([at, start, end])
    return [(a, b, c) for a, b, c in merged]


def find_ruled_tables(lines: Sequence[Line], rules: Sequence[Rule], page_height: float | None = None) -> list[PageTable]:
    """Tables drawn as grids: at least two columns and two rows of ruled cells holding text.

    Connected horizontal and vertical rules make a grid; a missing inner rule merges the cells
    on either side of it. Each glyph goes to the cell under its centre, so text that pdfminer
    joined across a rule is split again. The first row names the columns unless it holds figures.
    """
    horizontal, vertical = rule_segments(rules)
    if len(horizontal) < 2 or len(vertical) < 3:
        return []
    tables = []
    for hs, vs in _grids(horizontal, vertical):
        table = _ruled_table(lines, hs, vs, page_height)
        if table is not None:
            tables.append(table)
    return tables


def _meets(h: tuple[float, float, float], v: tuple[float, float, float]) -> bool:
    return h[1] - RULE_SNAP <= v[0] <= h[2] + RULE_SNAP and v[1] - RULE_SNAP <= h[0] <= v[2] + RULE_SNAP


def _grids(horizontal, vertical):
    """Groups of rules connected by crossings, with at least 2 horizontal and 3 vertical ones."""
    parent = list(range(len(horizontal) + len(vertical)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, h in enumerate(horizontal):
        for b, v in enumerate(vertical):
            if _meets(h, v):
                parent[root(a)] = root(len(horizontal) + b)
    groups: dict[int, tuple[list, list]] = {}
    for a, h in enumerate(horizontal):
        groups.setdefault(root(a), ([], []))[0].append(h)
    for b, v in enumerate(vertical):
        groups.setdefault(root(len(horizontal) + b), ([], []))[1].append(v)
    return [(hs, vs) for hs, vs in groups.values() if len(hs) >= 2 and len(vs) >= 3]


def _positions(values: list[float]) -> list[float]:
    out: list[float] = []
    for value in sorted(values):
        if not out or value - out[-1] > RULE_SNAP:
            out.append(value)
    return out


def _covered(segments, at: float, start: float, end: float) -> bool:
    """Whether a rule at ``at`` runs along the middle of ``start..end``."""
    middle = (start + end) / 2
    return any(abs(seg[0] - at) <= RULE_SNAP and seg[1] - RULE_SNAP <= middle <= seg[2] + RULE_SNAP for seg in segments)


def _ruled_table(lines: Sequence[Line], hs, vs, page_height: float | None) -> PageTable | None:
    xs = _positions([v[0] for v in vs])
    ys = _positions([h[0] for h in hs])
    if len(xs) < 3 or len(ys) < 2:
        return None
    left, right, top, bottom = xs[0], xs[-1], ys[0], ys[-1]
    n_rows, n_cols = len(ys) - 1, len(xs) - 1
    # owner[r][c]: the top-left elementary cell of the merged cell that (r, c) belongs to
    owner = [[(r, c) for c in range(n_cols)] for r in range(n_rows)]
    for r in range(n_rows):
        for c in range(1, n_cols):
            if not _covered(vs, xs[c], ys[r], ys[r + 1]):
                owner[r][c] = owner[r][c - 1]
    for r in range(1, n_rows):
        for c in range(n_cols):
            if not _covered(hs, ys[r], xs[c], xs[c + 1]) and owner[r][c] == (r, c):
                owner[r][c] = owner[r - 1][c]
    texts: dict[tuple[int, int], list[tuple[float, float, str]]] = {}
    taken: set[int] = set()
    for index, line in enumerate(lines):
        centre_y = (line.top + line.bottom) / 2
        if not top <= centre_y <= bottom:
            continue
        inside = [g for g in line.glyphs if left <= (g.x0 + g.x1) / 2 <= right]
        if not inside or len(inside) < len([g for g in line.glyphs if g.text.strip()]) / 2:
            continue
        taken.add(index)
        r = min(max(bisect_right(ys, centre_y) - 1, 0), n_rows - 1)
        for glyph in line.glyphs:
            c = min(max(bisect_right(xs, (glyph.x0 + glyph.x1) / 2) - 1, 0), n_cols - 1)
            texts.setdefault(owner[r][c], []).append((line.top, glyph.x0, glyph.text))
    if not taken:
        return None
    grid = [["" for _ in range(n_cols)] for _ in range(n_rows)]
    for (r, c), glyphs in texts.items():
        by_line: dict[float, list[tuple[float, str]]] = {}
        for line_top, x0, text in glyphs:
            by_line.setdefault(line_top, []).append((x0, text))
        grid[r][c] = " ".join(
            " ".join("".join(text for _, text in sorted(parts)).split()) for _, parts in sorted(by_line.items())
        ).strip()
    grid = [row for row in grid if any(row)]
    keep = [c for c in range(n_cols) if any(row[c] for row in grid)]
    grid = [[row[c] for c in keep] for row in grid]
    if len(keep) < 2 or sum(1 for row in grid if sum(1 for cell in row if cell) >= 2) < 2:
        return None  # a box around text, or a one-column frame: not a table
    values = [cell for row in grid for cell in row[1:] if cell]
    figures = [cell for cell in values if all(is_amount(token) for token in cell.split())]
    if sum(any(is_amount(cell) for cell in row[1:]) for row in grid) * 2 > len(grid) or len(figures) * 2 > len(values):
        return None  # a table of figures: alignment finds its caption, header rows and wrapped labels too
    header_rows = 1 if not any(is_amount(cell) for cell in grid[0][1:]) else 0
    header = grid[0] if header_rows else [""] * len(keep)
    table = Table([], header[0], header[1:], [TableRow(row[0], row[1:]) for row in grid[header_rows:]])
    return PageTable(table, top, bottom, taken)
