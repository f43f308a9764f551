"""Citation plumbing: sentence spans, quote location, markers, grounding of LLM answers."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from service.query.citations import (
    MarkerFilter,
    claims_with_markers,
    clean_markers,
    content_terms,
    display_text,
    find_markers,
    ground_answer,
    is_refusal,
    locate_quote,
    sentence_spans,
    sentences,
    stem,
)
from service.query.prompts import REFUSAL
from service.query.types import Hit


def hit(text: str, number: int = 1) -> Hit:
    return Hit(chunk_id=number, document_id=number, score=1.0, text=text, source=f"doc{number}.md",
               title=f"Doc {number}", pages=[number], heading_path=[], collection="default")


_normalize = re.compile(r"\s+")


def squash(text: str) -> str:
    return _normalize.sub(" ", text).strip()


# --------------------------------------------------------------------------------------------
# Sentences
# --------------------------------------------------------------------------------------------

def test_sentences_respect_abbreviations_decimals_and_initials() -> None:
    text = "Leave accrues at 2.08 days per month, e.g. for part-time staff too. J. Smith approved it. Done!"
    assert sentences(text) == [
        "Leave accrues at 2.08 days per month, e.g. for part-time staff too.",
        "J. Smith approved it.",
        "Done!",
    ]


def test_sentences_join_hard_wrapped_lines_and_split_structure() -> None:
    text = (
        "2.1 Annual leave\n"
        "Employees accrue 25 days of paid annual leave per calendar year, earned at 2.08 days\n"
        "for each month of service. Part-time employees accrue leave pro rata.\n"
        "\n"
        "- Bereavement leave: 5 days.\n"
        "- Volunteering: 2 paid days\n"
        "1. Log in to the first gateway.\n"
        "2. Generate a new key\n"
        "| SEV1 | Customer-facing outage | 5 minutes |\n"
        "> Kenji sends the signed order form to Brightline by 24 October 2025, after the\n"
        "> security review.\n"
    )
    assert sentences(text) == [
        "2.1 Annual leave",
        "Employees accrue 25 days of paid annual leave per calendar year, earned at 2.08 days\n"
        "for each month of service.",
        "Part-time employees accrue leave pro rata.",
        "Bereavement leave: 5 days.",
        "Volunteering: 2 paid days",
        "Log in to the first gateway.",
        "Generate a new key",
        "SEV1 | Customer-facing outage | 5 minutes",
        "Kenji sends the signed order form to Brightline by 24 October 2025, after the\n> security review.",
    ]
    assert display_text(sentences(text)[-1]) == (
        "Kenji sends the signed order form to Brightline by 24 October 2025, after the security review."
    )


@given(st.text(alphabet=st.sampled_from(list("ab .!?\n\t-|>1(")) | st.characters(), max_size=300))
def test_sentence_spans_are_ordered_trimmed_substrings(text: str) -> None:
    previous_end = 0
    for start, end in sentence_spans(text):
        assert previous_end <= start < end <= len(text)
        piece = text[start:end]
        assert piece == piece.strip() and piece
        previous_end = end


def test_light_stemming_matches_inflections() -> None:
    assert stem("renewing") == stem("renewed") == stem("renew")
    assert stem("policies") == stem("policy")
    assert stem("days") == stem("day")
    assert content_terms("How many days of annual leave?") == ["day", "annual", "leav"]


# --------------------------------------------------------------------------------------------
# Quote location
# --------------------------------------------------------------------------------------------

@given(st.text(min_size=1, max_size=200), st.data())
def test_locate_quote_finds_any_substring_exactly(text: str, data) -> None:
    start = data.draw(st.integers(0, len(text) - 1))
    end = data.draw(st.integers(start + 1, len(text)))
    quote = text[start:end]
    assume(quote.strip())
    found = locate_quote(text, quote)
    assert found is not None
    assert text[found[0]:found[1]] == quote


words_st = st.lists(st.text(alphabet="abcdefghij0123456789,.'", min_size=1, max_size=8), min_size=1, max_size=30)
spacing_st = st.text(alphabet=" \t\n", min_size=1, max_size=3)


@given(words_st, st.data())
def test_locate_quote_ignores_differences_in_spacing(words: list[str], data) -> None:
    gaps = data.draw(st.lists(spacing_st, min_size=len(words), max_size=len(words)))
    text = "".join(word + gap for word, gap in zip(words, gaps))
    first = data.draw(st.integers(0, len(words) - 1))
    last = data.draw(st.integers(first, len(words) - 1))
    quote = "  ".join(words[first:last + 1])  # the model re-spaced it
    found = locate_quote(text, quote)
    assert found is not None
    start, end = found
    assert squash(text[start:end]) == squash(quote)
    assert text[start:end] == text[start:end].strip()


def test_locate_quote_falls_back_to_typography_and_case() -> None:
    text = "The VPN certificate\u2019s lifetime is 90 days \u2013 rotate it early."
    start, end = locate_quote(text, "certificate's lifetime is 90 days - rotate")
    assert text[start:end] == "certificate\u2019s lifetime is 90 days \u2013 rotate"
    start, end = locate_quote(text, "the vpn CERTIFICATE")
    assert text[start:end] == "The VPN certificate"
    assert locate_quote(text, "not in there") is None
    assert locate_quote(text, "   ") is None


# --------------------------------------------------------------------------------------------
# Markers
# --------------------------------------------------------------------------------------------

def test_find_markers_reads_single_grouped_and_adjacent_markers() -> None:
    text = "One [1]. Two [2, 3]. Three [4][5]. Not markers: [a] [1.5] [] [note 2]."
    assert [numbers for _, _, numbers in find_markers(text)] == [[1], [2, 3], [4], [5]]


@pytest.mark.parametrize(("raw", "cleaned", "dropped"), [
    ("Leave is 25 days [1][7].", "Leave is 25 days [1].", [7]),
    ("Leave is 25 days [7]. Hotels [2].", "Leave is 25 days. Hotels [2].", [7]),
    ("Leave is 25 days. [0] Hotels [2, 9].", "Leave is 25 days. Hotels [2].", [0, 9]),
    ("Both [1,2] fine [3].", "Both [1,2] fine [3].", []),
    ("Twice [8] and [8].", "Twice and.", [8]),
])
def test_clean_markers_drops_and_reports_markers_outside_the_context(raw, cleaned, dropped) -> None:
    text, reported = clean_markers(raw, 3)
    assert text == cleaned
    assert reported == [{"marker": n, "reason": "not in context"} for n in dropped]


marker_text_st = st.lists(
    st.one_of(
        st.sampled_from(["Leave", "is", "25", "days.", "Hotels", "cost", " ", "\n", "[", "]", ",", "[x]"]),
        st.lists(st.integers(0, 12), min_size=1, max_size=3).map(lambda ns: "[" + ", ".join(map(str, ns)) + "]"),
        st.integers(0, 12).map(lambda n: f" [{n}]"),
    ),
    max_size=40,
).map("".join)


@given(marker_text_st, st.integers(0, 8))
def test_cleaned_text_never_keeps_an_invalid_marker(text: str, context_size: int) -> None:
    cleaned, dropped = clean_markers(text, context_size)
    for _, _, numbers in find_markers(cleaned):
        assert all(1 <= n <= context_size for n in numbers)
    kept = [n for _, _, numbers in find_markers(text) for n in numbers if 1 <= n <= context_size]
    assert [n for _, _, numbers in find_markers(cleaned) for n in numbers] == kept
    invalid = {n for _, _, numbers in find_markers(text) for n in numbers if not 1 <= n <= context_size}
    assert {d["marker"] for d in dropped} == invalid


@settings(max_examples=200)
@given(marker_text_st, st.integers(0, 8), st.data())
def test_streamed_cleaning_matches_whole_text_cleaning(text: str, context_size: int, data) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=8)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
    marker_filter = MarkerFilter(context_size)
    streamed = "".join(marker_filter.feed(piece) for piece in pieces) + marker_filter.finish()
    assert (streamed, marker_filter.dropped) == clean_markers(text, context_size)


def test_marker_opening_a_sentence_belongs_to_the_previous_one() -> None:
    text = "Leave is 25 days. [1] Hotels cost EUR 180 per night [2][3]. Unsourced claim."
    assert claims_with_markers(text) == [
        ("Leave is 25 days.", [1]),
        ("Hotels cost EUR 180 per night.", [2, 3]),
        ("Unsourced claim.", []),
    ]


# --------------------------------------------------------------------------------------------
# Grounding
# --------------------------------------------------------------------------------------------

PASSAGES = [
    hit("Employees accrue 25 days of paid annual leave per calendar year. Up to 5 unused days may "
        "be carried over.", 1),
    hit("Hotels are reimbursed up to EUR 180 per night. Meals are reimbursed up to EUR 60 per day.", 2),
]


def test_ground_answer_quotes_the_best_supporting_sentence() -> None:
    grounding = ground_answer("You can carry over up to 5 unused days [1]. Meals: EUR 60 a day [2].", PASSAGES)
    assert grounding.grounded
    quotes = {c.marker: c for c in grounding.citations}
    assert quotes[1].quote == "Up to 5 unused days may be carried over."
    assert quotes[2].quote == "Meals are reimbursed up to EUR 60 per day."
    for citation in grounding.citations:
        source = PASSAGES[citation.marker - 1]
        assert source.text[citation.start:citation.end] == citation.quote
        assert citation.chunk_id == source.chunk_id and 0 < citation.support <= 1


def test_ground_answer_notes_unsupported_markers() -> None:
    grounding = ground_answer("The sky is green [2].", PASSAGES)
    assert grounding.citations[0].support == 0.0
    assert "marker [2] has no supporting sentence in its source" in grounding.notes


@pytest.mark.parametrize("text", [
    REFUSAL, REFUSAL.lower(), REFUSAL.rstrip("."), f"  {REFUSAL}\n",
    "The knowledge base does not contain an answer to this question. Sorry!",
])
def test_refusals_are_recognized(text: str) -> None:
    assert is_refusal(text)
    assert ground_answer(text, PASSAGES).grounded is False


def test_an_answer_is_not_a_refusal() -> None:
    assert not is_refusal("Employees accrue 25 days [1].")
    assert not is_refusal("The knowledge base does not contain an answer to this question, but 25 days [1].")


def test_table_rows_are_sentences_of_their_own():
    """A rendered table row keeps its label, period header and figure in one quotable sentence."""
    from service.query.citations import sentences

    table = (
        "CONDENSED STATEMENTS OF INCOME (In millions)\n"
        " | Three Months Ended July 30, 2023 | Three Months Ended July 31, 2022\n"
        "Total net sales | Three Months Ended July 30, 2023: 13,507 | Three Months Ended July 31, 2022: 6,704\n"
        "Cost of sales | Three Months Ended July 30, 2023: 4,045 | Three Months Ended July 31, 2022: 3,789\n"
    )
    found = sentences(table)
    assert "Total net sales | Three Months Ended July 30, 2023: 13,507 | Three Months Ended July 31, 2022: 6,704" in found
    assert "Cost of sales | Three Months Ended July 30, 2023: 4,045 | Three Months Ended July 31, 2022: 3,789" in found
