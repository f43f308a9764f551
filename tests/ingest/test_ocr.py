"""OCR: images, image-only PDFs and picture-only slides, read by the real engine.

Fixtures are rendered here with Pillow's default font, so every expected word is known. The
engine-independent logic (page cap, time budget, orientation retry) is also checked against a
scripted engine that stands in for the recogniser's numbers only.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFont

from index.settings import Settings
from ingest.documents import FailureReason, ParsedDocument, ParseFailure
from ingest.filetypes import HEAD_BYTES, detect_type, image_type
from ingest.ocr import (
    OcrOptions,
    OcrPage,
    OcrParagraph,
    OcrTimeout,
    OcrUnavailable,
    keep_paragraphs,
    load_engine,
    ocr_scale,
    read_pages,
)
from ingest.page_images import render_scale
from ingest.parsing import parse_file

MAX_BYTES = 50_000_000
MAX_CHARS = 1_000_000

NOTICE = ["Quarterly maintenance schedule", "for the northern pumping station", "inspections start on Monday"]


def _engine_missing() -> str | None:
    try:
        load_engine(OcrOptions())
    except OcrUnavailable as exc:
        return str(exc)
    return None


requires_engine = pytest.mark.skipif(_engine_missing() is not None, reason=f"OCR engine not installed: {_engine_missing()}")


def text_image(lines: list[str], *, size: int = 40, width: int = 1400) -> Image.Image:
    """Black text on white, drawn with Pillow's default (FreeType) font."""
    font = ImageFont.load_default(size=size)
    height = 60 + len(lines) * int(size * 1.6)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for index, line in enumerate(lines):
        draw.text((40, 30 + index * int(size * 1.6)), line, fill="black", font=font)
    return image


def parse(path: Path, ocr: OcrOptions | None = None) -> ParsedDocument:
    return parse_file(path, max_bytes=MAX_BYTES, max_chars=MAX_CHARS, ocr=ocr)


def failure(path: Path, ocr: OcrOptions | None = None) -> ParseFailure:
    with pytest.raises(ParseFailure) as caught:
        parse(path, ocr)
    return caught.value


def words(text: str) -> set[str]:
    return {word.strip(".,;:").casefold() for word in text.split()}


def image_pdf(path: Path, pages: list[Image.Image | str]) -> Path:
    """A PDF whose pages are either a picture (no text layer) or a line of real text."""
    from fpdf import FPDF

    pdf = FPDF()
    for page in pages:
        pdf.add_page()
        if isinstance(page, str):
            pdf.set_font("Helvetica", size=12)
            pdf.multi_cell(0, 6, page)
        else:
            pdf.image(page, x=10, y=10, w=190)
    pdf.output(str(path))
    return path


# --------------------------------------------------------------------------------------------
# pure parts
# --------------------------------------------------------------------------------------------


def test_ocr_options_mirror_the_settings_defaults() -> None:
    assert OcrOptions.from_settings(Settings()) == OcrOptions()


def test_ocr_budget_stays_inside_the_parse_timeout() -> None:
    from ingest.parser_pool import ParserPool

    pool = ParserPool.from_settings(Settings(parse_timeout_s=20, ocr_file_budget_s=90))
    assert pool._config.parse_options["ocr"].file_budget_s == pytest.approx(18)
    assert ParserPool(1, 600, 1024, 10, 10)._config.parse_options["ocr"] == OcrOptions()
    assert OcrOptions(file_budget_s=5).within(0) == OcrOptions(file_budget_s=5)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "jpeg"),
        (b"II*\x00\x08\x00\x00\x00", "tiff"),
        (b"MM\x00*\x00\x00\x00\x08", "tiff"),
        (b"GIF89a\x01\x00\x01\x00", "gif"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "webp"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "heic"),
        (b"BM\x36\x00\x0c\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00\x00\x00", "bmp"),
        (b"BMW quarterly report\n", None),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x00\x00", None),
    ],
)
def test_image_magic(head: bytes, expected: str | None) -> None:
    assert image_type(head) == expected


def test_text_starting_like_a_bitmap_is_still_text(tmp_path: Path) -> None:
    path = tmp_path / "cars.txt"
    path.write_text("BMW and Audi sales rose in the third quarter.\n")
    assert detect_type(path, path.read_bytes()[:HEAD_BYTES]) == "txt"


@given(
    width=st.integers(1, 40_000),
    height=st.integers(1, 40_000),
    target=st.integers(0, 4000),
    max_pixels=st.integers(1_000_000, 100_000_000),
)
def test_ocr_scale_bounds(width: int, height: int, target: int, max_pixels: int) -> None:
    options = OcrOptions(upscale_to_px=target, max_image_pixels=max_pixels)
    scale = ocr_scale(width, height, options)
    assert 0 < scale <= 4.0
    assert width * height * scale * scale <= max_pixels * 1.0001
    if width * height <= max_pixels and max(width, height) >= target:
        assert scale == 1.0
    if scale > 1.0:
        assert max(width, height) * scale <= target + 1e-6


@given(
    width=st.floats(1, 20_000),
    height=st.floats(1, 20_000),
    dpi=st.integers(50, 600),
    max_pixels=st.integers(1_000_000, 100_000_000),
)
def test_render_scale_bounds(width: float, height: float, dpi: int, max_pixels: int) -> None:
    scale = render_scale(width, height, dpi, max_pixels)
    assert 0 < scale <= dpi / 72 + 1e-9
    assert width * height * scale * scale <= max_pixels * 1.0001


def test_low_confidence_and_symbol_only_paragraphs_are_dropped() -> None:
    page = OcrPage(
        [
            OcrParagraph("Annual report", 0.1, 0.2, 91.0),
            OcrParagraph("~ = |", 0.3, 0.4, 88.0),
            OcrParagraph("Wl iI", 0.5, 0.6, 12.0),
        ],
        confidence=70.0,
    )
    assert [p.text for p in keep_paragraphs(page, 40.0)] == ["Annual report"]


class ScriptedEngine:
    """Stands in for the recogniser's output only: an upright page (dark top-left pixel) reads
    well, a turned one badly; pages whose top-left pixel is mid-grey time out."""

    name = "scripted"

    def __init__(self) -> None:
        self.reads = 0

    def read(self, image: Image.Image, *, timeout_s: float) -> OcrPage:
        self.reads += 1
        corner = image.getpixel((0, 0))
        if corner == 128:
            raise OcrTimeout("slow page")
        confidence = 90.0 if corner == 0 else 30.0
        return OcrPage([OcrParagraph("Readable words", 0.1, 0.2, confidence)], confidence)

    def detect_rotation(self, image: Image.Image) -> int:
        return 180


def marked_page(corner: int, *, turned: bool = False) -> Image.Image:
    image = Image.new("L", (400, 300), 255)
    image.putpixel((0, 0), corner)
    image.putpixel((200, 150), 0)  # not blank
    return image.rotate(180) if turned else image


SCRIPTED_OPTIONS = OcrOptions(upscale_to_px=0)


def test_turned_page_is_read_again_upright() -> None:
    engine = ScriptedEngine()
    report = read_pages([(1, lambda: marked_page(0, turned=True))], SCRIPTED_OPTIONS, engine=engine)
    assert [(number, page.rotation) for number, page in report.pages] == [(1, 180)]
    assert report.metadata()["rotated_pages"] == {"1": 180}
    assert engine.reads == 2


def test_page_cap_and_timeouts_are_reported() -> None:
    pages = [(1, lambda: marked_page(0)), (2, lambda: marked_page(128)), (3, lambda: marked_page(0)), (4, lambda: marked_page(0))]
    report = read_pages(pages, OcrOptions(upscale_to_px=0, max_pages=3), engine=ScriptedEngine())
    metadata = report.metadata()
    assert metadata["pages"] == [1, 3]
    assert metadata["timed_out_pages"] == [2]
    assert (metadata["unread_pages"], metadata["unread_because"]) == (1, "ocr_max_pages=3")


def test_spent_budget_leaves_pages_unread_without_loading_them() -> None:
    def must_not_load() -> Image.Image:
        raise AssertionError("a page past the budget was loaded")

    report = read_pages([(1, must_not_load), (2, must_not_load)], OcrOptions(file_budget_s=1e-9), engine=ScriptedEngine())
    assert report.unread_pages == 2 and not report.pages
    assert "left unread" in report.nothing_found()


def test_text_seen_only_below_the_confidence_floor_is_named() -> None:
    report = read_pages([(1, lambda: marked_page(255))], OcrOptions(upscale_to_px=0, min_confidence=50), engine=ScriptedEngine())
    assert not report.pages and report.doubtful_pages == [1]
    assert "ocr_min_confidence=50" in report.nothing_found() and "ocr_languages" in report.nothing_found()


def test_blank_and_undecodable_pages() -> None:
    def broken() -> Image.Image:
        raise OSError("truncated frame")

    engine = ScriptedEngine()
    report = read_pages([(1, lambda: Image.new("L", (300, 300), 250)), (2, broken)], SCRIPTED_OPTIONS, engine=engine)
    assert engine.reads == 0
    assert report.empty_pages == [1] and report.unreadable_pages == [2]
    assert not report.noteworthy or report.metadata()["unreadable_pages"] == [2]


# --------------------------------------------------------------------------------------------
# the real engine
# --------------------------------------------------------------------------------------------


@requires_engine
def test_png_is_read(tmp_path: Path) -> None:
    path = tmp_path / "notice.png"
    text_image(NOTICE).save(path)
    document = parse(path)
    assert {"quarterly", "maintenance", "pumping", "station", "monday"} <= words(document.text)
    assert document.mime_type == "image/png"
    assert document.metadata["ocr"]["pages"] == [1]
    assert document.metadata["ocr"]["engine"].startswith("tesseract")
    assert all(element.page == 1 for element in document.elements)


@requires_engine
@pytest.mark.parametrize("image_format", ["JPEG", "BMP", "WEBP", "GIF"])
def test_other_image_formats(tmp_path: Path, image_format: str) -> None:
    path = tmp_path / f"notice.{image_format.lower()}"
    text_image(NOTICE[:2]).save(path, format=image_format)
    assert "pumping" in words(parse(path).text)


@requires_engine
def test_heic_photo(tmp_path: Path) -> None:
    import pi_heif

    pi_heif.register_heif_opener()
    path = tmp_path / "photo.heic"
    try:
        text_image(NOTICE[:2]).save(path, format="HEIF", quality=90)
    except (KeyError, OSError, ValueError) as exc:
        pytest.skip(f"HEIC encoding unavailable: {exc}")
    assert "pumping" in words(parse(path).text)


@requires_engine
def test_multipage_tiff_keeps_its_pages(tmp_path: Path) -> None:
    path = tmp_path / "fax.tiff"
    first, second = text_image(["Invoice number seventeen"]), text_image(["Payment overdue reminder"])
    first.save(path, save_all=True, append_images=[second])
    document = parse(path)
    pages = {document.text[e.start:e.end].split()[0].casefold(): e.page for e in document.elements}
    assert pages == {"invoice": 1, "payment": 2}
    assert document.metadata["pages"] == 2 and document.metadata["ocr"]["pages"] == [1, 2]


@requires_engine
def test_page_cap_applies_to_frames(tmp_path: Path) -> None:
    path = tmp_path / "fax.tiff"
    frames = [text_image([f"Section {word} summary"]) for word in ("alpha", "bravo", "charlie")]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    document = parse(path, OcrOptions(max_pages=1))
    assert "alpha" in words(document.text) and "charlie" not in words(document.text)
    assert document.metadata["ocr"]["unread_pages"] == 2


@requires_engine
def test_blank_image_has_no_extractable_text(tmp_path: Path) -> None:
    path = tmp_path / "blank.png"
    Image.new("RGB", (1200, 900), "white").save(path)
    caught = failure(path)
    assert caught.reason is FailureReason.no_extractable_text
    assert "OCR" in caught.detail and "found no text" in caught.detail


@requires_engine
def test_noise_image_has_no_extractable_text(tmp_path: Path) -> None:
    """Regression: Tesseract raises "No text returned" for a paragraph of pure noise."""
    import random

    generator = random.Random(7)
    noise = Image.new("L", (600, 400))
    noise.putdata([generator.choice((0, 255)) if generator.random() < 0.1 else 255 for _ in range(600 * 400)])
    path = tmp_path / "noise.png"
    noise.save(path)
    # Not enlarged: speckle costs Tesseract seconds per megapixel, and the point is the outcome.
    assert failure(path, OcrOptions(upscale_to_px=0)).reason is FailureReason.no_extractable_text


@requires_engine
def test_upside_down_scan_is_turned(tmp_path: Path) -> None:
    path = tmp_path / "upside-down.png"
    text_image(NOTICE + ["The contractor reports weekly to the operations manager"]).rotate(180).save(path)
    document = parse(path)
    assert {"maintenance", "pumping", "contractor"} <= words(document.text)
    assert document.metadata["ocr"]["rotated_pages"] == {"1": 180}


@requires_engine
def test_image_only_pdf_is_read(tmp_path: Path) -> None:
    path = image_pdf(tmp_path / "scan.pdf", [text_image(NOTICE)])
    document = parse(path)
    assert {"maintenance", "pumping", "monday"} <= words(document.text)
    assert document.metadata["ocr"]["pages"] == [1]
    assert document.mime_type == "application/pdf"


@requires_engine
def test_only_textless_pdf_pages_are_ocr_d(tmp_path: Path) -> None:
    typed = "The board approved the annual budget after a long discussion about staffing levels and costs."
    path = image_pdf(tmp_path / "mixed.pdf", [typed, text_image(["Signed copy of the lease agreement"])])
    document = parse(path)
    assert document.metadata["ocr"]["pages"] == [2]
    pages = {element.page for element in document.elements if "lease" in document.text[element.start:element.end].casefold()}
    assert pages == {2}
    assert "budget" in words(document.text)


@requires_engine
def test_a_short_text_layer_is_kept_when_ocr_reads_no_more(tmp_path: Path) -> None:
    path = image_pdf(tmp_path / "signature.pdf", ["Approved by the finance director"])
    document = parse(path)
    assert document.text == "Approved by the finance director"
    assert "ocr" not in document.metadata


@requires_engine
def test_a_stamp_on_a_scan_does_not_hide_the_scan(tmp_path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=8)
    pdf.cell(0, 5, "Scanned copy 0042")
    pdf.image(text_image(NOTICE), x=10, y=20, w=190)
    path = tmp_path / "stamped.pdf"
    pdf.output(str(path))
    document = parse(path)
    assert {"maintenance", "pumping", "monday"} <= words(document.text)
    assert document.metadata["ocr"]["pages"] == [1]


@requires_engine
def test_blank_scanned_pdf_fails_alone(tmp_path: Path) -> None:
    path = image_pdf(tmp_path / "blank-scan.pdf", [Image.new("RGB", (1240, 1754), "white")])
    caught = failure(path)
    assert caught.reason is FailureReason.no_extractable_text
    assert "found no text" in caught.detail


@requires_engine
def test_page_timeout_is_a_timeout(tmp_path: Path) -> None:
    path = tmp_path / "dense.png"
    text_image(NOTICE * 6).save(path)
    caught = failure(path, OcrOptions(page_timeout_s=0.001))
    assert caught.reason is FailureReason.timeout
    assert "timed out" in caught.detail


@requires_engine
def test_file_budget_counts_from_the_start_of_the_parse(tmp_path: Path) -> None:
    path = image_pdf(tmp_path / "scan.pdf", [text_image(NOTICE)])
    caught = failure(path, OcrOptions(file_budget_s=1e-6))  # spent on the text layer already
    assert caught.reason is FailureReason.timeout
    assert "left unread (ocr_file_budget_s=" in caught.detail


def test_availability_is_told_without_loading_a_model(tmp_path: Path) -> None:
    from ingest.ocr import availability

    assert "ocr_engine=off" in availability(OcrOptions(engine="off"))
    assert "tesseract-ocr-eng" in availability(OcrOptions(tessdata_dir=str(tmp_path))) or _engine_missing()
    assert availability(OcrOptions()) == _engine_missing()


def test_ocr_off_gives_a_clear_reason(tmp_path: Path) -> None:
    image = tmp_path / "notice.png"
    text_image(NOTICE).save(image)
    scan = image_pdf(tmp_path / "scan.pdf", [text_image(NOTICE)])
    off = OcrOptions(engine="off")
    image_failure, scan_failure = failure(image, off), failure(scan, off)
    assert image_failure.reason is FailureReason.unsupported_type and "ocr_engine=off" in image_failure.detail
    assert scan_failure.reason is FailureReason.no_extractable_text and "ocr_engine=off" in scan_failure.detail


def test_missing_language_data_gives_a_clear_reason(tmp_path: Path) -> None:
    image = tmp_path / "notice.png"
    text_image(NOTICE).save(image)
    empty = tmp_path / "no-models"
    empty.mkdir()
    caught = failure(image, OcrOptions(tessdata_dir=str(empty)))
    assert caught.reason is FailureReason.unsupported_type
    assert "unavailable" in caught.detail and ("tesseract-ocr-eng" in caught.detail or "tesserocr" in caught.detail)


def test_damaged_image_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "damaged.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x17" * 64)
    if _engine_missing():
        assert failure(path).reason is FailureReason.unsupported_type
    else:
        assert failure(path).reason is FailureReason.corrupt


def _presentation(path: Path, slides: list[tuple[str | None, Image.Image | None]]) -> Path:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    for text, picture in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[6])
        if text:
            slide.shapes.add_textbox(Inches(1), Inches(0.5), Inches(8), Inches(1)).text_frame.text = text
        if picture is not None:
            blob = io.BytesIO()
            picture.save(blob, format="PNG")
            blob.seek(0)
            slide.shapes.add_picture(blob, Inches(0.5), Inches(2), width=Inches(9))
    deck.save(str(path))
    return path


@requires_engine
def test_picture_only_slides_are_read(tmp_path: Path) -> None:
    path = _presentation(tmp_path / "deck.pptx", [
        ("Roadmap for the coming year", text_image(["Decorative banner nobody indexes"])),
        (None, text_image(["Scanned minutes of the steering committee"])),
    ])
    document = parse(path)
    found = words(document.text)
    assert {"roadmap", "steering", "committee"} <= found
    assert "decorative" not in found  # slides with their own text keep it, pictures unread
    assert document.metadata["ocr"]["pages"] == [2]


# --------------------------------------------------------------------------------------------
# through the parser workers and the whole ingestion pipeline
# --------------------------------------------------------------------------------------------


def test_ocr_options_reach_the_workers(tmp_path: Path) -> None:
    from ingest.parser_pool import ParserPool

    path = tmp_path / "notice.png"
    text_image(NOTICE[:1]).save(path)
    with ParserPool(1, 60, 4096, MAX_BYTES, MAX_CHARS, parse_options={"ocr": OcrOptions(engine="off")}) as pool:
        outcome = pool.parse(path)
    assert isinstance(outcome, ParseFailure) and "ocr_engine=off" in outcome.detail


@requires_engine
def test_scans_are_ingested_and_searchable(tmp_path: Path, settings, hash_embedder) -> None:
    from service.engine import Groundwork
    from service.query.types import Principal, Query

    folder = tmp_path / "archive"
    folder.mkdir()
    text_image(NOTICE).save(folder / "notice.png")
    image_pdf(folder / "lease.pdf", [text_image(["Signed lease for the riverside warehouse", "rent reviewed every April"])])
    Image.new("RGB", (800, 600), "white").save(folder / "blank.jpg")

    gw = Groundwork(settings, embedder=hash_embedder)
    try:
        summary = gw.ingest([folder], progress=False).to_json()
        outcomes = {Path(f["path"]).name: f for f in summary["files"]}
        assert (summary["added"], summary["failed"]) == (2, 1), outcomes
        assert outcomes["blank.jpg"]["reason"] == "no_extractable_text"
        everyone = Principal("t", all_access=True)
        for query, expected in (("pumping station", "notice.png"), ("riverside warehouse", "lease.pdf")):
            hits = gw.pipeline.search(Query(query, everyone, k=3, mode="keyword")).hits
            assert hits and Path(hits[0].source).name == expected, query
            assert hits[0].pages == [1]
        document = gw.store.find_document("default", str((folder / "lease.pdf").resolve()))
        assert document.doc_metadata["ocr"]["pages"] == [1]
    finally:
        gw.close()


def test_language_models_are_looked_up_per_language(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ingest import ocr_tesseract

    models = tmp_path / "share" / "tessdata"
    models.mkdir(parents=True)
    for code in ("eng", "deu"):
        (models / f"{code}.traineddata").write_bytes(b"model")
    assert ocr_tesseract.find_tessdata("eng+deu", str(models)) == models
    with pytest.raises(OcrUnavailable, match="tesseract-ocr-fra"):
        ocr_tesseract.find_tessdata("eng+fra", str(models))
    monkeypatch.setenv("TESSDATA_PREFIX", str(models.parent))
    monkeypatch.setattr(ocr_tesseract, "TESSDATA_SEARCH", ())
    assert ocr_tesseract.find_tessdata("deu") == models
