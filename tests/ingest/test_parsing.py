"""parse_file on small generated documents: structure, offsets, titles and failure reasons."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from email.message import EmailMessage
from pathlib import Path

import pytest

from ingest import parsing
from ingest.documents import ElementKind, FailureReason, ParsedDocument, ParseFailure
from ingest.filetypes import decode_text, detect_type, looks_like_email, mime_for
from ingest.parsing import parse_file

MAX_BYTES = 10_000_000
MAX_CHARS = 1_000_000
REPO_ROOT = Path(__file__).resolve().parents[2]

NARRATIVE = (
    "The committee reviewed the annual budget in detail. It approved the proposal after a long "
    "discussion about maintenance costs and staffing levels for the coming year."
)


def parse(path: Path, **limits: int) -> ParsedDocument:
    return parse_file(path, max_bytes=limits.get("max_bytes", MAX_BYTES), max_chars=limits.get("max_chars", MAX_CHARS))


def failure_reason(path: Path, **limits: int) -> FailureReason:
    with pytest.raises(ParseFailure) as caught:
        parse(path, **limits)
    return caught.value.reason


def element_texts(document: ParsedDocument, kind: ElementKind | None = None) -> list[str]:
    return [document.text[e.start:e.end] for e in document.elements if kind is None or e.kind is kind]


def assert_offsets_consistent(document: ParsedDocument) -> None:
    """Elements tile the text in order, separated by exactly one blank line."""
    position = 0
    for index, element in enumerate(document.elements):
        if index:
            assert document.text[position:element.start] == "\n\n"
        assert element.end > element.start
        assert "\n\n" not in document.text[element.start:element.end]
        position = element.end
    assert position == len(document.text)


# --------------------------------------------------------------------------------------------
# fixture builders
# --------------------------------------------------------------------------------------------


def make_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.core_properties.title = "Budget Review"
    document.add_heading("Budget Review", level=1)
    document.add_paragraph(NARRATIVE)
    document.add_heading("Staffing", level=2)
    document.add_paragraph("Hire two technicians", style="List Bullet")
    document.add_paragraph("Train the night shift", style="List Bullet")
    table = document.add_table(rows=3, cols=2)
    for row, (left, right) in zip(table.rows, [("Item", "Cost"), ("Roof", "1200"), ("Boiler", "800")]):
        row.cells[0].text, row.cells[1].text = left, right
    document.save(path)
    return path


def make_pdf(path: Path, pages: list[list[str]], *, heading: str | None = None, footer: bool = True) -> Path:
    from fpdf import FPDF

    class Report(FPDF):
        def footer(self) -> None:
            if footer:
                self.set_y(-12)
                self.set_font("Helvetica", size=8)
                self.cell(0, 8, f"Page {self.page_no()}", align="C")

    pdf = Report()
    pdf.set_margins(25, 40, 25)
    for number, paragraphs in enumerate(pages, start=1):
        pdf.add_page()
        if heading and number == 1:
            pdf.set_font("Helvetica", style="B", size=18)
            pdf.cell(0, 12, heading, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(6)
        pdf.set_font("Helvetica", size=11)
        for paragraph in paragraphs:
            pdf.multi_cell(0, 6, paragraph, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(6)
    pdf.output(str(path))
    return path


# --------------------------------------------------------------------------------------------
# formats
# --------------------------------------------------------------------------------------------


def test_docx_headings_lists_table_and_title(tmp_path: Path) -> None:
    document = parse(make_docx(tmp_path / "budget.docx"))

    assert document.title == "Budget Review"
    assert document.mime_type == mime_for("docx")
    kinds = [e.kind for e in document.elements]
    assert kinds[0] is ElementKind.title and document.elements[0].level == 0
    headings = [e for e in document.elements if e.kind is ElementKind.heading]
    assert [document.text[h.start:h.end] for h in headings] == ["Staffing"]
    assert headings[0].level == 2
    assert element_texts(document, ElementKind.list_item) == ["Hire two technicians", "Train the night shift"]
    assert element_texts(document, ElementKind.table)[0] in ("Item | Cost\nRoof | 1200\nBoiler | 800", "Item | Cost\nRoof | Cost: 1200\nBoiler | Cost: 800")
    assert NARRATIVE in element_texts(document, ElementKind.text)
    assert_offsets_consistent(document)


def test_pptx_slides_become_pages(tmp_path: Path) -> None:
    from pptx import Presentation

    deck = Presentation()
    title_slide = deck.slides.add_slide(deck.slide_layouts[0])
    title_slide.shapes.title.text = "Quarterly Results"
    title_slide.placeholders[1].text = "Prepared for the board"
    bullets = deck.slides.add_slide(deck.slide_layouts[1])
    bullets.shapes.title.text = "Highlights"
    frame = bullets.placeholders[1].text_frame
    frame.text = "Revenue grew in every region"
    frame.add_paragraph().text = "Costs stayed flat"
    path = tmp_path / "deck.pptx"
    deck.save(path)

    document = parse(path)
    assert document.title == "Quarterly Results"
    assert document.elements[0].kind is ElementKind.title
    highlights = next(e for e in document.elements if document.text[e.start:e.end] == "Highlights")
    assert highlights.kind is ElementKind.heading and highlights.page == 2
    assert {"Revenue grew in every region", "Costs stayed flat"} <= set(element_texts(document))
    assert_offsets_consistent(document)


def test_xlsx_sheet_is_a_table_with_header_row(tmp_path: Path) -> None:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    for row in [("Region", "Sales"), ("North", 120), ("South", 95)]:
        sheet.append(row)
    path = tmp_path / "sales.xlsx"
    workbook.save(path)

    document = parse(path)
    tables = element_texts(document, ElementKind.table)
    assert tables and tables[0].splitlines()[0] == "Region | Sales"
    rows = tables[0].splitlines()[1:]
    assert rows in (["North | 120", "South | 95"], ["North | Sales: 120", "South | Sales: 95"])
    assert all(e.page == 1 for e in document.elements)


def test_pdf_pages_heading_and_running_footer(tmp_path: Path) -> None:
    path = make_pdf(
        tmp_path / "report.pdf",
        [[NARRATIVE, "A second paragraph about the maintenance schedule for the year."], [NARRATIVE.replace("annual", "quarterly")]],
        heading="Maintenance Report",
    )
    document = parse(path)

    assert document.metadata["pages"] == 2
    assert {e.page for e in document.elements} == {1, 2}
    assert document.elements[0].kind is ElementKind.title
    assert document.title == "Maintenance Report"
    page_two = [document.text[e.start:e.end] for e in document.elements if e.page == 2]
    assert any("quarterly budget" in text for text in page_two)
    assert "Page 1" not in document.text and "Page 2" not in document.text
    assert_offsets_consistent(document)


def test_html_title_headings_and_table(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>Site Handbook</title></head><body>"
        "<h1>Site Handbook</h1><p>" + NARRATIVE + "</p><h2>Contacts</h2>"
        "<ul><li>Front desk</li><li>Security</li></ul>"
        "<table><tr><th>Name</th><th>Phone</th></tr><tr><td>Desk</td><td>100</td></tr></table>"
        "</body></html>",
        encoding="utf-8",
    )
    document = parse(path)
    assert document.title == "Site Handbook"
    assert document.elements[0].kind is ElementKind.title
    contacts = next(e for e in document.elements if document.text[e.start:e.end] == "Contacts")
    assert contacts.kind is ElementKind.heading and contacts.level == 2
    assert element_texts(document, ElementKind.list_item) == ["Front desk", "Security"]
    assert element_texts(document, ElementKind.table)[0] in ("Name | Phone\nDesk | 100", "Name | Phone\nDesk | Phone: 100")


def test_markdown_heading_levels(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_text(f"# Field Notes\n\n{NARRATIVE}\n\n## Equipment\n\n- rope\n- lamp\n\n### Spares\n\nNone left.\n")
    document = parse(path)
    assert document.title == "Field Notes"
    levels = {document.text[e.start:e.end]: e.level for e in document.elements if e.kind is ElementKind.heading}
    assert levels == {"Equipment": 2, "Spares": 3}
    assert element_texts(document, ElementKind.list_item) == ["rope", "lamp"]


def test_email_subject_is_title(tmp_path: Path) -> None:
    message = EmailMessage()
    message["From"] = "Ada <ada@example.org>"
    message["To"] = "ops@example.org"
    message["Subject"] = "Boiler inspection moved"
    message["Date"] = "Mon, 06 May 2024 09:00:00 +0000"
    message.set_content(NARRATIVE)
    path = tmp_path / "note.eml"
    path.write_bytes(message.as_bytes())

    document = parse(path)
    assert document.title == "Boiler inspection moved"
    assert document.mime_type == "message/rfc822"
    assert NARRATIVE in document.text


def test_csv_rows_keep_header_first(tmp_path: Path) -> None:
    path = tmp_path / "stock.csv"
    path.write_text('part,count,note\nvalve,3,"needs, sealing"\ngasket,10\n')
    document = parse(path)
    assert element_texts(document) == ["part | count | note\nvalve | 3 | needs, sealing\ngasket | 10"]
    assert document.elements[0].kind is ElementKind.table


def test_json_records_become_searchable_lines(tmp_path: Path) -> None:
    path = tmp_path / "records.json"
    path.write_text('[{"name": "pump", "spec": {"flow": 12}}, {"name": "fan", "tags": ["quiet", "small"]}]')
    document = parse(path)
    assert element_texts(document) == ["name: pump\nspec.flow: 12", "name: fan\ntags: quiet, small"]


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [("utf-16", b""), ("utf-16-le", b""), ("utf-16-be", b""), ("utf-32", b""), ("cp1252", b""), ("utf-8", b"\xef\xbb\xbf")],
)
def test_text_encodings_decode(tmp_path: Path, encoding: str, bom: bytes) -> None:
    content = f"Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u2014 {NARRATIVE}\n"
    path = tmp_path / f"text-{encoding}.txt"
    path.write_bytes(bom + content.encode(encoding))
    document = parse(path)
    assert document.text == content.strip()


def test_html_named_pdf_is_parsed_as_html(tmp_path: Path) -> None:
    path = tmp_path / "download.pdf"
    path.write_text("<!DOCTYPE html><html><head><title>Not Found</title></head><body><p>Gone.</p></body></html>")
    document = parse(path)
    assert document.mime_type == "text/html"
    assert document.title == "Not Found"


def test_email_saved_as_txt_is_detected() -> None:
    assert looks_like_email("From: a@example.org\nTo: b@example.org\nSubject: hi\n\nbody")
    assert not looks_like_email("Subject: physics\nThe lecture covers motion.\n")


# --------------------------------------------------------------------------------------------
# failures
# --------------------------------------------------------------------------------------------


def test_empty_and_whitespace_only_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    blank = tmp_path / "blank.txt"
    blank.write_bytes(b" \n\t\r\n  \n")
    wide_blank = tmp_path / "wide-blank.txt"
    wide_blank.write_bytes(" \n \n".encode("utf-16"))
    assert failure_reason(empty) is FailureReason.empty
    assert failure_reason(blank) is FailureReason.empty
    assert failure_reason(wide_blank) is FailureReason.empty


def test_binary_files_are_unsupported(tmp_path: Path) -> None:
    """Images are not among them any more: OCR reads them (tests/ingest/test_ocr.py)."""
    noise = tmp_path / "noise.txt"
    noise.write_bytes(bytes(range(256)) * 8 + os.urandom(2048))
    wav = tmp_path / "memo.wav"
    wav.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(64))
    archive = tmp_path / "bundle.docx"
    import zipfile

    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("readme.txt", "hello")
    assert failure_reason(noise) is FailureReason.unsupported_type
    assert failure_reason(wav) is FailureReason.unsupported_type
    assert failure_reason(archive) is FailureReason.unsupported_type


def test_truncated_pdf_is_corrupt(tmp_path: Path) -> None:
    whole = make_pdf(tmp_path / "whole.pdf", [[NARRATIVE]]).read_bytes()
    truncated = tmp_path / "truncated.pdf"
    truncated.write_bytes(whole[: len(whole) // 3])
    assert failure_reason(truncated) is FailureReason.corrupt


def test_encrypted_pdf(tmp_path: Path) -> None:
    import pikepdf

    plain = make_pdf(tmp_path / "plain.pdf", [[NARRATIVE]])
    locked = tmp_path / "locked.pdf"
    with pikepdf.open(plain) as pdf:
        pdf.save(locked, encryption=pikepdf.Encryption(user="letmein", owner="owner-secret", aes=True))
    assert failure_reason(locked) is FailureReason.encrypted


def test_pdf_with_owner_password_only_still_parses(tmp_path: Path) -> None:
    import pikepdf

    plain = make_pdf(tmp_path / "plain.pdf", [[NARRATIVE]])
    restricted = tmp_path / "restricted.pdf"
    with pikepdf.open(plain) as pdf:
        pdf.save(restricted, encryption=pikepdf.Encryption(user="", owner="owner-secret", allow=pikepdf.Permissions(extract=False)))
    assert "annual budget" in parse(restricted).text


def test_pdf_without_text_layer(tmp_path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.rect(30, 30, 100, 60, style="F")
    path = tmp_path / "drawing.pdf"
    pdf.output(str(path))
    assert failure_reason(path) is FailureReason.no_extractable_text


def test_size_limits(tmp_path: Path) -> None:
    path = tmp_path / "long.txt"
    path.write_text((NARRATIVE + "\n\n") * 50)
    assert failure_reason(path, max_bytes=1000) is FailureReason.too_large
    assert failure_reason(path, max_chars=2000) is FailureReason.too_large


def test_encrypted_ooxml_container(tmp_path: Path) -> None:
    """Password-protected OOXML is an OLE file holding EncryptionInfo/EncryptedPackage streams."""
    msoffcrypto = pytest.importorskip("msoffcrypto")
    from msoffcrypto.format.ooxml import OOXMLFile

    plain = make_docx(tmp_path / "plain.docx")
    locked = tmp_path / "locked.docx"
    with plain.open("rb") as source, locked.open("wb") as target:
        OOXMLFile(source).encrypt("letmein", target)
    assert msoffcrypto is not None
    assert failure_reason(locked) is FailureReason.encrypted


def test_legacy_office_without_libreoffice_names_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parsing, "find_soffice", lambda: None)
    source = tmp_path / "old.doc"
    source.write_bytes(b"not really a doc")
    with pytest.raises(ParseFailure) as caught:
        parsing._soffice_convert(source, "doc", "docx", tmp_path)
    assert caught.value.reason is FailureReason.unsupported_type
    assert "LibreOffice" in caught.value.detail and "DOC" in caught.value.detail


def test_corrupt_docx_is_reported_not_raised(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "broken.docx"
    with zipfile.ZipFile(path, "w") as package:
        package.writestr("[Content_Types].xml", "<Types/>")
        package.writestr("word/document.xml", "<w:document><unclosed>")
    assert failure_reason(path) is FailureReason.corrupt


# --------------------------------------------------------------------------------------------
# pure helpers
# --------------------------------------------------------------------------------------------


def test_table_text_from_html() -> None:
    html = "<table><thead><tr><th>A</th><th> B </th></tr></thead><tr><td>1</td><td>x\n y</td></tr><tr><td></td><td></td></tr></table>"
    text, head_lines = parsing.table_text(html, "fallback")
    assert head_lines == 1 and text.split("\n")[0] == "A | B"
    assert text.split("\n")[1] in ("1 | B: x y", "1 | x y") and len(text.split("\n")) == 2
    assert parsing.table_text(None, "a  b\n\n c") == ("a b\nc", 0)


def test_drop_running_heads_keeps_a_title_near_the_top() -> None:
    Box = parsing.PdfBox
    boxes = [
        Box(1, "Annual Report", 0.03, 0.06),
        Box(1, "Body text", 0.3, 0.4),
        Box(1, "ACME Corp confidential", 0.95, 0.97),
        Box(2, "ACME Corp confidential", 0.95, 0.97),
        Box(2, "3", 0.96, 0.98),
    ]
    assert [b.text for b in parsing.drop_running_heads(boxes)] == ["Annual Report", "Body text"]


def test_detect_type_prefers_content_over_extension(tmp_path: Path) -> None:
    rtf = tmp_path / "letter.txt"
    rtf.write_bytes(b"{\\rtf1\\ansi Hello}")
    assert detect_type(rtf, rtf.read_bytes()) == "rtf"
    rst = tmp_path / "guide.rst"
    rst.write_text("Guide\n=====\n\nText.\n")
    assert detect_type(rst, rst.read_bytes()) == "rst"
    assert decode_text("na\u00efve".encode("utf-16-be"))[0] == "na\u00efve"


# --------------------------------------------------------------------------------------------
# offline
# --------------------------------------------------------------------------------------------

_NO_NETWORK_SCRIPT = textwrap.dedent(
    """
    import socket, sys, urllib.request
    from pathlib import Path

    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[1:2] or args[:1])
        raise OSError("network disabled for this test")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse
    urllib.request.urlopen = refuse

    from ingest.parsing import parse_file
    from unstructured.nlp import tokenize

    document = parse_file(Path(sys.argv[1]), max_bytes=10**7, max_chars=10**6)
    assert document.text, "no text extracted"
    assert tokenize._get_nlp.cache_info().currsize == 1, "spaCy model was never loaded"
    assert not attempts, f"network was attempted: {attempts}"
    print("OK", len(document.elements))
    """
)


def test_parsing_needs_no_network(tmp_path: Path) -> None:
    """Narrative text runs unstructured's spaCy heuristics; none of it may reach the network."""
    path = tmp_path / "minutes.txt"
    path.write_text(f"Minutes\n\n{NARRATIVE}\n\nThe meeting closed at noon after a short vote.\n")
    environment = {k: v for k, v in os.environ.items() if k not in ("DO_NOT_TRACK", "SCARF_NO_ANALYTICS")}
    environment.update(HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO_ROOT))
    completed = subprocess.run(
        [sys.executable, "-c", _NO_NETWORK_SCRIPT, str(path)],
        cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.startswith("OK")


def test_missing_spacy_model_fails_clearly_instead_of_downloading(monkeypatch: pytest.MonkeyPatch) -> None:
    import spacy

    from ingest.offline import OfflineModelMissing, ensure_offline_nlp

    ensure_offline_nlp()
    from unstructured.nlp import tokenize

    def missing(*_args: object, **_kwargs: object) -> None:
        raise OSError("[E050] Can't find model")

    monkeypatch.setattr(spacy, "load", missing)
    with pytest.raises(OfflineModelMissing):
        tokenize._load_spacy_model()
    with pytest.raises(OfflineModelMissing):
        tokenize._install_spacy_model()
