"""Tables in born-digital PDFs: synthetic statements drawn with fpdf2, ruled and unruled.

Each fixture sets a caption, a two-row period header ("Three Months Ended" over the dates), a
"$" printed apart from its figure, a negative figure in parentheses and a section row, with
prose above and below the table that must come through once and unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest import pdf_layout
from ingest.chunking import chunk_document
from ingest.documents import ElementKind, ParsedDocument
from ingest.parsing import classify_paragraph, could_be_title, looks_like_heading, parse_file
from ingest.pdf_layout import Glyph, Line, find_tables
from ingest.tables import Table, TableRow, is_amount, render_table
from ingest.tokens import RegexTokenCounter

INTRO = "Net sales rose in the quarter on higher volumes in every region, as the statement below shows."
OUTRO = "The accompanying notes are an integral part of these condensed consolidated financial statements."
CAPTION = "CONDENSED CONSOLIDATED STATEMENTS OF OPERATIONS"
UNITS = "(In millions, except per share amounts)"
ROWS = [
    ("Net sales:", None, None),
    ("Products", "$ 60,584", "$ 63,355"),
    ("Services", "21,213", "19,604"),
    ("Total net sales", "81,797", "82,959"),
    ("Operating expenses:", None, None),
    ("Research and development", "7,442", "6,797"),
    ("Other income/(expense), net", "(265)", "(10)"),
    ("Net income", "$ 19,881", "$ 19,442"),
]
COLUMNS = (380.0, 480.0)  # right edges of the two value columns, in points
DOLLAR_X = (320.0, 420.0)  # where a column's "$" is printed, apart from its figure


def make_statement(path: Path, *, ruled: bool, rows: list[tuple[str, str | None, str | None]] = ROWS) -> Path:
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format="letter")
    pdf.set_auto_page_break(False)
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    pdf.set_xy(50, 60)
    pdf.multi_cell(500, 13, INTRO)
    y = 120.0
    pdf.set_font("Helvetica", style="B", size=10)
    pdf.text(pdf.w / 2 - pdf.get_string_width(CAPTION) / 2, y, CAPTION)
    pdf.set_font("Helvetica", size=9)
    y += 13
    pdf.text(pdf.w / 2 - pdf.get_string_width(UNITS) / 2, y, UNITS)
    y += 24
    span = "Three Months Ended"
    pdf.text((COLUMNS[0] + COLUMNS[1]) / 2 - 30 - pdf.get_string_width(span) / 2, y, span)
    y += 12
    for right, date in zip(COLUMNS, ("July 1, 2023", "June 25, 2022")):
        pdf.text(right - pdf.get_string_width(date), y, date)
    top = y + 5
    for label, *values in rows:
        y += 14
        pdf.text(60 if values[0] else 50, y, label)
        for right, dollar_x, value in zip(COLUMNS, DOLLAR_X, values):
            if value is None:
                continue
            if value.startswith("$ "):
                pdf.text(dollar_x, y, "$")
                value = value[2:]
            pdf.text(right - pdf.get_string_width(value), y, value)
        if ruled:
            pdf.line(50, y + 4, COLUMNS[1] + 5, y + 4)
    if ruled:
        for x in (45, 300, 400, COLUMNS[1] + 5):
            pdf.line(x, top, x, y + 4)
        pdf.line(45, top, COLUMNS[1] + 5, top)
    pdf.set_font("Helvetica", size=10)
    pdf.set_xy(50, y + 30)
    pdf.multi_cell(500, 13, OUTRO)
    pdf.output(str(path))
    return path


def parse(path: Path) -> ParsedDocument:
    return parse_file(path, max_bytes=10_000_000, max_chars=1_000_000)


def the_table(document: ParsedDocument) -> tuple[str, int]:
    tables = [e for e in document.elements if e.kind is ElementKind.table]
    assert len(tables) == 1, [document.text[e.start : e.end] for e in document.elements]
    return document.text[tables[0].start : tables[0].end], tables[0].head_lines


def row(table: str, label: str) -> str:
    found = [line for line in table.split("\n") if line.split(" | ")[0] == label]
    assert len(found) == 1, f"{label!r} is not the label of one row in:\n{table}"
    return found[0]


# --- whole PDFs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("ruled", [False, True], ids=["unruled", "ruled"])
def test_statement_rows_keep_labels_header_and_caption(tmp_path: Path, ruled: bool) -> None:
    document = parse(make_statement(tmp_path / "statement.pdf", ruled=ruled))
    table, head_lines = the_table(document)
    lines = table.split("\n")

    assert lines[0] == CAPTION and lines[1] == UNITS and head_lines == 3
    header = [cell.strip() for cell in lines[2].split("|")]
    assert header[1:] == ["Three Months Ended July 1, 2023", "Three Months Ended June 25, 2022"]
    products = row(table, "Products")
    assert "$60,584" in products and "$63,355" in products, "a $ printed apart is part of its figure"
    assert products.index("60,584") < products.index("63,355"), "values stay in column order"
    assert "July 1, 2023: $60,584" in products or products.endswith("| $60,584 | $63,355")
    assert "(265)" in row(table, "Other income/(expense), net"), "negatives stay readable"
    assert row(table, "Total net sales").count("|") == 2
    assert row(table, "Operating expenses:") == "Operating expenses:", "a section row keeps its place"


def test_text_around_a_table_is_kept_once(tmp_path: Path) -> None:
    document = parse(make_statement(tmp_path / "statement.pdf", ruled=False))
    text = " ".join(document.text.split())
    for sentence in (INTRO, OUTRO, CAPTION, "Research and development", "81,797"):
        assert text.count(sentence) == 1, sentence
    kinds = [e.kind for e in document.elements]
    assert kinds.index(ElementKind.table) not in (0, len(kinds) - 1), "the table sits between the paragraphs"


def test_split_table_pieces_repeat_caption_and_header(tmp_path: Path) -> None:
    rows = ROWS + [(f"Segment {n} revenue", f"{1000 + n:,}", f"{2000 + n:,}") for n in range(25)]
    document = parse(make_statement(tmp_path / "statement.pdf", ruled=False, rows=rows))
    table, head_lines = the_table(document)
    head = "\n".join(table.split("\n")[:head_lines])

    chunks = chunk_document(document, RegexTokenCounter(), max_tokens=120)
    pieces = [c for c in chunks if c.kind == "table"]
    assert len(pieces) >= 3
    assert pieces[0].context == "" and document.text[pieces[0].start : pieces[0].end].count(CAPTION) == 1
    for piece in pieces[1:]:
        assert piece.context == head, "every later piece repeats the caption and the header"
        body = document.text[piece.start : piece.end]
        assert all(" | " in line for line in body.split("\n")), "pieces hold whole rows"


def make_ruled_text_table(path: Path) -> Path:
    """A grid of ruling lines around text cells, as manuals draw them, with its title above."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format="letter")
    pdf.set_auto_page_break(False)
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    pdf.set_xy(50, 60)
    pdf.multi_cell(500, 13, "The view has one row per user and function, described below.")
    pdf.text(50, 110, "Table 2-1   Columns of the usage view")
    rows = [("Column name", "Data type", "Description"), ("FUNCTION_ID", "VARCHAR(30)", "ID of the function."),
            ("USER_NAME", "VARCHAR(10)", "Name of the user profile that has a usage setting."), ("USAGE", "VARCHAR(7)", "Allowed or denied.")]
    xs, top, height = (50, 160, 260, 540), 120, 22
    for r, cells in enumerate(rows):
        for x, text in zip(xs, cells):
            pdf.text(x + 4, top + r * height + 15, text)
    for r in range(len(rows) + 1):
        pdf.line(xs[0], top + r * height, xs[-1], top + r * height)
    for x in xs:
        pdf.line(x, top, x, top + len(rows) * height)
    pdf.set_xy(50, top + len(rows) * height + 20)
    pdf.multi_cell(500, 13, "Query the view to see who may administer access rules.")
    pdf.output(str(path))
    return path


def test_ruled_text_table_keeps_rows_header_and_title(tmp_path: Path) -> None:
    document = parse(make_ruled_text_table(tmp_path / "manual.pdf"))
    table, head_lines = the_table(document)
    lines = table.split("\n")
    assert lines[0] == "Table 2-1 Columns of the usage view" and head_lines == 2
    assert [cell.strip() for cell in lines[1].split("|")] == ["Column name", "Data type", "Description"]
    user = row(table, "USER_NAME")
    assert "VARCHAR(10)" in user and user.endswith("Name of the user profile that has a usage setting.")
    text = " ".join(document.text.split())
    assert text.count("Query the view to see who may administer access rules.") == 1


def test_rules_that_touch_merge_and_parallel_rules_stay_apart() -> None:
    rules = [pdf_layout.Rule(10, 100, 60, 101), pdf_layout.Rule(60, 100, 120, 101), pdf_layout.Rule(10, 130, 120, 131),
             pdf_layout.Rule(10, 100, 11, 131)]
    horizontal, vertical = pdf_layout.rule_segments(rules)
    assert [(round(y), x0, x1) for y, x0, x1 in horizontal] == [(100, 10, 120), (130, 10, 120)]
    assert len(vertical) == 1


def test_value_cell_row_labels_never_become_headings(tmp_path: Path) -> None:
    document = parse(make_statement(tmp_path / "statement.pdf", ruled=False))
    headings = [document.text[e.start : e.end] for e in document.elements if e.kind in (ElementKind.heading, ElementKind.title)]
    assert not any(any(c.isdigit() for c in heading) for heading in headings)


# --- layout on synthetic lines -------------------------------------------------------------------


def line(box: int, top: float, *cells: tuple[float, str], size: float = 10.0) -> Line:
    """A text line with the given cells starting at x, glyphs 5 points wide."""
    glyphs: list[Glyph] = []
    for x, text in cells:
        for n, char in enumerate(text):
            glyphs.append(Glyph(char, x + 5 * n, x + 5 * n + (0 if char == " " else 5)))
    return Line(box, top, top + size, size, tuple(glyphs))


def test_currency_sign_in_its_own_cell_joins_its_figure() -> None:
    lines = [
        line(0, 100, (50, "Revenue"), (300, "$"), (340, "1,234"), (400, "$"), (440, "1,111")),
        line(0, 112, (50, "Cost"), (345, "(123)"), (445, "(99)")),
    ]
    tables = find_tables(lines)
    assert [(r.label, r.values) for r in tables[0].table.rows] == [("Revenue", ["$1,234", "$1,111"]), ("Cost", ["(123)", "(99)"])]


def test_label_wrapped_over_two_lines_joins_its_values() -> None:
    lines = [
        line(0, 100, (50, "Cash"), (340, "5"), (440, "6")),
        line(0, 112, (50, "Proceeds from sales of property and")),
        line(0, 124, (50, "equipment"), (340, "10"), (440, "12")),
    ]
    rows = find_tables(lines)[0].table.rows
    assert [(r.label, r.values) for r in rows][-1] == ("Proceeds from sales of property and equipment", ["10", "12"])


def test_a_title_box_that_starts_in_the_running_head_band_is_the_caption() -> None:
    """The company name over the statement's title sits in the page's top band, one text box
    with the title: the whole box is the caption, not a running head (regression: the statement
    lost its caption and every piece of it its name)."""
    lines = [
        line(0, 20, (50, "Table of Contents")),
        line(1, 40, (200, "ACME INC. AND SUBSIDIARIES")),
        line(1, 52, (200, "CONSOLIDATED BALANCE SHEETS")),
        line(2, 70, (330, "2023"), (430, "2022")),
        line(3, 84, (50, "Cash"), (330, "5"), (430, "6")),
        line(3, 96, (50, "Inventories"), (330, "10"), (430, "12")),
    ]
    (table,) = find_tables(lines, page_height=792)
    assert table.table.caption == ["ACME INC. AND SUBSIDIARIES", "CONSOLIDATED BALANCE SHEETS"]
    assert table.table.headers == ["2023", "2022"]


def test_a_title_set_further_above_its_table_than_rows_are_apart_is_the_caption() -> None:
    """A filing's "(in millions)" line sits about 2.4 line heights above the period header, more
    than rows ever stand apart (regression: the statement lost its caption)."""
    lines = [
        line(0, 100, (200, "CONSOLIDATED STATEMENTS OF OPERATIONS")),
        line(0, 110, (200, "(in millions)")),
        line(1, 144, (330, "2019"), (430, "2018")),
        line(2, 158, (50, "Net sales"), (330, "5"), (430, "6")),
        line(2, 170, (50, "Net income"), (330, "10"), (430, "12")),
    ]
    (table,) = find_tables(lines, page_height=792)
    assert table.table.caption == ["CONSOLIDATED STATEMENTS OF OPERATIONS", "(in millions)"]


def test_a_headerless_table_under_a_table_with_its_columns_continues_it() -> None:
    """Liabilities printed under assets after a wide gap: the second part has no header of its
    own, so it takes the first part's caption and column names (regression: its figures named
    no period)."""
    lines = [
        line(0, 100, (200, "CONSOLIDATED BALANCE SHEETS")),
        line(1, 114, (330, "2023"), (430, "2022")),
        line(2, 128, (50, "Cash"), (330, "5"), (430, "6")),
        line(2, 140, (50, "Total assets"), (330, "10"), (430, "12")),
        line(3, 180, (50, "Accounts payable"), (330, "3"), (430, "4")),
        line(3, 192, (50, "Total liabilities"), (330, "7"), (430, "8")),
    ]
    first, second = find_tables(lines, page_height=792)
    assert second.table.caption == first.table.caption == ["CONSOLIDATED BALANCE SHEETS"]
    assert second.table.headers == ["2023", "2022"]
    assert render_table(second.table)[0].split("\n")[-1] == "Total liabilities | 2023: 7 | 2022: 8"


def test_a_headerless_table_with_other_columns_takes_nothing() -> None:
    lines = [
        line(1, 114, (330, "2023"), (430, "2022")),
        line(2, 128, (50, "Cash"), (330, "5"), (430, "6")),
        line(2, 140, (50, "Total assets"), (330, "10"), (430, "12")),
        line(3, 180, (50, "Shares"), (250, "3"), (330, "4"), (480, "9")),
        line(3, 192, (50, "Options"), (250, "7"), (330, "8"), (480, "9")),
    ]
    first, second = find_tables(lines, page_height=792)
    assert first.table.headers == ["2023", "2022"] and not any(second.table.headers) and second.table.caption == []


def test_prose_and_footnotes_are_not_tables() -> None:
    lines = [
        line(0, 100, (50, "In 2023 revenue grew 12% to 1,234 million, driven by volume.")),
        line(0, 112, (50, "(1)"), (70, "Includes restructuring charges of 45 million.")),
        line(0, 124, (50, "Page"), (500, "7")),
    ]
    assert find_tables(lines) == []


def test_render_names_each_value() -> None:
    table = Table(["BALANCE SHEET"], "(In millions)", ["2023", "2022"], [TableRow("Cash", ["$1", "$2"]), TableRow("Assets:", ["", ""])])
    text, head_lines = render_table(table)
    assert head_lines == 2
    lines = text.split("\n")
    assert lines[:2] == ["BALANCE SHEET", "(In millions) | 2023 | 2022"]
    assert "Cash" in lines[2] and lines[2].index("$1") < lines[2].index("$2") and lines[3] == "Assets:"


words = st.sampled_from(["Revenue", "Total", "net", "(In millions)", "2023", "$", "1,234", "(56)", "—", "12.5%", "Note", "a"])
page_lines = st.lists(
    st.tuples(
        st.integers(0, 3),  # box
        st.integers(0, 40),  # row slot
        st.lists(st.tuples(st.integers(0, 100), words), min_size=1, max_size=5),  # cells at x slots
    ),
    max_size=40,
)


@given(page_lines)
def test_tables_take_disjoint_lines_and_render_their_rows(spec) -> None:
    lines = [line(box, 50 + 12 * slot, *[(30 + 5 * x, text) for x, text in cells]) for box, slot, cells in spec]
    tables = find_tables(lines, 800.0)
    seen: set[int] = set()
    for found in tables:
        assert found.lines and not found.lines & seen, "a line belongs to one table at most"
        assert all(0 <= index < len(lines) for index in found.lines)
        seen |= found.lines
        text, head_lines = render_table(found.table)
        assert 0 <= head_lines <= len(text.split("\n"))
        assert all(len(row.values) == len(found.table.headers) for row in found.table.rows)
    assert [t.top for t in tables] == sorted(t.top for t in tables)


@pytest.mark.parametrize("text", ["1,234", "(56.7)", "$ 12", "45%", "—", "(1,577)", "$(7)", "12.5 %", "n/a"])
def test_figures_are_amounts(text: str) -> None:
    assert is_amount(text)


@pytest.mark.parametrize("text", ["2023", "Revenue", "FY2022", "Q3", "(In millions)", "July 30, 2023", ""])
def test_years_and_words_are_not_amounts(text: str) -> None:
    assert not is_amount(text)


# --- headings --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["($ in millions, except per share data) 7,192", "2023 2022", "$ 81,797", "Total net sales 35,383 20,205",
     "(In thousands)", "Revenue 12.5%", "(1,577)"],
)
def test_figures_and_table_rows_are_not_headings(text: str) -> None:
    assert not looks_like_heading(text)


@pytest.mark.parametrize(
    "text", ["Results of Operations", "Note 12", "Chapter 3", "1.2 Overview", "Fiscal 2023 Highlights", "Item 7. Management's Discussion",
             "Item 1. Business.", "Risk Factors"]
)
def test_titles_with_plain_numbers_stay_headings(text: str) -> None:
    assert looks_like_heading(text)


@pytest.mark.parametrize("text", ["/s/ Ernst & Young LLP", "See accompanying notes to consolidated financial statements."])
def test_guessed_titles_are_never_signatures_or_sentences(text: str) -> None:
    """Regression: a filing's statements were headed by its auditor's signature."""
    assert not could_be_title(text)
    assert classify_paragraph(text).category != "Title"


def test_a_heading_its_author_marked_stays_one_even_as_a_sentence(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_text("# This is how the year went for us.\n\nRevenue grew in every region.\n", encoding="utf-8")
    document = parse(path)
    assert [e.kind for e in document.elements][0] in (ElementKind.title, ElementKind.heading)


@given(
    st.text(st.characters(categories=("Nd", "P", "S", "Zs")), min_size=1, max_size=30),
    st.text(st.characters(categories=("Lu", "Ll")), max_size=30),
)
def test_lines_mostly_without_letters_are_never_headings(other: str, letters: str) -> None:
    visible = [c for c in other + letters if not c.isspace()]
    if sum(c.isalpha() for c in visible) < 0.5 * len(visible):
        assert not looks_like_heading(other + letters)
