"""Where OCR meets document formats: image files, textless PDF pages, picture-only slides.

``ingest.parsing`` calls these hooks; ``ingest.ocr`` does the reading and ``ingest.page_images``
produces the pages. OCR'd text takes the same road as a PDF's text layer (paragraphs, running
heads dropped, unstructured's element classifier), so chunking sees no difference, and the
document's ``ocr`` metadata lists the pages whose text came from OCR.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ingest.documents import FailureReason, ParseFailure
from ingest.ocr import OcrReport, OcrUnavailable, current_options, load_engine, read_pages
from ingest.page_images import IMAGE_NAMES, PdfPageRenderer, image_pages, slide_pictures
from ingest.parsing import (
    Extraction,
    PdfBox,
    PdfText,
    Piece,
    drop_running_heads,
    pdf_box_paragraphs,
    pieces_from_elements,
)

def short_error(exc: BaseException, limit: int = 300) -> str:
    message = " ".join(str(exc).split())
    return message[:limit] + ("..." if len(message) > limit else "")


def _ocr_boxes(report: OcrReport) -> list[PdfBox]:
    """OCR paragraphs as positioned boxes, in page order, ready for the PDF element path."""
    boxes = []
    for number, page in report.pages:
        for paragraph in page.paragraphs:
            for text in pdf_box_paragraphs(paragraph.text):
                boxes.append(PdfBox(number, text, paragraph.top, paragraph.bottom))
    return boxes


def _classified_pieces(boxes: Iterable[PdfBox]) -> list[Piece]:
    """Boxes of text become elements through unstructured's text classifier, like PDF text."""
    from unstructured.documents.elements import ElementMetadata
    from unstructured.partition.text import element_from_text

    elements = []
    for box in boxes:
        element = element_from_text(box.text)
        element.metadata = ElementMetadata(page_number=box.page)
        elements.append(element)
    return pieces_from_elements(elements)


def extract_image(path: Path, type_key: str) -> Extraction:
    """An image file's text, frame by frame; no text (or no OCR) fails the file."""
    name = IMAGE_NAMES[type_key]
    options = current_options()
    try:
        load_engine(options)
    except OcrUnavailable as exc:
        raise ParseFailure(FailureReason.unsupported_type, f"{name} image: its text needs OCR, which is unavailable: {exc}") from exc
    pages = image_pages(path, type_key)
    report = read_pages(pages, options)
    if not report.pages:
        reason = FailureReason.timeout if report.out_of_time else FailureReason.no_extractable_text
        raise ParseFailure(reason, f"{name} image: {report.nothing_found()}")
    pieces = _classified_pieces(drop_running_heads(_ocr_boxes(report)))
    return Extraction(pieces, None, {"pages": len(pages), "ocr": report.metadata()})


def ocr_textless_pdf_pages(path: Path, pdf: PdfText, pages: int) -> tuple[OcrReport | None, str]:
    """OCR the pages whose text layer is (nearly) empty; their OCR text replaces it in ``pdf``.

    Returns the report (None when nothing was attempted) and a note for a no-text failure.
    """
    options = current_options()
    characters: dict[int, int] = {}
    for box in pdf.boxes:
        characters[box.page] = characters.get(box.page, 0) + len(box.text)
    candidates = [number for number in range(1, pages + 1) if characters.get(number, 0) < options.pdf_min_page_chars]
    if not candidates:
        return None, ""
    try:
        load_engine(options)
        with PdfPageRenderer(path, options.render_dpi, options.max_image_pixels) as renderer:
            report = read_pages(renderer.pages(candidates), options)
    except OcrUnavailable as exc:
        return None, f"; not OCR'd: {exc}"
    except (MemoryError, ParseFailure):
        raise
    except Exception as exc:  # PDFium cannot open what pdfminer could: keep the text layer
        return None, f"; its pages could not be rendered for OCR: {short_error(exc)}"
    # A short text layer is kept unless OCR reads clearly more (a stamp on a scan, text in a
    # font without a usable character map); where both say the same, the text layer is exact.
    layer: dict[int, int] = {}
    for box in pdf.boxes:
        layer[box.page] = layer.get(box.page, 0) + _alphanumerics(box.text)
    report.pages = [
        (number, page) for number, page in report.pages
        if sum(_alphanumerics(paragraph.text) for paragraph in page.paragraphs) > _OCR_OVER_TEXT_LAYER * layer.get(number, 0)
    ]
    if report.pages:
        read = {number for number, _page in report.pages}
        kept = [box for box in pdf.boxes if box.page not in read]
        pdf.boxes = sorted(kept + _ocr_boxes(report), key=lambda box: box.page)
    return report, f"; {report.nothing_found()}"


_OCR_OVER_TEXT_LAYER = 1.5
"""OCR text replaces a page's short text layer only when it holds this many times its letters and digits."""


def _alphanumerics(text: str) -> int:
    return sum(1 for character in text if character.isalnum())


def ocr_picture_slides(path: Path, extraction: Extraction) -> Extraction:
    """OCR the pictures of slides that have no text of their own (scanned or pasted slides)."""
    options = current_options()
    with_text = {piece.page for piece in extraction.pieces}
    try:
        pictures = slide_pictures(path, exclude=with_text)
    except (MemoryError, ParseFailure):
        raise
    except Exception:  # python-pptx could not walk the package; unstructured's text stands
        return extraction
    if not pictures:
        return extraction
    try:
        report = read_pages(pictures, options)
    except OcrUnavailable as exc:
        if not extraction.pieces:
            raise ParseFailure(FailureReason.no_extractable_text, f"slides hold only pictures, and OCR is unavailable: {exc}") from exc
        return extraction
    if not report.pages and not extraction.pieces:
        reason = FailureReason.timeout if report.out_of_time else FailureReason.no_extractable_text
        raise ParseFailure(reason, f"slides hold only pictures; {report.nothing_found()}")
    pieces = sorted([*extraction.pieces, *_classified_pieces(_ocr_boxes(report))], key=lambda piece: piece.page or 0)
    metadata = {**extraction.metadata, "ocr": report.metadata()} if report.noteworthy else extraction.metadata
    return Extraction(pieces, extraction.title, metadata)
