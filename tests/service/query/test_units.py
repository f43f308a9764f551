"""A quoted row's figures restated in the unit the question asks."""

from __future__ import annotations

from hypothesis import given, strategies as st

from service.query.generation.extractive import ExtractiveGenerator
from service.query.generation.units import asked_scale, restated_row, stated_scale
from service.query.types import Hit

ROW = "Total current liabilities | As of December 31, 2017: 5,466,312 | As of December 31, 2016: 4,586,657"


def test_asked_scale_reads_the_usual_phrasings():
    assert asked_scale("What are total current liabilities (in USD millions)?") == 1e6
    assert asked_scale("What is capex? Answer in USD billions.") == 1e9
    assert asked_scale("Report it in millions of dollars.") == 1e6
    assert asked_scale("What were sales in 2021?") is None
    assert asked_scale("Sales grew by millions of units.") is None


def test_stated_scale_is_the_last_statement_in_the_text():
    assert stated_scale("CONSOLIDATED BALANCE SHEETS\n(in thousands, except share and per share data)") == 1e3
    assert stated_scale("($ in millions, except per share data)") == 1e6
    assert stated_scale("(Dollars in thousands)\n...\nSEGMENTS\nIn millions, except per share amounts") == 1e6
    assert stated_scale("We sold millions of units in thousands of stores.") is None


def test_a_row_is_restated_cell_by_cell():
    assert restated_row(ROW, 1e3, 1e6) == "As of December 31, 2017: 5,466 | As of December 31, 2016: 4,587"
    assert restated_row("Purchases of PP&E | 2018: $(1,577) | 2017: (1,373)", 1e6, 1e9) == "2018: $(1.58) | 2017: (1.37)"
    # a header's own "(in thousands)" is the cell's scale
    assert restated_row("Working capital | December 31, 2016 (in thousands): 423,961", None, 1e6) == \
        "December 31, 2016 (in thousands): 424"


def test_nothing_is_restated_without_both_scales_or_for_shares_and_ratios():
    assert restated_row(ROW, None, 1e6) is None
    assert restated_row(ROW, 1e3, None) is None
    assert restated_row(ROW, 1e6, 1e6) is None
    assert restated_row("Weighted-average shares | 2017: 432,858", 1e3, 1e6) is None
    assert restated_row("Earnings per share | 2017: 1.29", 1e3, 1e6) is None
    assert restated_row("Gross margin | 2017: 45.2%", 1e3, 1e6) is None
    assert restated_row("Not a row at all, 5,466,312 thousand", 1e3, 1e6) is None


@given(st.integers(min_value=0, max_value=10**12), st.sampled_from([1e3, 1e6, 1e9]), st.sampled_from([1e3, 1e6, 1e9]))
def test_restating_keeps_the_amount(value: int, stated: float, asked: float):
    restated = restated_row(f"Revenue | 2020: {value:,}", stated, asked)
    if stated == asked:
        assert restated is None
        return
    printed = float(restated.removeprefix("2020: ").replace(",", ""))
    exact = value * stated / asked
    assert abs(printed - exact) <= max(0.5, abs(exact) * 0.005)


def _hit(text: str, table_head: str = "") -> Hit:
    return Hit(chunk_id=1, document_id=1, score=1.0, text=text, source="netflix-10k.pdf", title="Netflix 10-K",
               pages=[40], heading_path=[], collection="default", kind="table", table_head=table_head,
               document_context="Netflix, Inc. · Form 10-K · fiscal year ended December 31, 2017")


QUESTION = "What is Netflix's year end FY2017 total current liabilities (in USD millions)?"


def test_the_answer_adds_the_asked_unit_outside_the_quote():
    head = "CONSOLIDATED BALANCE SHEETS\n(in thousands, except share and per share data)\n| As of December 31, 2017"
    answer = ExtractiveGenerator().answer(QUESTION, [_hit(ROW, table_head=head)])
    assert answer.grounded
    assert "5,466,312" in answer.citations[0].quote and "5,466 " not in answer.citations[0].quote
    assert answer.text.endswith("[1] (in millions: As of December 31, 2017: 5,466 | As of December 31, 2016: 4,587)")


def test_the_scale_above_the_row_in_its_passage_counts():
    text = "The following table summarizes our balances (in thousands):\n" + ROW
    answer = ExtractiveGenerator().answer(QUESTION, [_hit(text)])
    assert "(in millions: As of December 31, 2017: 5,466" in answer.text


def test_no_restatement_when_the_table_states_no_scale():
    answer = ExtractiveGenerator().answer(QUESTION, [_hit(ROW)])
    assert answer.grounded and "(in millions" not in answer.text


@given(st.text(alphabet=st.sampled_from(list("0123456789,.$()%-: |inthousandsmilo ")), max_size=120),
       st.sampled_from([None, 1e3, 1e6, 1e9]), st.sampled_from([None, 1e3, 1e6, 1e9]))
def test_any_row_text_is_restated_or_left_alone_never_an_error(row: str, stated, asked):
    restated = restated_row(row, stated, asked)
    assert restated is None or isinstance(restated, str)
    stated_scale(row)
    asked_scale(row)
