"""Document context lines from synthetic covers, memos and file names (ingest/doc_context.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.doc_context import derive_context, document_line
from ingest.documents import Element, ElementKind, ParsedDocument


def _doc(paragraphs: list[str], *, title: str | None = None, pages: list[int] | None = None, first_is_title: bool = False) -> ParsedDocument:
    text, elements = "", []
    for i, paragraph in enumerate(paragraphs):
        if text:
            text += "\n\n"
        kind = ElementKind.title if (first_is_title and i == 0) else ElementKind.text
        elements.append(Element(kind, len(text), len(text) + len(paragraph), pages[i] if pages else None))
        text += paragraph
    return ParsedDocument(text=text, elements=elements, mime_type="application/pdf", title=title)


QUARTERLY_COVER = [
    "UNITED STATES SECURITIES AND EXCHANGE COMMISSION",
    "Washington, D.C. 20549",
    "FORM 10-Q",
    "QUARTERLY REPORT PURSUANT TO SECTION 13 OR 15(d) OF THE SECURITIES EXCHANGE ACT OF 1934",
    "For the quarterly period ended July 30, 2023",
    "Commission file number 0-12345",
    "ACME WIDGETS CORPORATION",
    "(Exact name of registrant as specified in its charter)",
    "Delaware",
    "Indicate by check mark whether the registrant has filed all reports required to be filed.",
]


def test_filing_cover_gives_registrant_form_and_period():
    doc = _doc(QUARTERLY_COVER + ["Total net sales 1,234"], pages=[1] * 10 + [5])
    found = derive_context(doc, "2023 Q2 ACME.pdf")
    assert found.title == "ACME WIDGETS CORPORATION · Form 10-Q"
    assert found.context.startswith("ACME WIDGETS CORPORATION · Form 10-Q · quarterly period ended July 30, 2023")
    assert found.context.endswith("2023 Q2 ACME")  # the file name adds "Q2"
    assert "1,234" not in found.context


def test_glued_cover_text_still_yields_the_registrant():
    # Some PDFs lose every space and line break between boxes.
    glued = ("UNITED STATESSECURITIES AND EXCHANGE COMMISSIONWashington, D.C. 20549FORM 10-K(Mark One)ANNUAL REPORT OF 1934"
             "For the fiscal year ended January 28, 2023ORCommission file number 1-9999 ____________ZENITH STORES, INC."
             "(Exact name of registrant as specified in its charter)Minnesota")
    found = derive_context(_doc([glued]), "ZENITH_2023_10K.pdf")
    assert found.title == "ZENITH STORES, INC. · Form 10-K"
    assert "fiscal year ended January 28, 2023 (FY2023)" in found.context


def test_registrant_after_the_file_number_when_there_is_no_label():
    cover = ["FORM 10-K", "For the fiscal year ended December 31, 2018", "Commission file number 1-3285",
             "ORBITAL MACHINES COMPANY", "State of Incorporation: Delaware"]
    found = derive_context(_doc(cover), "annual.pdf")
    assert found.context.startswith("ORBITAL MACHINES COMPANY · Form 10-K · fiscal year ended December 31, 2018 (FY2018)")


def test_current_report_is_dated_and_a_press_release_gives_its_ticker():
    eight_k = ["FORM 8-K", "CURRENT REPORT", "Date of Report (Date of earliest event reported): May 3, 2023",
               "Brightline Foods, Inc.", "(Exact name of registrant as specified in its charter)"]
    assert derive_context(_doc(eight_k), "x.pdf").context == "Brightline Foods, Inc. · Form 8-K · dated May 3, 2023"

    release = ["Brightline Foods Reports Second-Quarter 2023 Results",
               "PURCHASE, N.Y. - July 13, 2023 - Brightline Foods, Inc. (NASDAQ: BRFD) today reported results."]
    found = derive_context(_doc(release, first_is_title=True), "BRIGHTLINE_2023Q2_EARNINGS.pdf")
    assert found.title == "Brightline Foods Reports Second-Quarter 2023 Results"
    # The dateline names the issuer and the date, whatever the headline says.
    assert found.context.startswith("Brightline Foods, Inc. · July 13, 2023 · BRFD · Brightline Foods Reports")
    wire = ["OVERALL RESULTS", "BOLINGBROOK, Ill.--(BUSINESS WIRE)-- Zenith Stores, Inc. (NYSE: ZNTH) today announced results."]
    assert derive_context(_doc(wire, first_is_title=True), "r.pdf").context.startswith("Zenith Stores, Inc. · ZNTH · OVERALL RESULTS")
    assert "Form 10-Q" not in found.context  # only a cover's top declares the document's form


def test_a_form_mentioned_far_down_is_not_the_documents_form():
    release = ["Quarterly results", "x " * 1000 + "as described in our Form 10-Q filed with the SEC"]
    assert "Form" not in derive_context(_doc(release, first_is_title=True), "r.pdf").context


def test_policy_gets_title_version_and_effective_date():
    policy = ["Travel and Expense Policy", "Version 3.2", "Effective date: 1 March 2024", "Employees must book travel through the portal."]
    found = derive_context(_doc(policy, first_is_title=True), "travel-policy.docx")
    assert found.title == "Travel and Expense Policy"
    assert found.context == "Travel and Expense Policy · effective date 1 March 2024 · version 3.2"


def test_memo_date_on_a_first_line_is_used_and_prose_dates_are_not():
    memo = ["Engineering leadership meeting", "2025-10-08", "Attendees: A, B"]
    assert derive_context(_doc(memo, first_is_title=True), "notes.md").context == "Engineering leadership meeting · 2025-10-08 · notes"
    abstract = ["Vitamin D and fracture risk", "Between March 2001 and June 2005 we followed " + "patients " * 40 + "and found no effect."]
    found = derive_context(_doc(abstract, first_is_title=True, title="Vitamin D and fracture risk"), "12345")
    assert found == derive_context(_doc(abstract, first_is_title=True, title="Vitamin D and fracture risk"), "")
    assert found.title == "Vitamin D and fracture risk" and found.context == ""  # the title says it all


def test_placeholder_metadata_titles_and_file_names_are_ignored():
    doc = _doc(QUARTERLY_COVER, title="0001018724-18-000005")
    assert derive_context(doc, "scan0001.pdf").title == "ACME WIDGETS CORPORATION · Form 10-Q"
    found = derive_context(_doc(["plain words here"], title="nvda-20230730.htm", first_is_title=True), "3f2a9c0d1e4b5a6c7d8e9f00.pdf")
    assert found == derive_context(_doc(["plain words here"], first_is_title=True), "")
    assert found.title == "plain words here" and found.context == ""
    # With nothing else to go by, the file name is still the displayed title (as it always was).
    assert derive_context(_doc(["12"]), "3f2a9c0d1e4b5a6c7d8e9f00.pdf").title == "3f2a9c0d1e4b5a6c7d8e9f00.pdf"


def test_file_name_is_the_last_resort():
    found = derive_context(_doc(["12", "34"]), "AMCOR_2023Q2_10Q.pdf")
    assert found.title == "AMCOR 2023Q2 10Q"
    assert found.context == ""  # nothing beyond the title


def test_context_is_bounded_and_document_line_falls_back_to_the_title():
    found = derive_context(_doc(QUARTERLY_COVER), "2023 Q2 ACME.pdf", max_chars=60)
    assert found.context == "ACME WIDGETS CORPORATION · Form 10-Q · 2023 Q2 ACME"  # the period did not fit
    assert derive_context(_doc(QUARTERLY_COVER), "a.pdf", max_chars=0).context == ""
    assert document_line("T", "") == "T" and document_line("T", "C") == "C" and document_line(None, None) == ""


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)


@settings(max_examples=150, deadline=None)
@given(paragraphs=st.lists(st.one_of(_TEXT, st.sampled_from(QUARTERLY_COVER)), max_size=12),
       title=st.one_of(st.none(), _TEXT), name=_TEXT, max_chars=st.integers(0, 400),
       pages=st.booleans())
def test_never_raises_and_stays_bounded(paragraphs, title, name, max_chars, pages):
    doc = _doc(paragraphs, title=title, pages=[1 + i // 3 for i in range(len(paragraphs))] if pages else None)
    found = derive_context(doc, name, {"pages": 3}, max_chars=max_chars)
    assert len(found.context) <= max_chars
    assert found.title is None or 0 < len(found.title) <= 300
    assert "\n" not in found.context and (found.title is None or "\n" not in found.title)


def test_trading_symbol_from_a_filing_cover_in_its_common_layouts():
    base = ["FORM 10-K", "Commission file number 1-1", "ZENITH STORES, INC.", "(Exact name of registrant as specified in its charter)"]
    layouts = {
        "Trading Symbol(s) Name of each exchange on which registered Common Stock, par value $0.10 ZNTH The Nasdaq Global Select Market": "ZNTH",
        "Title of each classTrading SymbolName of exchange on which registeredCommon Stock, $0.10 par value per shareZNTHNew York Stock Exchange": "ZNTH",
        "SECURITIES REGISTERED PURSUANT TO SECTION 12(B) OF THE ACT: Class B Common Stock (Title of each class) ZNT (Trading symbol) New York": "ZNT",
        "Trading Symbol(s) Name of each exchange on which registered None Indicate by check mark ABCD": None,
    }
    for line, symbol in layouts.items():
        context = derive_context(_doc([*base, line]), "report.pdf").context
        assert (symbol in context.split(" · ")) if symbol else ("ABCD" not in context), (line, context)
