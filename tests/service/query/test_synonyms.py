"""Synonym groups for the keyword half of a search (service/query/synonyms.py)."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.query import synonyms
from service.query.synonyms import SynonymGroups, load, words

GROUPS = SynonymGroups.parse([
    "# a comment line",
    "capital expenditure, capex, purchases of property and equipment  # trailing comment",
    "",
    "cost of goods sold, cogs, cost of revenue",
])


def test_a_phrase_in_the_question_adds_the_other_phrases_words_once():
    assert GROUPS.expansion("What was 3M's capital expenditure in FY2018?").split() == [
        "capex", "purchases", "of", "property", "and", "equipment"]


def test_words_the_question_has_are_not_added_again():
    extra = GROUPS.expansion("Cost of goods sold versus cost of revenue").split()
    assert extra == ["cogs"]


def test_matching_is_on_whole_words_and_phrases():
    assert GROUPS.expansion("capexes and expenditure on capital") == ""  # neither phrase, in order
    assert GROUPS.expansion("the CAPEX budget") != ""


def test_ampersand_reads_as_and():
    assert words("PP&E, S&P 500") == ("pp", "and", "e", "s", "and", "p", "500")
    groups = SynonymGroups.parse(["pp and e, property plant and equipment"])
    assert set(groups.expansion("net PP&E")) >= set("property plant equipment")


def test_a_group_of_one_phrase_is_refused_with_its_line():
    with pytest.raises(ValueError, match="line 2"):
        SynonymGroups.parse(["a, b", "lonely"])


def test_the_builtin_list_loads_and_off_means_none():
    builtin = load("business")
    assert builtin is not None and len(builtin.groups) > 20
    assert "operations" in builtin.expansion("Where is the income statement?").split()
    assert load("off") is None and load("") is None


def test_an_unreadable_file_fails_at_once_with_its_path(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(ValueError, match="nope.txt"):
        load(str(missing))


def test_a_custom_file(tmp_path):
    path = tmp_path / "ours.txt"
    path.write_text("runbook, playbook\n", encoding="utf-8")
    assert load(str(path)).expansion("Where is the on-call runbook?") == "playbook"


@given(st.text(alphabet=st.sampled_from("abcdeopsx &,-"), max_size=60))
def test_the_expansion_never_repeats_a_question_word_or_itself(text):
    groups = SynonymGroups.parse(["a b, c", "x, o p, s and e"])
    extra = groups.expansion(text).split()
    assert len(extra) == len(set(extra))
    assert not set(extra) & set(words(text))


def test_the_builtin_file_ships_with_the_package():
    assert synonyms.BUILTIN_FILE.is_file()
    with open(Path(__file__).resolve().parents[3] / "pyproject.toml", "rb") as f:
        patterns = tomllib.load(f)["tool"]["setuptools"]["package-data"]["service.query"]
    assert any(fnmatch(synonyms.BUILTIN_FILE.name, pattern) for pattern in patterns)


def test_the_retriever_expands_only_the_keyword_text():
    from index.settings import Settings
    from service.query.retrieval import Retriever

    on = Retriever(Settings(query_synonyms="business"), None, None, None)
    assert "purchases" in on.expansion("What was the capex?").split()
    assert on.expansion("What was the weather?") == ""
    off = Retriever(Settings(), None, None, None)
    assert off.expansion("What was the capex?") == ""
