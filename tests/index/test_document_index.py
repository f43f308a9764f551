"""The in-memory document index and boilerplate fingerprints (pure parts of the catalog)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from index.boilerplate import normalise, shared_document_counts, text_fingerprint
from index.catalog import DocAttrs
from index.document_index import DocumentIndex, DocumentTerms, name_terms, period_terms, terms

DESCRIPTIONS = [
    (1, "ACME WIDGETS CORPORATION · Form 10-Q · quarterly period ended July 30, 2023 · 2023 Q2 ACME\n2023 Q2 ACME.pdf"),
    (2, "ZENITH STORES, INC. · Form 10-K · fiscal year ended January 28, 2023 (FY2023)\nZENITH_2023_10K.pdf"),
    (3, "ZENITH STORES, INC. · Form 10-K · fiscal year ended January 29, 2022 (FY2022)\nZENITH_2022_10K.pdf"),
    (4, "Travel and Expense Policy · effective date 1 March 2024 · version 3.2\ntravel-policy.docx"),
]


def test_terms_split_letters_from_digits_and_drop_possessives():
    assert terms("What were ACME's FY2023 10-Q sales?") == ["acme", "fy2023", "fy", "2023", "10", "q", "sales"]


def test_a_question_naming_a_company_and_period_scores_that_document_first():
    index = DocumentIndex(DESCRIPTIONS)
    found = index.scores("What was Zenith's FY2022 operating income?")
    assert max(found, key=found.get) == 3 and found[3] == 1.0
    assert 0 < found[2] < 1 and 1 not in found  # the same company's other year, less
    assert max(index.scores("acme quarterly sales"), key=index.scores("acme quarterly sales").get) == 1
    assert index.scores("how do I book travel under the expense policy") == {4: 1.0}


def test_periods_rank_the_documents_a_name_picks_and_name_none_alone():
    index = DocumentIndex(DESCRIPTIONS)
    # ACME's filing matches "2023" and "Q2" better than Zenith's match their name; only the name names.
    found = index.scores("Did Zenith's sales increase in Q2 of FY2023 compared to FY2022?", names_only=True)
    assert set(found) == {2, 3}
    # With no name among the words, the periods still say what they can.
    assert max(index.scores("sales in Q2 2023", names_only=True).items(), key=lambda item: item[1])[0] == 1
    assert period_terms("FY 2023 10-K Q2 H1 FY2022 3M ALDH1") >= {"fy", "2023", "10", "k", "q2", "h1", "fy2022"}
    assert not period_terms("FY 2023 10-K 3M ALDH1") & {"3m", "aldh1", "aldh"}


def test_name_terms_keep_words_written_as_names_only():
    assert name_terms("What were ACME's FY2023 10-Q sales?") == ["acme", "fy2023", "fy", "2023", "10", "q"]
    assert name_terms("Does Best Buy have positive working capital? Answer briefly.") == ["best", "buy"]
    assert name_terms("Aspirin inhibits tumour growth in mice.") == []  # a capital that only starts a sentence
    assert name_terms("how has eBay grown") == ["ebay"]


def test_names_only_boosts_the_named_document_and_ignores_a_policy_asked_in_lower_case():
    index = DocumentIndex(DESCRIPTIONS)
    named = index.scores("What was Zenith's FY2022 operating income?", names_only=True)
    assert max(named, key=named.get) == 3
    assert index.scores("how do I book travel under the expense policy", names_only=True) == {}


def test_a_file_name_without_letters_is_not_part_of_the_description():
    def attrs(source):
        return DocAttrs(id=1, collection="c", groups=frozenset(), source=source, mime_type=None, created_at=None,
                        updated_at=None, metadata={}, indexed=True, title="Induction of myelodysplasia", context=None)

    assert "4983" not in attrs("/corpus/4983.txt").description()
    assert "ZENITH_2023_10K.pdf" in attrs("/filings/ZENITH_2023_10K.pdf").description()


def test_no_match_or_empty_index_gives_no_scores():
    assert DocumentIndex(DESCRIPTIONS).scores("photosynthesis in algae") == {}
    assert DocumentIndex([]).scores("anything") == {}
    assert DocumentIndex([(9, "")]).scores("anything") == {}


def test_floor_keeps_only_documents_close_to_the_best():
    found = DocumentIndex(DESCRIPTIONS).scores("Zenith FY2022", floor=0.9)
    assert list(found) == [3]


def test_words_matching_more_documents_than_allowed_name_none_of_them():
    index = DocumentIndex(DESCRIPTIONS)
    assert set(index.scores("Zenith Stores", max_documents=2)) == {2, 3}
    # "2023" matches two descriptions about equally: with at most one named, neither is.
    assert set(index.scores("2023", floor=0.5)) == {1, 2}
    assert index.scores("2023", floor=0.5, max_documents=1) == {}
    assert index.scores("Zenith FY2022", floor=0.9, max_documents=1) == {3: 1.0}


def test_fingerprint_ignores_case_spacing_and_punctuation_only():
    a = text_fingerprint("Follow us on Twitter, LinkedIn   and Instagram!")
    assert a == text_fingerprint("follow us on twitter linkedin and instagram")
    assert a != text_fingerprint("Follow us on Twitter, LinkedIn and Facebook!")
    assert text_fingerprint("1,234") != text_fingerprint("1,235")  # figures are content
    assert text_fingerprint(" ... ") is None and normalise("A-b") == "a b"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 6), st.integers(0, 4)), max_size=40))
def test_shared_document_counts_match_a_naive_count(rows):
    documents = np.asarray([d for d, _ in rows], dtype=np.int64)
    fingerprints = np.asarray([f for _, f in rows], dtype=np.int64)  # 0 = no fingerprint
    got = shared_document_counts(documents, fingerprints).tolist()
    want = [1 if f == 0 else len({d for d, g in rows if g == f}) for _, f in rows]
    assert got == want


WORDS = ["acme", "zenith", "FY2022", "10-K", "policy", "travel", "Q2", "stores", "2023"]


@settings(max_examples=40, deadline=None)
@given(
    first=st.dictionaries(st.integers(1, 30), st.lists(st.sampled_from(WORDS), max_size=6).map(" ".join), max_size=20),
    second=st.dictionaries(st.integers(1, 30), st.lists(st.sampled_from(WORDS), max_size=6).map(" ".join), max_size=20),
    query=st.lists(st.sampled_from(WORDS + ["unknown"]), min_size=1, max_size=4).map(" ".join),
)
def test_a_rebuild_from_remembered_terms_scores_like_a_fresh_build(first, second, query):
    """The catalog rebuilds from terms remembered across builds (``DocumentTerms``): after any
    change of descriptions the scores are those of an index built from scratch, and an index
    built before the change still answers (words new since then are unknown to it)."""
    cache = DocumentTerms()
    before = DocumentIndex(sorted(first.items()), cache=cache)
    expected_before = DocumentIndex(sorted(first.items())).scores(query)
    after = DocumentIndex(sorted(second.items()), cache=cache)
    cache.keep_only(second)
    fresh = DocumentIndex(sorted(second.items())).scores(query)
    got = after.scores(query)
    assert got.keys() == fresh.keys() and all(abs(got[d] - fresh[d]) < 1e-9 for d in got)
    old = before.scores(query)
    assert old.keys() == expected_before.keys() and all(abs(old[d] - expected_before[d]) < 1e-9 for d in old)
