"""Sections a question names (service/query/sections.py), and the search that favours them."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.engine import Groundwork
from service.query import sections
from service.query.sections import SectionNames, label_text
from service.query.synonyms import SynonymGroups
from service.query.types import Principal, Query

NAMES = SectionNames.from_synonyms(SynonymGroups.parse([
    "income statement, statement of operations, statement of income",
    "balance sheet, statement of financial position",
]))
EVERYONE = Principal(id="t", all_access=True)


def test_a_question_names_a_section_by_any_phrase_of_its_group_plurals_folded():
    assert NAMES.named_by("Using the statements of income, what was COGS?") == {0}
    assert NAMES.labelled("ITEM 8\nCONSOLIDATED STATEMENTS OF OPERATIONS\n(In millions)") == {0}
    assert NAMES.labelled("INCOME STATEMENTS") == {0}
    assert NAMES.labelled("CONSOLIDATED BALANCE SHEETS") == {1}
    assert NAMES.labelled("3M Company\nConsolidated Balance Shee t\nAt December 31") == {1}, "letter-spaced title"
    assert NAMES.named_by("What was revenue in 2022?") == frozenset()


def test_the_shipped_groups_name_the_statements_of_a_financial_report():
    shipped = sections.load("business")
    assert shipped is not None and sections.load("off") is None
    asked = shipped.named_by("Based on the cash flow statement, what was capex?")
    assert asked and asked <= shipped.labelled("ACME INC. CONSOLIDATED STATEMENTS OF CASH FLOWS (In millions)")
    assert not asked & shipped.labelled("CONSOLIDATED BALANCE SHEETS")


def test_a_metric_names_its_statement_in_a_question_only():
    names = SectionNames.parse(["balance sheet, statement of financial position", "quick ratio, working capital => balance sheet"])
    assert names.named_by("Has the quick ratio improved?") == {0}
    assert names.labelled("Quick ratio | 2023: 0.7") == frozenset(), "a passage naming the metric is not the statement"
    assert names.labelled("CONSOLIDATED STATEMENTS OF FINANCIAL POSITION") == {0}
    with pytest.raises(ValueError, match="line 1"):
        SectionNames.parse(["quick ratio => balance sheet"])


def test_an_unreadable_section_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ValueError, match="section_names"):
        sections.load(str(tmp_path / "missing.txt"))


def test_a_label_is_headings_context_and_a_tables_opening_only():
    body = "x " * 300 + "balance sheet"
    assert "balance sheet" not in label_text(["Notes"], "", "table", body)
    assert "balance sheet" not in label_text(["Notes"], "", "text", "The balance sheet shows")
    assert "balance sheet" in label_text(["Notes"], "", "table", "Balance sheet\nCash | 2022: 5").lower()
    assert "balance sheets" in label_text(["Notes"], "CONSOLIDATED BALANCE SHEETS\n| 2023", "table", "Cash | 5").lower()


@given(st.text(max_size=80))
def test_naming_never_fails_and_names_only_known_groups(text: str):
    assert NAMES.named_by(text) <= {0, 1} and NAMES.labelled(text) <= {0, 1}


# --- in a search ----------------------------------------------------------------------------------

REPORT = """# Acme Widgets annual report

## Liquidity and capital resources

Our balance sheet stayed strong. Total current liabilities rose in the year, and total current
liabilities are expected to rise again; the balance sheet can carry them.

## Consolidated statements of financial position

| (In millions) | 2023 | 2022 |
| --- | --- | --- |
| Cash and cash equivalents | 1,200 | 1,100 |
| Inventories | 800 | 750 |
| Total current liabilities | 4,321 | 3,999 |

## Employees

We employ four thousand people in nine countries, most of them in manufacturing.

## Properties

Our plants are in Ohio, Bavaria and Guangdong; we lease our offices.

## Legal proceedings

We are party to routine claims incidental to the business; none is material.
"""


def test_a_question_naming_a_statement_finds_its_table_first(settings, hash_embedder, tmp_path: Path):
    for key, value in {"chunk_min_tokens": 0, "document_boost_weight": 0.0, "max_hits_per_page": 0}.items():
        setattr(settings, key, value)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "acme-2023.md").write_text(REPORT, encoding="utf-8")
    app = Groundwork(settings, embedder=hash_embedder)
    try:
        app.ingest([tmp_path / "docs"], progress=False)
        question = "According to the balance sheet, what were total current liabilities?"

        def table_place_and_score() -> tuple[int, float]:
            hits = app.pipeline.search(Query(question, EVERYONE, k=10)).hits
            return next((n, h.score) for n, h in enumerate(hits) if "4,321" in h.text)

        app.settings.section_boost = 0.0
        place, score = table_place_and_score()
        assert place > 0, "without the boost, the prose that repeats the question's words comes first"
        app.settings.section_boost = 0.5
        assert table_place_and_score()[1] == pytest.approx(score + 0.5), "the table is lifted by the boost"
        app.settings.section_boost = 2.5
        assert table_place_and_score()[0] == 0
        # Another file numbers its groups otherwise: what was remembered of labels is not reused.
        first_file, second_file = tmp_path / "a.txt", tmp_path / "b.txt"
        first_file.write_text("balance sheet, statement of financial position\nincome statement, statement of income\n")
        second_file.write_text("income statement, statement of income\nbalance sheet, statement of financial position\n")
        for names in (first_file, second_file):
            app.settings.section_names = str(names)
            assert table_place_and_score()[0] == 0, names.name
        app.settings.section_names = "off"
        assert table_place_and_score() == (place, score)
    finally:
        app.close()
