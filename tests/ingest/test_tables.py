"""Tables from HTML, DOCX, PPTX and XLSX: caption, merged header rows, labels next to values."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.documents import ElementKind
from ingest.parsing import parse_file
from ingest.tables import html_table

PERIODS = ["Three Months Ended July 1, 2023", "Three Months Ended June 25, 2022"]


def table_of(path: Path) -> tuple[list[str], int]:
    document = parse_file(path, max_bytes=10_000_000, max_chars=1_000_000)
    tables = [e for e in document.elements if e.kind is ElementKind.table]
    assert len(tables) == 1
    return document.text[tables[0].start : tables[0].end].split("\n"), tables[0].head_lines


def assert_statement_rows(lines: list[str], head_lines: int) -> None:
    header = [cell.strip() for cell in lines[head_lines - 1].split("|")]
    assert header[-2:] == PERIODS, "two header rows merge into one name per column"
    sales = next(line for line in lines if line.startswith("Total net sales |"))
    assert sales.index("81,797") < sales.index("82,959")
    assert "(265)" in next(line for line in lines if line.startswith("Net income |"))


def test_html_caption_merged_header_and_row_labels(tmp_path: Path) -> None:
    path = tmp_path / "statement.html"
    path.write_text(
        "<html><body><p>Quarterly figures follow.</p><table><caption>Statements of Operations (In millions)</caption>"
        "<thead><tr><th></th><th colspan=2>Three Months Ended</th></tr>"
        "<tr><th></th><th>July 1, 2023</th><th>June 25, 2022</th></tr></thead>"
        "<tbody><tr><th>Total net sales</th><td>$ 81,797</td><td>$ 82,959</td></tr>"
        "<tr><td>Net income</td><td>(265)</td><td>19,442</td></tr></tbody></table></body></html>"
    )
    lines, head_lines = table_of(path)
    assert lines[0] == "Statements of Operations (In millions)" and head_lines == 2
    assert_statement_rows(lines, head_lines)


def test_filing_html_joins_dollar_and_parenthesis_cells_and_drops_spacers() -> None:
    table = html_table(
        "<table><tr><td></td><td>Year Ended December 31,</td></tr><tr><td></td><td>2023</td><td></td><td>2022</td></tr>"
        "<tr><td>Total net sales</td><td>$</td><td>81,797</td><td></td><td>$</td><td>82,959</td></tr>"
        "<tr><td>Other expense</td><td></td><td>(265</td><td>)</td><td></td><td>(10</td><td>)</td></tr></table>"
    )
    assert table is not None
    assert table.headers == ["Year Ended December 31, 2023", "Year Ended December 31, 2022"]
    assert [(row.label, row.values) for row in table.rows] == [
        ("Total net sales", ["$81,797", "$82,959"]),
        ("Other expense", ["(265)", "(10)"]),
    ]


def test_text_table_keeps_first_row_as_header() -> None:
    table = html_table("<table><tr><td>Column</td><td>Type</td></tr><tr><td>USER_NAME</td><td>VARCHAR(10)</td></tr></table>")
    assert table is not None and table.headers == ["Type"] and table.rows[0].values == ["VARCHAR(10)"]


def test_docx_merged_header_cells(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_paragraph("Quarterly figures follow.")
    grid = document.add_table(rows=4, cols=3)
    grid.cell(0, 1).merge(grid.cell(0, 2)).text = "Three Months Ended"
    rows = [["", "July 1, 2023", "June 25, 2022"], ["Total net sales", "$ 81,797", "$ 82,959"], ["Net income", "(265)", "19,442"]]
    for row, values in zip(grid.rows[1:], rows):
        for cell, value in zip(row.cells, values):
            cell.text = value
    path = tmp_path / "statement.docx"
    document.save(path)
    assert_statement_rows(*table_of(path))


def test_pptx_merged_header_cells(tmp_path: Path) -> None:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    slide.shapes.title.text = "Quarterly results"
    grid = slide.shapes.add_table(4, 3, Inches(1), Inches(2), Inches(6), Inches(2)).table
    grid.cell(0, 1).merge(grid.cell(0, 2))
    grid.cell(0, 1).text = "Three Months Ended"
    rows = [["", "July 1, 2023", "June 25, 2022"], ["Total net sales", "$ 81,797", "$ 82,959"], ["Net income", "(265)", "19,442"]]
    for r, values in enumerate(rows, 1):
        for c, value in enumerate(values):
            grid.cell(r, c).text = value
    path = tmp_path / "deck.pptx"
    deck.save(path)
    assert_statement_rows(*table_of(path))


@pytest.mark.parametrize(("sheet_name", "caption"), [("Q3 Results", True), ("Sheet", False)])
def test_xlsx_sheet_name_is_the_caption(tmp_path: Path, sheet_name: str, caption: bool) -> None:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = sheet_name
    for row in [("Region", "Sales"), ("North", 120), ("South", 95)]:
        sheet.append(row)
    path = tmp_path / "sales.xlsx"
    workbook.save(path)
    lines, head_lines = table_of(path)
    assert (lines[0] == sheet_name) is caption
    assert lines[head_lines - 1] == "Region | Sales" and lines[head_lines].startswith("North | ")
