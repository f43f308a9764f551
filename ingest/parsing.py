"""Turn one file into a ``ParsedDocument``, or say precisely why it cannot be ingested.

Each format goes through unstructured's format-specific partitioner, except PDF: unstructured's
PDF module cannot even be imported without its layout-model package, and only the text layer is
wanted anyway, so PDFs are read with pdfminer and classified with unstructured's text
heuristics. Whatever the source, the elements end up in one shape: normalised text joined by
blank lines, with offsets into it.

This runs in-process and trusts the caller for isolation: a hostile file can still hang or
exhaust memory here, which is why ingestion calls it through ``ingest.parser_pool``.
"""

from __future__ import annotations

import html
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from ingest.documents import Element, ElementKind, FailureReason, ParsedDocument, ParseFailure
from ingest.filetypes import HEAD_BYTES, IMAGE_TYPES, TEXT_TYPES, decode_text, detect_type, guess_encoding, mime_for
from ingest.ocr import OcrOptions, using
from ingest.pdf_layout import Glyph, Line, Rule, find_tables
from ingest.runtime.offline import set_offline_environment
from ingest.runtime.spacy_model import OfflineModelMissing, ensure_offline_nlp
from ingest.tables import html_table, render_table

# unstructured is imported lazily below, and must never be imported before this has run.
set_offline_environment()

ELEMENT_SEPARATOR = "\n\n"
CONVERTER_TIMEOUT_S = 600.0
"""Backstop for LibreOffice when ``parse_file`` runs outside the pool's own per-file timeout."""

_WHITESPACE_BYTES = b" \t\r\n\x0b\x0c"
_HORIZONTAL_SPACE = re.compile(r"[^\S\n]+")
_LINE_BREAKS = re.compile(r"\r\n?|[\x0b\x0c\x85\u2028\u2029]")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f\u200b\ufeff]")
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_DECLARED_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_DC_TITLE = "{http://purl.org/dc/elements/1.1/}title"
_JUNK_TITLE = re.compile(
    r"^(untitled\b.*|(microsoft )?powerpoint presentation|microsoft (word|powerpoint|excel) - .*"
    r"|.*\.(docx?|pptx?|xlsx?|pdf|odt|rtf|txt|html?))$",
    re.IGNORECASE,
)

# Plain-text formats whose extracted text is about as long as the file's own characters, so a
# file holding more than twice the character limit is refused before partitioning it.
_PRECHECKED_LENGTH_TYPES = frozenset({"txt", "md", "rst", "org", "csv", "tsv", "json", "ndjson"})
# Formats where finding no text means there was nothing in the file; for the rest (PDF,
# presentations, word-processor files) it means the content is images or drawings.
_EMPTY_WHEN_TEXTLESS = TEXT_TYPES | {"xlsx", "xls", "msg"}

# unstructured detects each element's language with langdetect, which costs more than the
# partitioning itself on multilingual text; nothing downstream uses it.
_SKIP_LANGUAGE_DETECTION: dict[str, Any] = {"languages": [""]}

_DROPPED_CATEGORIES = frozenset({"Header", "Footer", "PageNumber", "PageBreak"})
_CATEGORY_KINDS: dict[str, ElementKind] = {
    "Title": ElementKind.heading,
    "NarrativeText": ElementKind.text,
    "UncategorizedText": ElementKind.text,
    "Text": ElementKind.text,
    "ListItem": ElementKind.list_item,
    "Table": ElementKind.table,
}


# ============================================================================================
# pure helpers: normalisation, tables, assembly
# ============================================================================================


@dataclass(frozen=True, slots=True)
class Piece:
    """An element before it has a place in the document text."""

    kind: ElementKind
    text: str
    page: int | None = None
    level: int = 0
    head_lines: int = 1  # tables only: see ``Element.head_lines``


@dataclass(slots=True)
class Extraction:
    """What a format extractor found. ``metadata["type"]`` overrides the detected type when the
    content turned out to be something else (a ``.json`` file that is not JSON)."""

    pieces: list[Piece]
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def normalize_text(text: str) -> str:
    """One space between words, one newline between lines, no blank lines or control chars.

    Elements never contain a blank line, so the blank lines in the joined document text always
    mark element boundaries.
    """
    text = _CONTROL_CHARS.sub("", _LINE_BREAKS.sub("\n", text))
    lines = (_HORIZONTAL_SPACE.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def table_text(text_as_html: str | None, fallback: str, caption: str | None = None) -> tuple[str, int]:
    """A table as text lines (see ``ingest.tables.render_table``), and how many lead lines
    (caption, merged column header) its pieces repeat when it is split."""
    table = html_table(text_as_html) if text_as_html else None
    if table is None or not table.rows:
        return normalize_text(fallback), 0
    if caption and not table.caption:
        table.caption = [caption]
    text, head_lines = render_table(table)
    rendered = normalize_text(text)
    return (rendered, head_lines) if rendered.count("\n") == text.count("\n") else (rendered, 0)


_DEFAULT_SHEET_NAME = re.compile(r"^(sheet|feuil|tabelle|hoja|foglio)\s*\d*$", re.IGNORECASE)


_FORMATTED_FIGURE = re.compile(
    r"(?<![\w.])(\$\s?\d|\(\s?\$?\d[\d,.]*\s?\)|\d{1,3}(,\d{3})+|\d+\.\d+|\d+(\.\d+)?\s?%)"
)
_SECTION_NUMBER = re.compile(r"^\s*\d+(\.\d+)+\.?\s")
_FIGURE_TOKEN = re.compile(r"^[($€£¥\-–—]*\d[\d,.]*[)%]*$")
# A signature line ("/s/ Ernst & Young LLP") closes a report; it heads nothing after it.
_SIGNATURE = re.compile(r"^\s*/s/", re.IGNORECASE)
# Words before a closing full stop that make a line a sentence, not a title ("Item 7." is a title).
_SENTENCE_MIN_WORDS = 5


def looks_like_heading(text: str) -> bool:
    """Whether a line classified as a title can really be one.

    Table rows and figures are not headings, though unstructured's title heuristics take
    short capitalised lines for them: a line that is mostly not letters ("2023 2022",
    "$ 81,797"), that holds a formatted figure ("($ in millions, except per share data)
    7,192", "Revenue 12.5%"), that holds two figures or more, or that is wholly in
    parentheses (a unit line such as "(In thousands)") stays text. Plain numbers in titles
    ("Note 12", "Chapter 3", "Fiscal 2023 Highlights") are fine.
    """
    visible = [c for c in text if not c.isspace()]
    if not visible:
        return False
    if sum(c.isalpha() for c in visible) < 0.5 * len(visible):
        return False
    text = _SECTION_NUMBER.sub("", text)  # "1.2 Overview", "3.1.4. Scope"
    if _FORMATTED_FIGURE.search(text):
        return False
    if sum(bool(_FIGURE_TOKEN.match(token)) for token in text.split()) >= 2:
        return False
    stripped = text.strip()
    return not (stripped.startswith("(") and stripped.endswith(")"))


def pieces_from_elements(elements: Iterable[Any]) -> list[Piece]:
    """Map unstructured elements onto our element kinds, dropping page furniture."""
    pieces: list[Piece] = []
    for element in elements:
        category = getattr(element, "category", "")
        if category in _DROPPED_CATEGORIES:
            continue
        metadata = element.metadata
        head_lines = 1
        if category == "Table":
            sheet = getattr(metadata, "page_name", None)  # a spreadsheet's sheet: its name is the caption
            caption = sheet if isinstance(sheet, str) and sheet.strip() and not _DEFAULT_SHEET_NAME.match(sheet.strip()) else None
            text, head_lines = table_text(getattr(metadata, "text_as_html", None), element.text or "", caption)
        else:
            text = normalize_text(element.text or "")
        if not text:
            continue
        kind = _CATEGORY_KINDS.get(category, ElementKind.other)
        if kind is ElementKind.heading and not looks_like_heading(text):
            kind = ElementKind.text
        level = 0
        if kind is ElementKind.heading:
            depth = getattr(metadata, "category_depth", None)
            level = depth + 1 if isinstance(depth, int) and depth >= 0 else 1
        pieces.append(Piece(kind, text, getattr(metadata, "page_number", None), level, head_lines))
    return pieces


def clean_title(title: object) -> str | None:
    """A metadata title worth showing, or None for blanks and tool-generated placeholders."""
    if not isinstance(title, str):
        return None
    title = " ".join(title.split())
    if not title or _JUNK_TITLE.match(title):
        return None
    return title


def promote_title(pieces: list[Piece], metadata_title: str | None) -> tuple[list[Piece], str | None]:
    """Make a leading page-one heading the document's title element.

    A metadata title wins; the heading is only promoted alongside it when the two agree.
    """
    if pieces:
        first = pieces[0]
        if first.kind is ElementKind.heading and first.page in (None, 1):
            if metadata_title is None or metadata_title.casefold() == first.text.casefold():
                promoted = Piece(ElementKind.title, first.text, first.page, 0)
                return [promoted, *pieces[1:]], metadata_title or first.text
    return pieces, metadata_title


def assemble(
    pieces: Sequence[Piece], *, mime_type: str, title: str | None, metadata: dict[str, Any], max_chars: int
) -> ParsedDocument:
    """Join pieces into the document text, recording where each one landed."""
    elements: list[Element] = []
    texts: list[str] = []
    position = 0
    for piece in pieces:
        if texts:
            position += len(ELEMENT_SEPARATOR)
        end = position + len(piece.text)
        if end > max_chars:
            raise ParseFailure(FailureReason.too_large, f"extracted text exceeds {max_chars} characters")
        elements.append(Element(piece.kind, position, end, piece.page, piece.level, piece.head_lines))
        texts.append(piece.text)
        position = end
    return ParsedDocument(
        text=ELEMENT_SEPARATOR.join(texts),
        elements=elements,
        mime_type=mime_type,
        title=title,
        metadata=metadata,
    )


def json_pieces(value: Any) -> list[Piece]:
    """One text element per top-level record, as ``path: value`` lines that search well."""
    records = value if isinstance(value, list) else [value]
    pieces = []
    for record in records:
        text = normalize_text("\n".join(_flatten_json(record, "")))
        if text:
            pieces.append(Piece(ElementKind.text, text))
    return pieces


def _flatten_json(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten_json(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        if all(not isinstance(item, (dict, list)) for item in value):
            scalars = [str(item) for item in value if item not in (None, "")]
            if scalars:
                yield f"{path}: {', '.join(scalars)}" if path else ", ".join(scalars)
        else:
            for index, item in enumerate(value):
                yield from _flatten_json(item, f"{path}[{index}]")
    elif value is not None and value != "":
        yield f"{path}: {value}" if path else str(value)


def html_title(markup: str) -> str | None:
    match = _HTML_TITLE.search(markup[:HEAD_BYTES])
    return clean_title(html.unescape(match.group(1))) if match else None


def strip_xml_declaration(text: str) -> str:
    """lxml refuses ``str`` input that still declares a byte encoding."""
    return _XML_DECLARATION.sub("", text, count=1)


# ============================================================================================
# I/O helpers
# ============================================================================================


def _only_whitespace(path: Path) -> bool:
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            if chunk.strip(_WHITESPACE_BYTES):
                return False
    return True


def _read_text(path: Path, type_key: str) -> tuple[str, str]:
    """Decode a text file, honouring an HTML/XML encoding declaration when UTF-8 fails."""
    data = path.read_bytes()
    text, encoding = decode_text(data)
    if type_key in ("html", "xml") and not encoding.startswith(("utf-8", "utf-16", "utf-32")):
        declared = _XML_ENCODING.search(data[:1024]) or _DECLARED_CHARSET.search(data[:HEAD_BYTES])
        if declared:
            name = declared.group(1).decode("ascii", "replace")
            try:
                return data.decode(name).lstrip("\ufeff"), name.lower()
            except (LookupError, UnicodeDecodeError):
                pass
    return text, encoding


def _zip_member_title(path: Path, is_metadata_member: Callable[[str], bool]) -> str | None:
    """The Dublin Core title inside an OOXML/ODF/EPUB package, when it declares one."""
    from lxml import etree

    try:
        with zipfile.ZipFile(path) as archive:
            for name in filter(is_metadata_member, archive.namelist()):
                parser = etree.XMLParser(resolve_entities=False, no_network=True)
                found = etree.fromstring(archive.read(name), parser).find(f".//{_DC_TITLE}")
                if found is not None and found.text:
                    return clean_title(found.text)
    except Exception:  # a missing or malformed title is not worth failing the file for
        return None
    return None


def _is_ooxml_core(name: str) -> bool:
    return name == "docProps/core.xml"


_PACKAGE_METADATA: dict[str, Callable[[str], bool]] = {
    "odt": lambda name: name == "meta.xml",
    "epub": lambda name: name.endswith(".opf"),
}


def _from_elements(elements: Sequence[Any], title: str | None = None) -> Extraction:
    return Extraction(pieces_from_elements(elements), title)


# ============================================================================================
# converters
# ============================================================================================


@lru_cache(maxsize=1)
def find_soffice() -> str | None:
    return shutil.which("soffice") or shutil.which("libreoffice")


@lru_cache(maxsize=1)
def find_pandoc() -> str | None:
    try:
        import pypandoc

        return pypandoc.get_pandoc_path()
    except (ImportError, OSError):
        return None


def _require_pandoc(type_key: str) -> None:
    if find_pandoc() is None:
        raise ParseFailure(FailureReason.unsupported_type, f"{type_key.upper()} needs pandoc, which is not installed")


def _pandoc_html(source: str | Path, source_format: str) -> str:
    """Convert to HTML with pandoc in sandbox mode, so include directives cannot read files."""
    import pypandoc

    _require_pandoc(source_format)
    try:
        if isinstance(source, Path):
            return pypandoc.convert_file(str(source), "html", format=source_format, sandbox=True)
        return pypandoc.convert_text(source, "html", format=source_format, sandbox=True)
    except RuntimeError as exc:
        raise ParseFailure(FailureReason.corrupt, f"pandoc could not read the {source_format} file: {_short(exc)}") from exc


def _soffice_convert(path: Path, type_key: str, target: str, workdir: Path) -> Path:
    """Convert a legacy Office file with LibreOffice, using a private profile.

    A profile of its own lets several workers convert at once; soffice otherwise hands the
    job to an already running instance or refuses to start.
    """
    soffice = find_soffice()
    if soffice is None:
        raise ParseFailure(
            FailureReason.unsupported_type,
            f"{type_key.upper()} needs LibreOffice (soffice), which is not installed",
        )
    source = workdir / f"source.{type_key}"
    shutil.copyfile(path, source)
    profile = (workdir / "profile").as_uri()
    command = [
        soffice, f"-env:UserInstallation={profile}", "--headless", "--norestore", "--nolockcheck",
        "--convert-to", target, "--outdir", str(workdir), str(source),
    ]
    try:
        completed = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, timeout=CONVERTER_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ParseFailure(FailureReason.timeout, f"LibreOffice took longer than {CONVERTER_TIMEOUT_S:.0f}s") from exc
    converted = workdir / f"source.{target}"
    if not converted.exists() or converted.stat().st_size == 0:
        message = (completed.stderr or completed.stdout).decode("utf-8", "replace").strip()
        raise ParseFailure(FailureReason.corrupt, f"LibreOffice could not convert the {type_key} file: {message[-300:]}")
    return converted


def _short(exc: BaseException, limit: int = 300) -> str:
    message = " ".join(str(exc).split())
    return message[:limit] + ("..." if len(message) > limit else "")


# ============================================================================================
# per-format extractors: (path, type_key, max_chars) -> Extraction
# ============================================================================================


def _extract_text_file(path: Path, type_key: str, max_chars: int) -> Extraction:
    text, encoding = _read_text(path, type_key)
    if not text.strip():
        raise ParseFailure(FailureReason.empty, "file contains only whitespace")
    if type_key in _PRECHECKED_LENGTH_TYPES and len(_HORIZONTAL_SPACE.sub(" ", text)) > 2 * max_chars:
        raise ParseFailure(FailureReason.too_large, f"text is far beyond {max_chars} characters")
    extraction = _TEXT_PARSERS[type_key](text)
    extraction.metadata.setdefault("encoding", encoding)
    return extraction


def _parse_txt(text: str) -> Extraction:
    return _from_elements(partition_plain_text(text))


def partition_plain_text(text: str) -> list[Any]:
    """unstructured's ``partition_text`` elements, without its NLP where it cannot matter.

    Paragraphs are found and classified as ``partition_text`` does (its paragraph grouper and
    pattern, its ``element_from_text`` rules), but a paragraph too long to be a title skips the
    spaCy checks: those only tell narrative text from other text, which both become
    ``ElementKind.text`` here. That was 90% of the time spent on plain-text files (SciFact
    abstracts), and the element kinds are the same (``tests/test_parsing_plain_text.py``).
    """
    from unstructured.cleaners.core import auto_paragraph_grouper
    from unstructured.nlp.patterns import PARAGRAPH_PATTERN, UNICODE_BULLETS_RE

    if not text.strip():
        return []
    elements = []
    for paragraph in re.split(PARAGRAPH_PATTERN, auto_paragraph_grouper(text).strip()):
        paragraph = paragraph.strip()
        if paragraph and not (len(paragraph) == 1 and UNICODE_BULLETS_RE.match(paragraph)):
            elements.append(classify_paragraph(paragraph))
    return elements


def classify_paragraph(text: str) -> Any:
    """``element_from_text(text)``, up to narrative-versus-other text, at a fraction of the cost.

    unstructured's rules run in order: bullet, e-mail address, US address, numbered list (all
    cheap patterns), then narrative text and title, which run spaCy. A title has at most
    ``UNSTRUCTURED_TITLE_MAX_WORD_LENGTH`` words (12), so past that the answer is narrative
    text or plain text, and the NLP is skipped.
    """
    from unstructured.documents.elements import NarrativeText
    from unstructured.partition.text import element_from_text
    from unstructured.partition.text_type import (
        is_bulleted_text,
        is_email_address,
        is_possible_numbered_list,
        is_us_city_state_zip,
    )

    title_max_words = int(os.environ.get("UNSTRUCTURED_TITLE_MAX_WORD_LENGTH", 12))
    if len(text.split(" ")) <= title_max_words or is_bulleted_text(text) or is_email_address(text) \
            or is_us_city_state_zip(text) or is_possible_numbered_list(text):
        element = element_from_text(text)
        if getattr(element, "category", "") == "Title" and not could_be_title(text):
            return NarrativeText(text=text)
        return element
    return NarrativeText(text=text)


def could_be_title(text: str) -> bool:
    """Whether a line guessed to be a title (from a PDF's or a text file's layout, not marked up
    by its author) can be one: a signature ("/s/ Ernst & Young LLP") and a sentence of five words
    or more ending in a full stop ("See accompanying notes to consolidated financial
    statements.") cannot. Taken for headings, they named every passage up to the next real one,
    a filing's statements included."""
    stripped = text.strip()
    if _SIGNATURE.match(stripped):
        return False
    return not (stripped.endswith(".") and not stripped.endswith("..") and len(stripped.split()) >= _SENTENCE_MIN_WORDS)


def _parse_md(text: str) -> Extraction:
    from unstructured.partition.md import partition_md

    return _from_elements(partition_md(text=text, **_SKIP_LANGUAGE_DETECTION))


def _parse_html(text: str) -> Extraction:
    from unstructured.partition.html import partition_html

    markup = strip_xml_declaration(text)
    return _from_elements(partition_html(text=markup, **_SKIP_LANGUAGE_DETECTION), html_title(markup))


def _parse_xml(text: str) -> Extraction:
    from unstructured.partition.xml import partition_xml

    return _from_elements(partition_xml(text=strip_xml_declaration(text), **_SKIP_LANGUAGE_DETECTION))


def _parse_via_pandoc(source_format: str) -> Callable[[str], Extraction]:
    def parse(text: str) -> Extraction:
        from unstructured.partition.html import partition_html

        markup = _pandoc_html(text, source_format)
        if not markup.strip():
            return Extraction([])
        return _from_elements(partition_html(text=markup, **_SKIP_LANGUAGE_DETECTION))

    return parse


def _parse_delimited(delimited_type: str) -> Callable[[str], Extraction]:
    """CSV/TSV become one table, read with the csv module.

    unstructured's CSV partitioner goes through pandas, which rejects files whose rows have
    differing lengths; real exports often do.
    """
    def parse(text: str) -> Extraction:
        rendered = delimited_table_text(text, tab_separated=delimited_type == "tsv")
        return Extraction([Piece(ElementKind.table, rendered)] if rendered else [])

    return parse


def delimited_table_text(text: str, *, tab_separated: bool) -> str:
    """Rows of delimited text as table lines; a CSV's delimiter (``,`` ``;`` ``|``...) is sniffed."""
    import csv

    csv.field_size_limit(1 << 30)
    dialect: Any = csv.excel_tab if tab_separated else csv.excel
    if not tab_separated:
        try:
            dialect = csv.Sniffer().sniff(text[:HEAD_BYTES], delimiters=",;\t|")
        except csv.Error:
            pass
    lines = []
    for row in csv.reader(io.StringIO(text), dialect):
        cells = [" ".join(cell.split()) for cell in row]
        while cells and not cells[-1]:
            cells.pop()
        if cells:
            lines.append(" | ".join(cells))
    return "\n".join(lines)


def _parse_json(text: str) -> Extraction:
    try:
        value = json.loads(text)
    except ValueError:
        return _parse_ndjson(text)
    return Extraction(json_pieces(value))


def _parse_ndjson(text: str) -> Extraction:
    records = []
    try:
        for line in text.splitlines():
            if line.strip():
                records.append(json.loads(line))
    except ValueError:
        extraction = _parse_txt(text)  # not JSON after all: still worth indexing as text
        extraction.metadata["type"] = "txt"
        return extraction
    return Extraction(json_pieces(records))


def _extract_eml(path: Path, type_key: str, max_chars: int) -> Extraction:
    from unstructured.partition.email import partition_email

    data = path.read_bytes()
    encoding, skip = guess_encoding(data)
    if encoding.startswith(("utf-16", "utf-32")):
        # The email parser reads bytes as ASCII-compatible; UTF-16/32 files must be re-encoded.
        data = data[skip:].decode(encoding, errors="replace").encode("utf-8")
    if is_encrypted_email(data):
        raise ParseFailure(FailureReason.encrypted, "email body is encrypted (PGP/MIME or S/MIME)")
    elements = partition_email(file=io.BytesIO(data), process_attachments=False, **_SKIP_LANGUAGE_DETECTION)
    subject = next((e.metadata.subject for e in elements if getattr(e.metadata, "subject", None)), None)
    if subject is None:
        subject = _email_subject(data)
    return _from_elements(elements, clean_title(subject))


def is_encrypted_email(data: bytes) -> bool:
    import email
    from email.policy import compat32

    try:
        message = email.message_from_bytes(data.split(b"\n\n", 1)[0] + b"\n\n", policy=compat32)
    except Exception:  # unreadable headers: let the partitioner have its say
        return False
    content_type = message.get_content_type()
    if content_type == "multipart/encrypted":
        return True
    if content_type in ("application/pkcs7-mime", "application/x-pkcs7-mime"):
        return (message.get_param("smime-type") or "enveloped-data").lower() != "signed-data"
    return False


def _email_subject(data: bytes) -> str | None:
    import email
    from email.policy import default

    try:
        return str(email.message_from_bytes(data, policy=default).get("subject") or "") or None
    except Exception:  # headers too broken to read: the document just has no title
        return None


_TEXT_PARSERS: dict[str, Callable[[str], Extraction]] = {
    "txt": _parse_txt,
    "md": _parse_md,
    "html": _parse_html,
    "xml": _parse_xml,
    "rst": _parse_via_pandoc("rst"),
    "org": _parse_via_pandoc("org"),
    "csv": _parse_delimited("csv"),
    "tsv": _parse_delimited("tsv"),
    "json": _parse_json,
    "ndjson": _parse_ndjson,
}


def _extract_docx(path: Path, type_key: str, max_chars: int) -> Extraction:
    from unstructured.partition.docx import partition_docx

    return _from_elements(partition_docx(filename=str(path), **_SKIP_LANGUAGE_DETECTION), _zip_member_title(path, _is_ooxml_core))


def _extract_pptx(path: Path, type_key: str, max_chars: int) -> Extraction:
    from unstructured.partition.pptx import partition_pptx

    from ingest.ocr_documents import ocr_picture_slides

    extraction = _from_elements(partition_pptx(filename=str(path), **_SKIP_LANGUAGE_DETECTION), _zip_member_title(path, _is_ooxml_core))
    return ocr_picture_slides(path, extraction)


def _extract_spreadsheet(path: Path, type_key: str, max_chars: int) -> Extraction:
    if type_key == "xls":
        _refuse_encrypted_ole(path)
    from unstructured.partition.xlsx import partition_xlsx

    title = _zip_member_title(path, _is_ooxml_core) if type_key == "xlsx" else None
    return _from_elements(partition_xlsx(filename=str(path), **_SKIP_LANGUAGE_DETECTION), title)


def _extract_legacy_office(path: Path, type_key: str, max_chars: int) -> Extraction:
    _refuse_encrypted_ole(path)
    target = {"doc": "docx", "ppt": "pptx"}[type_key]
    with tempfile.TemporaryDirectory(prefix="groundwork-convert-") as workdir:
        converted = _soffice_convert(path, type_key, target, Path(workdir))
        extract = _extract_docx if target == "docx" else _extract_pptx
        extraction = extract(converted, target, max_chars)
    extraction.metadata["converted_with"] = "libreoffice"
    return extraction


def _refuse_encrypted_ole(path: Path) -> None:
    """Legacy Office files keep their OLE layout when encrypted; ask msoffcrypto."""
    try:
        import msoffcrypto

        with path.open("rb") as stream:
            encrypted = msoffcrypto.OfficeFile(stream).is_encrypted()
    except Exception:  # msoffcrypto does not know every variant; let the parser decide
        return
    if encrypted:
        raise ParseFailure(FailureReason.encrypted, "password-protected Office document")


def _extract_msg(path: Path, type_key: str, max_chars: int) -> Extraction:
    from unstructured.partition.msg import partition_msg

    elements = partition_msg(filename=str(path), process_attachments=False, **_SKIP_LANGUAGE_DETECTION)
    subject = next((e.metadata.subject for e in elements if getattr(e.metadata, "subject", None)), None)
    extraction = _from_elements(elements, clean_title(subject))
    if not extraction.pieces and _is_encrypted_msg(path):
        raise ParseFailure(FailureReason.encrypted, "Outlook message body is encrypted (S/MIME or PGP)")
    return extraction


_ENCRYPTED_ATTACHMENT = re.compile(r"(\.pgp-encrypted|\.p7m|\.asc)$", re.IGNORECASE)


def _is_encrypted_msg(path: Path) -> bool:
    from oxmsg import Message

    try:
        message = Message.load(str(path))
        if (message.message_class or "").upper().startswith("IPM.NOTE.SMIME") and "SIGNED" not in (message.message_class or "").upper():
            return True
        return any(_ENCRYPTED_ATTACHMENT.search(attachment.file_name or "") for attachment in message.attachments)
    except Exception:  # cannot tell: report the message as textless instead
        return False


def _extract_via_pandoc_file(path: Path, type_key: str, max_chars: int) -> Extraction:
    from unstructured.partition.html import partition_html

    markup = _pandoc_html(path, type_key)
    is_metadata_member = _PACKAGE_METADATA.get(type_key)
    title = _zip_member_title(path, is_metadata_member) if is_metadata_member else None
    if not markup.strip():
        return Extraction([], title)
    return _from_elements(partition_html(text=markup, **_SKIP_LANGUAGE_DETECTION), title)


# --- PDF -------------------------------------------------------------------------------------

_RUNNING_HEAD_BAND = 0.07
_PAGE_NUMBER = re.compile(r"^(page\s*)?[-–—]?\s*\d{1,5}\s*[-–—]?(\s*(of|/)\s*\d{1,5})?$", re.IGNORECASE)
_LINE_BULLET = re.compile(r"^\s*[•◦▪▫‣⁃∙●○■□➢➤►✓✔-]\s")
_HYPHENATED_BREAK = re.compile(r"(\w)-\n(?=[a-z])")


@dataclass(frozen=True, slots=True)
class PdfBox:
    page: int
    text: str
    top: float      # 0 = top edge of the page, 1 = bottom edge
    bottom: float
    table_head_lines: int | None = None  # a table (see ingest.pdf_layout): its caption + header lines


def pdf_box_paragraphs(raw: str) -> list[str]:
    """Lines of a pdfminer text box rejoined into paragraphs; bulleted lines start new ones."""
    raw = _HYPHENATED_BREAK.sub(r"\1", raw.replace("\r", ""))
    paragraphs: list[list[str]] = []
    for line in raw.split("\n"):
        if not line.strip():
            continue
        if not paragraphs or _LINE_BULLET.match(line):
            paragraphs.append([])
        paragraphs[-1].append(line.strip())
    return [text for text in (normalize_text(" ".join(lines)) for lines in paragraphs) if text]


def drop_running_heads(boxes: list[PdfBox]) -> list[PdfBox]:
    """Remove page numbers and headers/footers that repeat across pages.

    Position alone is not enough: a title near the top of page one is not a running head, so a
    box in the top or bottom band only goes when it is a page number or recurs on other pages.
    """
    def in_band(box: PdfBox) -> bool:
        return box.bottom <= _RUNNING_HEAD_BAND or box.top >= 1 - _RUNNING_HEAD_BAND

    def signature(box: PdfBox) -> str:
        return re.sub(r"\d+", "#", box.text.casefold())

    pages_by_signature: dict[str, set[int]] = {}
    for box in boxes:
        if in_band(box):
            pages_by_signature.setdefault(signature(box), set()).add(box.page)
    return [
        box for box in boxes
        if box.table_head_lines is not None
        or not in_band(box)
        or not (_PAGE_NUMBER.match(box.text) or len(pages_by_signature[signature(box)]) > 1)
    ]


def page_boxes(boxes: Sequence[Any], height: float, page: int, graphics: Sequence[Any] = ()) -> list[PdfBox]:
    """One page's pdfminer text boxes as paragraphs and tables, in pdfminer's reading order.

    Lines that ``ingest.pdf_layout`` finds to be part of a table leave their boxes; the table
    takes the place of the first box it drew from. Every other line stays where it was, so no
    text is lost or repeated. ``graphics`` are the page's lines and rectangles (ruled tables).
    """
    from pdfminer.layout import LTChar, LTTextLineHorizontal

    lines: list[Line] = []
    owner: list[tuple[int, int]] = []  # (box, line within box) of each Line
    for b, box in enumerate(boxes):
        for n, item in enumerate(box):
            if not isinstance(item, LTTextLineHorizontal):
                continue
            glyphs: list[Glyph] = []
            sizes: list[float] = []
            at = item.x0
            for char in item:
                text = char.get_text()
                if isinstance(char, LTChar):
                    glyphs.append(Glyph(text, char.x0, char.x1))
                    sizes.append(char.size)
                    at = char.x1
                else:  # LTAnno: a space or newline pdfminer inferred, with no position of its own
                    glyphs.append(Glyph(text, at, at))
            if sizes:
                lines.append(Line(b, height - item.y1, height - item.y0, sorted(sizes)[len(sizes) // 2], tuple(glyphs)))
                owner.append((b, n))
    rules = [Rule(g.x0, height - g.y1, g.x1, height - g.y0, bool(getattr(g, "stroke", True))) for g in graphics]
    tables = find_tables(lines, height, rules)
    taken: dict[tuple[int, int], int] = {}  # (box, line) -> table index
    for t, table in enumerate(tables):
        for index in table.lines:
            taken[owner[index]] = t
    placed: set[int] = set()
    out: list[PdfBox] = []
    for b, box in enumerate(boxes):
        kept: list[str] = []
        for n, item in enumerate(box):
            t = taken.get((b, n))
            if t is None:
                kept.append(item.get_text())
            elif t not in placed:
                placed.add(t)
                if kept:  # lines of this box above the table come first
                    out.extend(PdfBox(page, text, 1 - box.y1 / height, 1 - box.y0 / height) for text in pdf_box_paragraphs("".join(kept)))
                    kept = []
                text, head_lines = render_table(tables[t].table)
                out.append(PdfBox(page, text, tables[t].top / height, tables[t].bottom / height, head_lines))
        if kept:
            out.extend(PdfBox(page, text, 1 - box.y1 / height, 1 - box.y0 / height) for text in pdf_box_paragraphs("".join(kept)))
    return out


@dataclass(slots=True)
class PdfText:
    boxes: list[PdfBox]
    pages: int
    failed_pages: list[int]
    error: str | None = None


def _pdf_text(path: Path, max_chars: int) -> PdfText:
    """Text boxes of every page; a page pdfminer chokes on is skipped, not fatal."""
    from pdfminer.converter import PDFPageAggregator
    from pdfminer.layout import LAParams, LTFigure, LTLine, LTRect, LTTextBox
    from pdfminer.pdfdocument import PDFDocument
    from pdfminer.pdfinterp import PDFPageInterpreter, PDFResourceManager
    from pdfminer.pdfpage import PDFPage
    from pdfminer.pdfparser import PDFParser

    def text_boxes(container: Any) -> Iterator[Any]:
        for item in container:
            if isinstance(item, LTTextBox):
                yield item
            elif isinstance(item, LTFigure):
                yield from text_boxes(item)

    def graphics(container: Any) -> Iterator[Any]:
        for item in container:
            if isinstance(item, (LTLine, LTRect)):
                yield item
            elif isinstance(item, LTFigure):
                yield from graphics(item)

    class TextOnlyInterpreter(PDFPageInterpreter):
        """Ignores colour spaces: irrelevant to text, and a malformed one fails a whole page."""

        def init_resources(self, resources: dict[object, Any]) -> None:
            if resources and "ColorSpace" in resources:
                resources = {key: value for key, value in resources.items() if key != "ColorSpace"}
            super().init_resources(resources)

    result = PdfText([], 0, [])
    characters = 0
    with path.open("rb") as stream:
        document = PDFDocument(PDFParser(stream))
        resources = PDFResourceManager(caching=True)
        device = PDFPageAggregator(resources, laparams=LAParams(all_texts=True))
        interpreter = TextOnlyInterpreter(resources, device)
        pages = PDFPage.create_pages(document)
        while True:
            try:
                page = next(pages)
            except StopIteration:
                break
            except (MemoryError, ParseFailure):
                raise
            except Exception as exc:  # broken page tree: keep the pages read so far
                result.error = f"{type(exc).__name__}: {_short(exc)}"
                break
            result.pages += 1
            try:
                interpreter.process_page(page)
                layout = device.get_result()
            except MemoryError:
                raise
            except Exception as exc:  # pdfminer raises anything from KeyError to TypeError
                result.failed_pages.append(result.pages)
                result.error = f"{type(exc).__name__}: {_short(exc)}"
                continue
            for box in page_boxes(list(text_boxes(layout)), layout.height or 1.0, result.pages, list(graphics(layout))):
                result.boxes.append(box)
                characters += len(box.text) + len(ELEMENT_SEPARATOR)
            if characters > max_chars:
                raise ParseFailure(FailureReason.too_large, f"extracted text exceeds {max_chars} characters")
    return result


def _pdf_info(path: Path) -> tuple[int | None, str | None]:
    """Page count and title via pikepdf (qpdf), which also tells encryption apart cleanly."""
    import pikepdf

    try:
        with pikepdf.open(path) as pdf:
            title = None
            if pdf.docinfo is not None and "/Title" in pdf.docinfo:
                title = clean_title(str(pdf.docinfo["/Title"]))
            return len(pdf.pages), title
    except pikepdf.PasswordError as exc:
        raise ParseFailure(FailureReason.encrypted, "PDF requires a password") from exc
    except Exception:  # qpdf could not make sense of it; pdfminer gets its own chance
        return None, None


def _repaired_copy(path: Path, workdir: Path) -> Path | None:
    """Let qpdf rewrite a damaged PDF (it rebuilds cross-reference tables pdfminer gives up on)."""
    import pikepdf

    try:
        with pikepdf.open(path) as pdf:
            repaired = workdir / "repaired.pdf"
            pdf.save(repaired)
            return repaired
    except Exception:  # beyond repair; the original error stands
        return None


def _read_pdf_text(path: Path, max_chars: int) -> PdfText:
    from pdfminer.pdfdocument import PDFEncryptionError

    try:
        first = _pdf_text(path, max_chars)
        if first.boxes or not first.error:
            return first
        failure: Exception | None = None
    except (ParseFailure, MemoryError):
        raise
    except PDFEncryptionError as exc:
        raise ParseFailure(FailureReason.encrypted, f"PDF is encrypted ({type(exc).__name__})") from exc
    except Exception as exc:
        first, failure = None, exc

    with tempfile.TemporaryDirectory(prefix="groundwork-pdf-") as workdir:
        repaired = _repaired_copy(path, Path(workdir))
        if repaired is not None:
            try:
                second = _pdf_text(repaired, max_chars)
                if second.boxes:
                    return second
            except (ParseFailure, MemoryError):
                raise
            except Exception:  # the repair did not help; report the original problem
                pass
    if first is not None:
        return first
    assert failure is not None
    raise ParseFailure(FailureReason.corrupt, f"PDF structure unreadable: {type(failure).__name__}: {_short(failure)}")


def _extract_pdf(path: Path, type_key: str, max_chars: int) -> Extraction:
    from unstructured.documents.elements import ElementMetadata

    from ingest.ocr_documents import ocr_textless_pdf_pages

    page_count, title = _pdf_info(path)
    pdf = _read_pdf_text(path, max_chars)
    pages = page_count or pdf.pages
    if not pages:
        raise ParseFailure(FailureReason.corrupt, f"PDF has no readable pages{': ' + pdf.error if pdf.error else ''}")
    ocr_report, ocr_note = ocr_textless_pdf_pages(path, pdf, pages)
    pieces: list[Piece] = []
    for box in drop_running_heads(pdf.boxes):
        if box.table_head_lines is not None:
            pieces.append(Piece(ElementKind.table, box.text, box.page, head_lines=box.table_head_lines))
            continue
        element = classify_paragraph(box.text)
        element.metadata = ElementMetadata(page_number=box.page)
        pieces.extend(pieces_from_elements([element]))
    if not pieces:
        if pdf.error:
            raise ParseFailure(FailureReason.corrupt, f"no page of the PDF could be read: {pdf.error}")
        reason = FailureReason.timeout if ocr_report is not None and ocr_report.out_of_time else FailureReason.no_extractable_text
        raise ParseFailure(reason, f"PDF has {pages} page(s) but no text layer (scanned?){ocr_note}")
    metadata: dict[str, Any] = {"pages": pages}
    if ocr_report is not None and ocr_report.noteworthy:
        metadata["ocr"] = ocr_report.metadata()
    if pdf.failed_pages or pdf.error:
        metadata["unreadable_pages"] = pdf.failed_pages
        metadata["pdf_error"] = pdf.error
    return Extraction(pieces, title, metadata)


# --- OCR hooks: the work is done in ingest/ocr_documents.py -------------------------------


def _extract_image(path: Path, type_key: str, max_chars: int) -> Extraction:
    from ingest.ocr_documents import extract_image

    return extract_image(path, type_key)


_BINARY_EXTRACTORS: dict[str, Callable[[Path, str, int], Extraction]] = {
    "pdf": _extract_pdf,
    "docx": _extract_docx,
    "pptx": _extract_pptx,
    "xlsx": _extract_spreadsheet,
    "xls": _extract_spreadsheet,
    "doc": _extract_legacy_office,
    "ppt": _extract_legacy_office,
    "msg": _extract_msg,
    "eml": _extract_eml,
    "odt": _extract_via_pandoc_file,
    "epub": _extract_via_pandoc_file,
    "rtf": _extract_via_pandoc_file,
    **{image_type: _extract_image for image_type in IMAGE_TYPES},
}


# ============================================================================================


def parse_file(path: Path, *, max_bytes: int, max_chars: int, ocr: OcrOptions | None = None) -> ParsedDocument:
    """Parse one file, or raise ``ParseFailure`` saying why it cannot be ingested.

    ``ocr`` governs reading images, textless PDF pages and picture-only slides (default:
    ``OcrOptions()``, the settings' defaults).

    ``MemoryError`` and ``OfflineModelMissing`` propagate: the first is for the worker pool to
    report (and recycle its process), the second is a deployment error, not a property of the file.
    """
    path = Path(path)
    try:
        if not path.is_file():
            raise ParseFailure(FailureReason.unsupported_type, "not a regular file")
        size = path.stat().st_size
        if size > max_bytes:
            raise ParseFailure(FailureReason.too_large, f"{size} bytes exceeds the {max_bytes}-byte limit")
        if size == 0:
            raise ParseFailure(FailureReason.empty, "file is empty")
        with path.open("rb") as stream:
            head = stream.read(HEAD_BYTES)
        if _only_whitespace(path):
            raise ParseFailure(FailureReason.empty, "file contains only whitespace")
    except OSError as exc:
        raise ParseFailure(FailureReason.corrupt, f"cannot read file: {_short(exc)}") from exc

    type_key = detect_type(path, head)
    ensure_offline_nlp()
    extractor = _BINARY_EXTRACTORS.get(type_key, _extract_text_file)
    try:
        with using(ocr):
            extraction = extractor(path, type_key, max_chars)
    except (ParseFailure, MemoryError, OfflineModelMissing):
        raise
    except RecursionError as exc:
        raise ParseFailure(FailureReason.corrupt, "structure nested too deeply to parse") from exc
    except Exception as exc:
        raise ParseFailure(FailureReason.corrupt, f"{type(exc).__name__}: {_short(exc)}") from exc

    final_type = extraction.metadata.pop("type", type_key)
    pieces, title = promote_title(extraction.pieces, extraction.title)
    if not pieces:
        if final_type in _EMPTY_WHEN_TEXTLESS:
            raise ParseFailure(FailureReason.empty, f"no text found in the {final_type} file")
        raise ParseFailure(FailureReason.no_extractable_text, f"the {final_type} file contains no extractable text")
    metadata = {"type": final_type, "bytes": size, **extraction.metadata}
    return assemble(pieces, mime_type=mime_for(final_type), title=title, metadata=metadata, max_chars=max_chars)
