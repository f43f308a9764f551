"""Extractive answers over tables: the quoted sentence is the row that carries the figure."""

from __future__ import annotations

from service.query.citations import content_terms
from service.query.generation.extractive import ExtractiveGenerator
from service.query.types import Hit

INCOME_STATEMENT = (
    "CONDENSED CONSOLIDATED STATEMENTS OF INCOME (In millions, except per share data)\n"
    " | Three Months Ended July 30, 2023 | Three Months Ended July 31, 2022\n"
    "Revenue | Three Months Ended July 30, 2023: 13,507 | Three Months Ended July 31, 2022: 6,704\n"
    "Cost of revenue | Three Months Ended July 30, 2023: 4,045 | Three Months Ended July 31, 2022: 3,789\n"
    "Research and development | Three Months Ended July 30, 2023: 2,040 | Three Months Ended July 31, 2022: 1,824\n"
    "Net income | Three Months Ended July 30, 2023: 6,188 | Three Months Ended July 31, 2022: 656\n"
)
NARRATIVE = (
    "Revenue growth was driven by strong demand for data center products. We expect supply to "
    "increase in each quarter of the coming year."
)


def _hits() -> list[Hit]:
    texts = [("report.pdf", "Quarterly report", ["Financial statements"], INCOME_STATEMENT),
             ("report.pdf", "Quarterly report", ["Results of operations"], NARRATIVE)]
    return [Hit(chunk_id=i + 1, document_id=1, score=1.0 - i / 10, text=text, source=source, title=title,
                pages=[i + 1], heading_path=headings, collection="default")
            for i, (source, title, headings, text) in enumerate(texts)]


def test_answer_quotes_the_row_with_its_label_period_and_figure():
    answer = ExtractiveGenerator().answer("What was net income in the three months ended July 30, 2023?", _hits())
    assert answer.grounded
    assert "Net income | Three Months Ended July 30, 2023: 6,188" in answer.text
    quoted = INCOME_STATEMENT[answer.citations[0].start:answer.citations[0].end]
    assert quoted.startswith("Net income") and "6,188" in quoted


BALANCE_SHEET = (
    "Other long-term assets | August 29, 2021: 3,381 | August 30, 2020: 2,841\n"
    "TOTAL ASSETS | August 29, 2021: $59,268 | August 30, 2020: $55,556\n"
    "Accounts payable | August 29, 2021: $16,278 | August 30, 2020: $14,172\n"
)
CASH_NOTE = (
    "At August 29, 2021, cash equivalents of $12 are included in the accompanying consolidated balance sheets "
    "of the company."
)


def _filing_hits(context: str | None) -> list[Hit]:
    texts = [(["Balance sheets"], BALANCE_SHEET), (["Notes"], CASH_NOTE)]
    return [Hit(chunk_id=i + 1, document_id=1, score=1.0 - i / 10, text=text, source="filing.pdf", title=None,
                pages=[i + 1], heading_path=headings, collection="default", document_context=context)
            for i, (headings, text) in enumerate(texts)]


QUESTION = "How much were Zenith's total assets in FY2021?"


def test_the_document_context_and_a_fiscal_year_let_a_table_row_answer():
    answer = ExtractiveGenerator().answer(QUESTION, _filing_hits("ZENITH STORES INC · Form 10-K · fiscal year 2021"))
    assert answer.grounded and "TOTAL ASSETS | August 29, 2021: $59,268" in answer.text
    assert not ExtractiveGenerator().answer(QUESTION, _filing_hits(None)).grounded  # the row alone names no company


def test_a_word_fusing_a_year_counts_as_the_year():
    assert content_terms("FY2021 sales, 2023E, Q2, 3M") == ["2021", "sale", "2023", "q2", "3m"]


def test_the_document_context_counts_as_context_not_as_the_sentence_itself():
    """A question whose terms are only in the document's context line names no sentence."""
    answer = ExtractiveGenerator().answer("Zenith Stores 10-K?", _filing_hits("ZENITH STORES INC · Form 10-K"))
    assert not answer.grounded
