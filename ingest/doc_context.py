"""Say which document a chunk comes from: a title and one short context line per document (pure).

A passage such as "Total net sales ... 26,974" is useless as evidence without knowing whose
figures they are, and nothing in the passage says so: the company, the form and the period are
on the cover page, in the file's metadata or in its name. ``derive_context`` collects them from,
in order of trust:

- the cover page: a filing's registrant name ("... (Exact name of registrant as specified in its
  charter)"), its form ("FORM 10-Q") and period ("For the quarterly period ended ..."), a press
  release's exchange ticker ("(NYSE: MGM)"), labelled dates and versions ("Effective date:",
  "Version 2.1") and a date in the first lines of any document;
- the metadata title, unless it is a placeholder (an accession number, a file name);
- the document's first heading;
- the file name, last, when it adds words the rest lacks ("2023 Q2 NVDA", "AMCOR_2023Q2_10Q").

The context line starts with what names the document (registrant, else title) and adds each
further part only when it brings words not already there, so a document whose only context is
its title gets an empty line and is indexed exactly as before.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from ingest.documents import ElementKind, ParsedDocument

SEPARATOR = " · "
COVER_PAGES = 2
"""Pages read for cover information (registrant, form, period): a filing's cover and the page after."""
COVER_CHARS = 12_000
"""Characters read when the document has no pages, and the cap when it has."""
FIRST_LINES = 6
"""Short leading elements searched for an unlabelled date (a memo's or slide deck's date line)."""
MAX_TITLE_CHARS = 300
HEADER_CHARS = 2_000
"""Periods, dates and versions are read from this much of the cover, and from its short lines."""
SHORT_LINE_CHARS = 200
FORM_CHARS = 1_500
"""A form name counts only this near the top: a filing's cover puts it under the regulator's name."""

_MONTHS = (
    "January|February|March|April|May|June|July|August|September|October|November|December"
    "|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec"
)
# "July 30, 2023", "30 July 2023", "2023-07-30", "07/30/2023": the forms people write dates in.
_DATE = (
    rf"(?:(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?\s*,?\s*(?:19|20)\d\d"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:{_MONTHS})\.?,?\s+(?:19|20)\d\d"
    rf"|(?:19|20)\d\d-[01]?\d-[0-3]?\d"
    rf"|[01]?\d/[0-3]?\d/(?:19|20)\d\d"
    rf"|(?:{_MONTHS})\.?\s+(?:19|20)\d\d)"
)
_DATE_RE = re.compile(_DATE, re.IGNORECASE)
_YEAR_RE = re.compile(r"(?:19|20)\d\d")

# SEC and similar regulator forms; "FORM 10-K" on a cover, also written "Form10-K".
_FORM_RE = re.compile(
    r"(?<![^\W\d_])FORM\s*((?:10-K(?:405|T)?|10-Q(?:T)?|8-K|6-K|20-F|40-F|11-K|S-1|S-3|S-4|F-1|N-CSR|DEF\s*14A)(?:/A)?)(?![\w-])",
    re.IGNORECASE,
)
_PERIOD_RE = re.compile(
    rf"(?<![^\W\d_])for\s*the\s*(fiscal\s*year|year|quarterly\s*period|quarter|period|six\s*months|nine\s*months|three\s*months)\s*ended\s*[:,]?\s*({_DATE})",
    re.IGNORECASE,
)
_REPORT_DATE_RE = re.compile(
    rf"(?<![^\W\d_])date\s*of\s*report\s*(?:\(\s*date\s*of\s*earliest\s*event\s*reported\s*\))?\s*:?\s*({_DATE})",
    re.IGNORECASE,
)
_REGISTRANT_RE = re.compile(r"\(\s*exact\s*name\s*of\s*(?:the\s*)?registrant", re.IGNORECASE)
_FILE_NUMBER_RE = re.compile(r"commission\s*file\s*(?:no\.?|number)\s*:?\s*[\d-]+\.?", re.IGNORECASE)
_TICKER_RE = re.compile(
    r"\(\s*(?:NYSE|NASDAQ|Nasdaq|NYSE\s+American|AMEX|LSE|ASX|TSX|Euronext)(?:\s*:\s*|\s+)([A-Z][A-Z.]{0,5})\s*\)"
)
_SYMBOL_LABEL_RE = re.compile(r"trading\s*symbols?(?:\s*\(s\))?", re.IGNORECASE)
# A symbol: 2-5 capitals standing alone, or glued before a capitalised word ("BBYNew York").
_SYMBOL_RE = re.compile(r"(?<![A-Z])([A-Z]{2,5})(?=[A-Z][a-z]|[^A-Za-z]|$)")
_NOT_SYMBOLS = frozenset("TO OF THE AND OR ACT NONE NYSE LLC INC CO LP US USD PAR NA NAME OTC AMEX".split())
_LABELLED_DATE_RE = re.compile(
    rf"\b(effective(?:\s+date)?|last\s+(?:updated|revised|reviewed)|updated|revised|issued|published|approved"
    rf"|as\s+of|dated?)\s*(?:on|:|-)?\s*({_DATE})",
    re.IGNORECASE,
)
_VERSION_RE = re.compile(r"\b(?:version|revision|rev\.)\s*:?\s*(v?\d+(?:\.\d+){0,3}[a-z]?)\b", re.IGNORECASE)
_SEPARATOR_RUN = re.compile(r"_{3,}|-{3,}|={3,}|\*{3,}|\.{4,}")

# Metadata titles that name nothing: SEC accession numbers, bare numbers and codes, file names,
# tool defaults.
_PLACEHOLDER_TITLE = re.compile(
    r"^(?:[\W\d_]+|untitled\b.*|document\d*|title|slide \d+|(?:microsoft )?(?:word|powerpoint|excel)\b.*"
    r"|.*\.(?:docx?|pptx?|xlsx?|pdf|odt|rtf|txt|html?|xml|csv|indd|dotx?|potx?)|[a-z]{2,5}-\d{8}(?:x\d+)?(?:_\w+)?)$",
    re.IGNORECASE,
)
# File names that say nothing about the content: scanner and download defaults, hashes, numbers.
_PLACEHOLDER_NAME = re.compile(
    r"^(?:[\W\d_]+|[0-9a-f]{16,}|[0-9a-f-]{32,}|(?:scan|img|image|dsc|doc|document|download|file|untitled|copy|new)[\W_]*\d*)$",
    re.IGNORECASE,
)
# First lines that head many documents without naming any.
_LETTERHEAD = re.compile(
    r"(?i)(?:table of contents|contents\b|index\b|for immediate release|press release\b|exhibit\b|page\b|united states\b"
    r"|securities and exchange commission|confidential\b|draft\b)"
)
_WORD_RE = re.compile(r"[^\W_]+")
_LETTER_DIGIT = re.compile(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])")
_LOWER_UPPER = re.compile(r"(?<=[a-z])(?=[A-Z])")
_COMPANY_WORDS = re.compile(r"\b(?:inc|corp|corporation|company|co|plc|ltd|llc|sa|ag|nv|group|holdings|incorporated)\b\.?", re.IGNORECASE)


@dataclass(frozen=True)
class DocumentContext:
    """What a document is: ``title`` for display, ``context`` for every chunk's prefix."""

    title: str | None
    context: str


def derive_context(
    doc: ParsedDocument, file_name: str, metadata: Mapping[str, Any] | None = None, *, max_chars: int = 160
) -> DocumentContext:
    """The document's title and context line (at most ``max_chars``; empty when the title says it all).

    Never raises on odd input: a document whose cover yields nothing falls back to its
    metadata title, its first heading, then its file name.
    """
    max_chars = max(0, int(max_chars))
    metadata = metadata or {}
    cover = _cover_text(doc)
    lines = [line for line in cover.split("\n") if line]

    registrant = _registrant(lines)
    issuer, release_date = _issuer(cover)
    meta_title = _clean(doc.title) if doc.title else None
    if meta_title and not _names_something(meta_title):
        meta_title = None
    heading = _first_heading(doc)
    name = _file_label(file_name)
    # Labelled facts count near the top or on short lines (a cover's or a memo's header), not
    # in the middle of prose, where "revised in March 2010" is about something else.
    header = "\n".join([cover[:HEADER_CHARS], *(line for line in lines if len(line) <= SHORT_LINE_CHARS)])
    form = _form(cover)
    period = _period(header)
    dated = None if period else (_dated(header, lines) or release_date)
    version = _version(header)
    ticker = _ticker(cover)

    # A filing's registrant names it better than its first heading (the regulator's letterhead)
    # or its metadata title (often an accession number or a tool's label).
    registrant_title = SEPARATOR.join(p for p in (registrant, f"Form {form}" if form else None) if p) if registrant else None
    title = _clip(registrant_title or meta_title or heading or name or _clean(doc.title) or _clean(file_name), MAX_TITLE_CHARS)

    named_by = registrant or issuer
    parts = [named_by or title, f"Form {form}" if form else None, period, dated, version, ticker,
             title if named_by else None, name]
    kept = _join_new_words([p for p in parts if p], max_chars)
    # A line that would only repeat the title (or a cut of it) adds nothing: leave it empty, so
    # such a document is indexed exactly as before contexts existed.
    context = SEPARATOR.join(kept) if len(kept) > 1 else ""
    return DocumentContext(title=title or None, context=context)


def document_line(title: str | None, context: str | None) -> str:
    """The line that names a document in a chunk's prefix: its context line, else its title."""
    return (context or title or "").strip()


# --- cover reading ----------------------------------------------------------------------------
def _cover_text(doc: ParsedDocument) -> str:
    """The first pages' elements, whitespace collapsed, one element a line."""
    pieces: list[str] = []
    total = 0
    paged = any(e.page is not None for e in doc.elements)
    for element in sorted(doc.elements, key=lambda e: (e.start, e.end)):
        if paged and element.page is not None and element.page > COVER_PAGES:
            break
        piece = " ".join(doc.text[max(0, element.start) : max(0, element.end)].split())
        if not piece:
            continue
        pieces.append(piece)
        total += len(piece) + 1
        if total >= COVER_CHARS:
            break
    if not pieces and doc.text:
        pieces = [" ".join(line.split()) for line in doc.text[:COVER_CHARS].splitlines()]
    return "\n".join(p for p in pieces if p)[:COVER_CHARS]


def _registrant(lines: list[str]) -> str | None:
    """The name a filing's cover gives right before "(Exact name of registrant ...)", or right
    after "Commission file number ..." when the cover has no such label."""
    for i, line in enumerate(lines):
        match = _REGISTRANT_RE.search(line)
        if match is None:
            continue
        before = line[: match.start()]
        candidate = _last_segment(before)
        if not candidate and i > 0:
            candidate = _last_segment(lines[i - 1])
        if candidate:
            return candidate
    for i, line in enumerate(lines):
        match = _FILE_NUMBER_RE.search(line)
        if match is None:
            continue
        after = _SEPARATOR_RUN.split(line[match.end() :])
        candidate = _name_like(after[0] if after else "")
        if not candidate and i + 1 < len(lines):
            candidate = _name_like(_SEPARATOR_RUN.split(lines[i + 1])[0])
        if candidate:
            return candidate
    return None


def _issuer(cover: str) -> tuple[str | None, str | None]:
    """A press release's dateline: "City (July 20, 2023) – Johnson & Johnson (NYSE: JNJ) today
    announced ..." gives the issuer's name and the release date."""
    match = _TICKER_RE.search(cover)
    if match is None:
        return None, None
    start = cover.rfind("\n", 0, match.start()) + 1
    before = cover[max(start, match.start() - 300) : match.start()]
    date = _DATE_RE.search(before)
    name = re.split(r"\s[–—-]{1,2}\s|--|[–—]|\)\s|\bRELEASE\b", before)[-1]
    name = _name_like(name) if len(name.split()) <= 8 else None
    return name, _tidy_date(date.group(0)) if date else None


def _last_segment(text: str) -> str | None:
    """The last name-like stretch of ``text``: after separator runs, a file number, a date."""
    text = _SEPARATOR_RUN.split(text)[-1]
    cut = max((m.end() for m in _FILE_NUMBER_RE.finditer(text)), default=0)
    cut = max([cut, *(m.end() for m in _DATE_RE.finditer(text))])
    text = text[cut:]
    text = re.sub(r"^[\s\W]*\(\s*[^)]*\)", "", text)  # a trailing "(June 30, 2022)" of a date line
    return _name_like(text)


def _name_like(text: str) -> str | None:
    text = " ".join(text.split()).strip(" ,;:-–—()")
    text = re.sub(r"\s+([.,])", r"\1", text)  # "NIKE, Inc ." as extracted
    if not (2 <= len(text) <= 80) or not re.search(r"[^\W\d_]{2}", text):
        return None
    if re.match(r"(?i)(?:state|address|telephone|i\.?r\.?s\.?|commission|securities|indicate|\(|washington)\b", text):
        return None
    return text


def _form(cover: str) -> str | None:
    """The form a cover declares at its top; a form merely mentioned further down (a press
    release citing its 10-Q) is not this document's."""
    match = _FORM_RE.search(cover[:FORM_CHARS])
    return re.sub(r"\s+", " ", match.group(1)).upper() if match else None


def _period(cover: str) -> str | None:
    match = _PERIOD_RE.search(cover)
    if match is not None:
        kind = " ".join(match.group(1).lower().split())
        date = _tidy_date(match.group(2))
        label = f"{kind} ended {date}"
        year = _YEAR_RE.search(date)
        if kind in ("fiscal year", "year") and year:
            label += f" (FY{year.group(0)})"
        return label
    match = _REPORT_DATE_RE.search(cover)
    if match is not None:
        return f"dated {_tidy_date(match.group(1))}"
    return None


def _dated(cover: str, lines: list[str]) -> str | None:
    """A labelled date in the header, else a date on one of the first short lines."""
    match = _LABELLED_DATE_RE.search(cover)
    if match is not None:
        label = " ".join(match.group(1).split()).lower()
        return f"{label} {_tidy_date(match.group(2))}"
    for line in lines[:FIRST_LINES]:
        if len(line) > 160:
            continue
        found = _DATE_RE.search(line)
        if found is not None:
            return _tidy_date(found.group(0))
    return None


def _version(cover: str) -> str | None:
    match = _VERSION_RE.search(cover)
    return f"version {match.group(1).lstrip('vV')}" if match else None


def _ticker(cover: str) -> str | None:
    """The exchange symbol: a press release's "(NYSE: MGM)", else the first symbol under a
    filing cover's "Trading Symbol(s)" column, or the one right before a "(Trading symbol)" label."""
    match = _TICKER_RE.search(cover)
    if match is not None:
        return match.group(1).rstrip(".")
    label = _SYMBOL_LABEL_RE.search(cover)
    if label is None:
        return None
    if cover[max(0, label.start() - 1) : label.start()] == "(":  # the value sits before its label
        before = [m.group(1) for m in _SYMBOL_RE.finditer(cover[max(0, label.start() - 40) : label.start()])]
        symbols = [b for b in before if b not in _NOT_SYMBOLS]
        return symbols[-1] if symbols else None
    window = cover[label.end() : label.end() + 300]
    window = re.split(r"(?i)indicate\s*by\s*check", window)[0]
    for found in _SYMBOL_RE.finditer(window):
        if found.group(1) not in _NOT_SYMBOLS:
            return found.group(1)
    return None


def _first_heading(doc: ParsedDocument) -> str | None:
    """The first title or heading element, when it reads like a name (not a boilerplate line)."""
    for element in sorted(doc.elements, key=lambda e: (e.start, e.end))[:40]:
        if element.kind not in (ElementKind.title, ElementKind.heading):
            continue
        text = _clean(doc.text[max(0, element.start) : max(0, element.end)])
        if text and len(text) <= MAX_TITLE_CHARS and _names_something(text):
            return text
    return None


def _names_something(title: str) -> bool:
    """Whether a title or heading could name the document: not a placeholder, not a date alone,
    not a letterhead or boilerplate line."""
    if _PLACEHOLDER_TITLE.match(title) or _DATE_RE.fullmatch(title.strip(" .,")):
        return False
    return not _LETTERHEAD.match(title)


def _file_label(file_name: str) -> str | None:
    """A file name as words ("AMCOR_2023Q2_10Q.pdf" -> "AMCOR 2023Q2 10Q"), None for placeholders."""
    name = PurePath(str(file_name).replace("\\", "/")).name
    stem = name.rsplit(".", 1)[0] if "." in name[1:] else name
    if sum(c.isalnum() for c in stem) < 2 or _PLACEHOLDER_NAME.match(stem):
        return None
    words = " ".join(re.split(r"[_\s]+|(?<=\w)-(?=[A-Za-z]{2})|(?<=[a-z])\.(?=[a-z])", stem)).strip()
    return _clip(words, 80) or None


# --- assembling --------------------------------------------------------------------------------
def _words(text: str) -> set[str]:
    """Comparable words: case-folded, letters and digits apart ("10-Q", "10Q" -> {"10", "q"}),
    company suffixes dropped so that "NIKE, Inc." and "NIKE" say the same thing."""
    text = _COMPANY_WORDS.sub(" ", text)
    text = _LETTER_DIGIT.sub(" ", _LOWER_UPPER.sub(" ", text))
    return {w.casefold() for w in _WORD_RE.findall(text)}


def _join_new_words(parts: list[str], max_chars: int) -> list[str]:
    """The parts to join, in order, each only when it adds a word, within ``max_chars`` joined."""
    seen: set[str] = set()
    kept: list[str] = []
    length = 0
    for part in parts:
        part = part.strip()
        words = _words(part)
        if not part or not words or words <= seen:
            continue
        extra = len(part) + (len(SEPARATOR) if kept else 0)
        if length + extra > max_chars:
            if kept:
                continue
            part = _clip(part, max_chars) or ""
            if not part:
                break
            extra = len(part)
        kept.append(part)
        seen |= words
        length += extra
    return kept


def _tidy_date(text: str) -> str:
    text = " ".join(text.split())
    text = re.sub(r"\s+,", ",", text)
    text = re.sub(r"(\d),(?=\d{4})", r"\1, ", text)
    return text


def _clean(text: str | None) -> str | None:
    if not isinstance(text, str):
        return None
    text = " ".join(text.split()).strip()
    return text or None


def _clip(text: str | None, limit: int) -> str | None:
    """``text`` cut to ``limit`` characters at a word boundary when there is one."""
    if text is None:
        return None
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:-·") or None
