"""The plain-text partitioner gives the element kinds unstructured's ``partition_text`` gives."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.parsing import classify_paragraph, partition_plain_text, pieces_from_elements
from ingest.runtime.spacy_model import ensure_offline_nlp, spacy_model_available

pytestmark = pytest.mark.skipif(not spacy_model_available(), reason="the bundled spaCy model is not installed")


def reference_pieces(text: str):
    from unstructured.partition.text import partition_text

    ensure_offline_nlp()
    return pieces_from_elements(partition_text(text=text, languages=[""]))


def fast_pieces(text: str):
    ensure_offline_nlp()
    return pieces_from_elements(partition_plain_text(text))


EXAMPLES = [
    "Introduction\n\nThe committee reviewed the annual budget in detail. It approved the proposal after a long "
    "discussion about maintenance costs.\n\nMethods And Results\n\n- a bullet item\n\n1. a numbered item here",
    "Annual Report 2023\n\nREVENUE GREW BY TWELVE PERCENT OVER THE PRIOR YEAR DRIVEN BY STRONG DEMAND IN ALL REGIONS.",
    "contact: someone@example.com\n\nsomeone@example.com\n\nSpringfield, IL 62704",
    "line one of a wrapped paragraph\nline two of the same paragraph\nline three ends it here.\n\nNext one.",
    "• \n\n• first bullet with enough words to be longer than any title could be at all\n\n2023 2022 2021",
    "A single line of text without blank lines but with very many words that go on and on past twelve words",
    "   \n\n\n",
    "Short\nlines\nonly\nhere\n\n\n\nand\nthen\nsome",
    "1.2 Overview\n\n(In thousands)\n\n$ 81,797 12.5% revenue 1,234,567 and a very long tail of words after those figures",
]


@pytest.mark.parametrize("text", EXAMPLES)
def test_same_pieces_as_partition_text(text: str) -> None:
    assert fast_pieces(text) == reference_pieces(text)


words = st.sampled_from(
    "the The committee Budget approved REVIEW of 2023 $12.5 (in thousands) Results: and, met. is was runs "
    "a1 - • 1. x@y.com Chicago IL 60601 Introduction".split(" ")
)
lines = st.lists(words, min_size=1, max_size=20).map(" ".join)
texts = st.lists(st.one_of(lines, st.just(""), st.just("  ")), min_size=1, max_size=8).map("\n".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts)
def test_same_pieces_for_any_text(text: str) -> None:
    assert fast_pieces(text) == reference_pieces(text)


def test_long_paragraph_skips_the_nlp(monkeypatch) -> None:
    """The point of it: a paragraph longer than a title never reaches spaCy."""
    from unstructured.nlp import tokenize

    def refuse(*_args, **_kwargs):
        raise AssertionError("spaCy ran on a paragraph that cannot be a title")

    monkeypatch.setattr(tokenize, "_process", refuse)
    element = classify_paragraph("This paragraph has far more than twelve words in it, so it can never be a title at all.")
    assert element.category == "NarrativeText"
