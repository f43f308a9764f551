"""A quoted row's change between the periods a question compares."""

from __future__ import annotations

from hypothesis import given, strategies as st

from service.query.generation.changes import asks_change, comparison_terms, row_change
from service.query.generation.extractive import ExtractiveGenerator
from service.query.citations import content_terms
from service.query.types import Hit

SALES = ("Total net sales | Year Ended December 31, 2015: 107,006 | Year Ended December 31, 2016: 135,987 "
         "| Year Ended December 31, 2017: 177,866")


def test_asks_change():
    assert asks_change("What is the year-over-year change in revenue from FY2016 to FY2017?")
    assert asks_change("Did net earnings as a percent of sales increase in Q2?")
    assert asks_change("What is the FY2020 revenue growth rate?")
    assert not asks_change("What were total net sales in FY2017?")


def test_the_comparison_words_are_not_what_a_row_must_say():
    assert comparison_terms("What is the year-over-year change in revenue from FY2016 to FY2017?") >= set(content_terms("change"))
    assert comparison_terms("What is the FY2019 - FY2020 total revenue growth rate for Block?") == set(content_terms("growth rate"))
    assert comparison_terms("What were total net sales in FY2017?") == set()


def test_change_between_the_years_the_question_names_or_the_latest_two():
    assert row_change(SALES, ["2016", "2017"]) == "2016 to 2017: +41,879, +30.8%"
    assert row_change(SALES, ["2015", "2016"]) == "2015 to 2016: +28,981, +27.1%"
    assert row_change(SALES, []) == "2016 to 2017: +41,879, +30.8%"
    assert row_change(SALES, ["2017"]) == "2016 to 2017: +41,879, +30.8%"


def test_percentages_change_in_points_and_change_columns_are_not_periods():
    assert row_change("Gross margin | 2023: 18.5 % | 2022: 19.4 %", []) == "2022 to 2023: -0.9 points"
    assert row_change("Revenue | 2020: 9,497,578 | 2019: 4,713,500 | $ Change: 4,784,078 | % Change: 101 %", []) == \
        "2019 to 2020: +4,784,078, +101.5%"
    assert row_change("Net loss | 2020: (1,577) | 2019: (1,373)", []) == "2019 to 2020: -204, -14.9%"


def test_a_quarter_against_the_fiscal_year_end_is_told_apart_by_date():
    row = "Cash and cash equivalents | July 29, 2023: $1,093 | January 28, 2023: $1,874 | July 30, 2022: $840"
    assert row_change(row, ["2023", "2024"]) == "January 28, 2023 to July 29, 2023: -781, -41.7%"


def test_no_change_without_two_periods_told_apart():
    assert row_change("Revenue | Three Months Ended July 30, 2023: 13,507 | Six Months Ended July 30, 2023: 20,699", []) is None
    assert row_change("Revenue | Q2: 13,507 | Q1: 7,192", []) is None
    assert row_change("Revenue | 2023: 13,507", []) is None
    assert row_change("Margin | 2023: 18.5% | 2022: 1,200", []) is None
    assert row_change("not a row 2022: 5 2023: 6", []) is None


@given(st.integers(1, 10**9), st.integers(0, 10**9))
def test_the_change_is_the_difference(before: int, after: int):
    change = row_change(f"Revenue | 2021: {before:,} | 2022: {after:,}", [])
    absolute = change.removeprefix("2021 to 2022: ").split(",  ")[0].rsplit(", ", 1)[0]
    assert int(absolute.replace(",", "")) == after - before


def test_the_answer_adds_the_change_outside_the_quote():
    hit = Hit(chunk_id=1, document_id=1, score=1.0, text=SALES, source="amazon-10k.pdf", title="Amazon 10-K",
              pages=[38], heading_path=["Consolidated statements of operations"], collection="default", kind="table",
              document_context="Amazon.com, Inc. · Form 10-K · fiscal year ended December 31, 2017")
    answer = ExtractiveGenerator().answer("What was Amazon's change in total net sales from FY2016 to FY2017?", [hit])
    assert answer.grounded and answer.citations[0].quote == SALES
    assert answer.text.endswith("[1] (change 2016 to 2017: +41,879, +30.8%)")
    plain = ExtractiveGenerator().answer("What were Amazon's total net sales in FY2017?", [hit])
    assert "(change" not in plain.text


@given(st.text(alphabet=st.sampled_from(list("0123456789,.$()%-: |abcJanuary ")), max_size=120), st.lists(st.sampled_from(["2021", "2022", "2023"])))
def test_any_row_text_gives_a_change_or_none_never_an_error(row: str, years: list[str]):
    change = row_change(row, years)
    assert change is None or " to " in change
