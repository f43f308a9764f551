"""The shared folder of real-world example documents, end to end through the parser pool.

Every file must end as a parsed document or a failure with a specific reason; nothing may
crash the pool. Limits are lowered so the very large files fail fast (too_large / timeout).
Skipped when ``<repo>/../shared/data`` is absent.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from ingest.documents import FailureReason, ParsedDocument, ParseFailure
from ingest.filetypes import HEAD_BYTES, detect_type
from ingest.parser_pool import ParserPool
from ingest.ocr import OcrOptions, OcrUnavailable, load_engine
from ingest.parsing import find_soffice

SHARED_DATA = Path(os.environ.get("GROUNDWORK_SHARED_DATA") or Path(__file__).resolve().parents[2] / ".." / "shared" / "data")
EXAMPLE_DOCS = SHARED_DATA / "unstructured-example-docs"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not EXAMPLE_DOCS.is_dir(), reason="shared example documents not present"),
]

MAX_BYTES = 2_600_000
TIMEOUT_S = 30.0


def _ocr_missing() -> str | None:
    try:
        load_engine(OcrOptions())
    except OcrUnavailable as exc:
        return str(exc)
    return None


def example_files() -> list[Path]:
    return sorted(path for path in EXAMPLE_DOCS.rglob("*") if path.is_file())


def test_container_detection_uses_content() -> None:
    expected = {
        "simple.doc": "doc",
        "tests-example.xls": "xls",
        "fake-power-point.ppt": "ppt",
        "fake-email.msg": "msg",
        "language-docs/eng_spa_mult.doc": "docx",  # a .docx wearing a .doc extension
        "fake.odt": "odt",
        "winter-sports.epub": "epub",
        "fake-email.txt": "eml",
        "factbook-utf-16.xml": "xml",
        "example-steelJIS-datasheet-utf-16.html": "html",
    }
    for name, type_key in expected.items():
        path = EXAMPLE_DOCS / name
        with path.open("rb") as stream:
            assert detect_type(path, stream.read(HEAD_BYTES)) == type_key, name


def test_whole_folder_through_the_pool() -> None:
    files = example_files()
    with ParserPool(2, TIMEOUT_S, 4096, MAX_BYTES, 5_000_000) as pool:
        outcomes = {path.relative_to(EXAMPLE_DOCS).as_posix(): outcome for path, outcome in pool.imap_unordered(files)}

    assert len(outcomes) == len(files)
    for name, outcome in outcomes.items():
        if isinstance(outcome, ParseFailure):
            assert isinstance(outcome.reason, FailureReason), name
            assert outcome.detail, f"{name}: failure without detail"
        else:
            assert isinstance(outcome, ParsedDocument), name
            assert outcome.text.strip(), name
            for element in outcome.elements:
                assert 0 <= element.start < element.end <= len(outcome.text), name

    def reason(name: str) -> FailureReason | None:
        outcome = outcomes[name]
        return outcome.reason if isinstance(outcome, ParseFailure) else None

    assert reason("pdf/password.pdf") is FailureReason.encrypted
    assert reason("password_protected.xlsx") is FailureReason.encrypted
    assert reason("empty.txt") is FailureReason.empty
    assert reason("fake-text-all-whitespace.txt") is FailureReason.empty
    if _ocr_missing() is None:
        for name in ("img/DA-1p.png", "img/DA-1p.heic", "img/layout-parser-paper-fast.tiff", "pdf/loremipsum-flat.pdf", "picture.pptx"):
            assert reason(name) is None, name
            assert outcomes[name].metadata["ocr"]["pages"], name
        assert len(outcomes["img/DA-1p.png"].text) > 1000
        for name in ("img/example.jpg", "img/bmp_24.bmp", "test-image-jpg-mime.pptx"):  # a photo, colour fields, a logo
            assert reason(name) is FailureReason.no_extractable_text, name
            assert "found no text" in outcomes[name].detail, name
    else:
        assert reason("img/DA-1p.png") is FailureReason.unsupported_type
    assert reason("CantinaBand3.wav") is FailureReason.unsupported_type
    assert reason("book-war-and-peace-1225p.txt") is FailureReason.too_large
    assert reason("pdf/copy-protected.pdf") is None  # owner password only: text is readable
    if find_soffice():
        assert reason("simple.doc") is None and reason("fake-power-point.ppt") is None
    else:
        assert reason("simple.doc") is FailureReason.unsupported_type
        assert "LibreOffice" in outcomes["simple.doc"].detail
    for name in ("fake-text-utf-16-be.txt", "fake-text-utf-32.txt", "stanley-cups-utf-16.csv", "umlauts-non-utf8.md"):
        assert reason(name) is None, name
    parsed = sum(isinstance(outcome, ParsedDocument) for outcome in outcomes.values())
    assert parsed >= 0.75 * len(files), Counter(str(reason(n)) for n in outcomes)
