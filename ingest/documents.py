"""Value types passed between parsing, chunking and the pipeline (no I/O here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class ElementKind(str, Enum):
    title = "title"          # the document's own title (level 0 heading)
    heading = "heading"      # a section heading; ``level`` says its depth (1 = top)
    text = "text"            # narrative text / paragraph
    list_item = "list_item"
    table = "table"          # rows as text lines after ``head_lines`` caption/header lines
    other = "other"          # addresses, footers, code, anything else with text


@dataclass(frozen=True, slots=True)
class Element:
    """One structural piece of a document; ``text == document.text[start:end]``."""

    kind: ElementKind
    start: int
    end: int
    page: int | None = None
    level: int = 0
    head_lines: int = 1  # tables: leading lines (caption, column headers) that every piece of a split table repeats


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """What a parser hands on: the extracted text and its structure.

    ``text`` is the document's extracted text (elements joined by blank lines); every offset
    in the system (elements, chunks, citations) points into it.
    """

    text: str
    elements: list[Element]
    mime_type: str
    title: str | None = None
    metadata: dict = field(default_factory=dict)
    # Set when parsed from a checked private copy (ingest.safe_open): the sha256 and size of
    # exactly the bytes parsed, which the stored document must carry.
    sha256: str | None = None
    size_bytes: int | None = None


class FailureReason(str, Enum):
    unsupported_type = "unsupported_type"
    encrypted = "encrypted"
    no_extractable_text = "no_extractable_text"
    corrupt = "corrupt"
    empty = "empty"
    too_large = "too_large"
    timeout = "timeout"
    symlink = "symlink"  # a symlink not followed, or one leading outside the allowed roots


class ParseFailure(Exception):
    """A file that cannot be ingested, with a machine-readable reason and a human detail."""

    def __init__(self, reason: FailureReason, detail: str = ""):
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail

    def __reduce__(self):  # picklable across worker processes
        return (ParseFailure, (self.reason, self.detail))
