"""Extractive answers over tables: the quoted sentence is the row that carries the figure."""

from __future__ import annotations

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
