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


def test_a_row_of_another_company_does_not_answer_a_question_naming_its_owner():
    answer = ExtractiveGenerator().answer(QUESTION, _filing_hits("ACME CORP · Form 10-K · fiscal year 2021"))
    assert not answer.grounded


def test_instructions_about_the_answer_form_do_not_count_against_the_evidence():
    """An app's trailing instruction holds words no passage has; the row still answers."""
    question = ("What were Zenith's total assets at the end of FY2021? Answer in USD millions. Give a response "
                "by relying on the details shown in the balance sheet.")
    answer = ExtractiveGenerator().answer(question, _filing_hits("ZENITH STORES INC · Form 10-K · fiscal year 2021"))
    assert answer.grounded and answer.text.startswith("TOTAL ASSETS | August 29, 2021: $59,268")


def test_the_row_the_question_names_comes_before_a_note_sharing_more_of_its_words():
    note = ("At the end of fiscal 2021, deferred assets are included in other long-term assets in the "
            "consolidated balance sheets.")
    hits = _filing_hits("ZENITH STORES INC · Form 10-K · fiscal year 2021")
    hits[1] = Hit(chunk_id=2, document_id=1, score=0.9, text=note, source="filing.pdf", title=None, pages=[2],
                  heading_path=["Notes"], collection="default", document_context=hits[0].document_context)
    question = "Using only the information within the balance sheet, how much total assets did Zenith have at the end of FY2021?"
    answer = ExtractiveGenerator().answer(question, hits)
    assert answer.text.startswith("TOTAL ASSETS | August 29, 2021: $59,268")


def test_asked_part_keeps_the_question_and_drops_instructions_and_lead_ins():
    from service.query.generation.extractive import asked_part

    assert asked_part("What is 3M's FY2018 capex? Give a response relying on the cash flow statement.") == \
        "What is 3M's FY2018 capex?"
    assert asked_part("We need a metric. Please answer the following question: what is Boeing's net PP&E?") == \
        "what is Boeing's net PP&E?"
    assert asked_part("How much were U.S. sales in 2021?") == "How much were U.S. sales in 2021?"
    assert asked_part("By drawing conclusions from the income statement, what is Amazon's FY2019 net income (in USD millions)?") == \
        "what is Amazon's FY2019 net income?"
    assert asked_part("What was revenue (in percent of 2019)?") == "What was revenue (in percent of 2019)?"
    assert asked_part("What is the change in revenue (in units of percents and round to one decimal place)?") == \
        "What is the change in revenue?"
    assert asked_part("When primarily referencing the balance sheet, what is the quick ratio?") == "what is the quick ratio?"
    assert asked_part("When did sales peak, and what drove them?") == "When did sales peak, and what drove them?"
    assert asked_part("In 2021, what were sales?") == "In 2021, what were sales?"
    assert asked_part("For the US segment, what were sales?") == "For the US segment, what were sales?"
    assert asked_part("In agreement with the information outlined in the income statement, what is the margin?") == \
        "what is the margin?"
    assert asked_part("What was revenue for Q3: 2023?") == "What was revenue for Q3: 2023?"
    assert asked_part("List the risks. Be brief.") == "List the risks. Be brief."


def test_names_row_needs_the_whole_label_and_a_period_the_question_names():
    from service.query.generation.extractive import names_row

    terms = set(content_terms("How much total assets did Zenith have at the end of FY2021?"))
    assert names_row(terms, "TOTAL ASSETS | August 29, 2021: $59,268 | August 30, 2020: $55,556")
    assert not names_row(terms, "TOTAL ASSETS | August 30, 2020: $55,556")
    assert not names_row(terms, "Total current assets | August 29, 2021: 20,000")
    assert not names_row(terms, "Total assets were higher in 2021.")


def test_cell_separators_and_currency_signs_are_not_code():
    """Regression: a short row's " | " and "$" counted as code symbols and halved its score."""
    from service.query.generation.extractive import _shape_factor

    assert _shape_factor("TOTAL ASSETS | August 29, 2021: $59,268 | August 30, 2020: $55,556") == 1.0
    assert _shape_factor("export PATH=$HOME/bin:$PATH; cd /opt/app") == 0.5


CASH_FLOWS = (
    "CONSOLIDATED STATEMENTS OF CASH FLOWS (In millions)\n"
    " | 2018 | 2017\n"
    "Net income | 2018: 5,363 | 2017: 4,869\n"
    "Purchases of property, plant and equipment (PP&E) | 2018: (1,577) | 2017: (1,373)\n"
    "Proceeds from sale of businesses | 2018: 846 | 2017: 1,065\n"
)


def test_a_row_that_says_the_question_in_other_words_answers_it():
    """"Capital expenditure" is what the statement calls "Purchases of property, plant and
    equipment": with the business synonym groups the row answers; without them it is refused."""
    from service.query import synonyms

    hits = [Hit(chunk_id=1, document_id=1, score=1.0, text=CASH_FLOWS, source="3m.pdf", title=None, pages=[60],
                heading_path=["Cash flows"], collection="default")]
    question = "What is the FY2018 capital expenditure amount?"
    answer = ExtractiveGenerator(synonym_groups=synonyms.load("business")).answer(question, hits)
    assert answer.grounded and "(1,577)" in answer.text.split(" [")[0]
    assert "1,577" not in ExtractiveGenerator().answer(question, hits).text
