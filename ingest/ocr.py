"""Read text from page images: the engine-independent part of OCR.

An ``OcrEngine`` reads one prepared image into paragraphs with confidences. This module
decides what to give it and what to keep: images are enlarged when small and shrunk when huge,
blank pages are skipped, paragraphs read at low confidence are dropped, a poorly read page gets
an orientation check and a second read when it turned out to be rotated, and a file's pages
are read within a per-page timeout, a per-file time budget and a page cap. What was read,
skipped or abandoned is reported, so the document's metadata can say which text came from OCR.

Engines are loaded once per process (they hold their language models) and only when a file
needs them; a missing engine is an ``OcrUnavailable`` with a message saying what to install.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol, Sequence

if TYPE_CHECKING:
    from PIL import Image

    from index.settings import Settings

_BLANK_SPREAD = 8
"""A page whose grey levels span no more than this (0-255) holds nothing to read."""
_MAX_UPSCALE = 4.0


class OcrUnavailable(Exception):
    """OCR is turned off or its engine cannot be loaded; the message says which and why."""


class OcrTimeout(Exception):
    """The engine gave up on a page at its deadline."""


@dataclass(frozen=True, slots=True)
class OcrOptions:
    """The OCR settings a parser process needs (picklable; defaults mirror ``Settings``)."""

    engine: str = "auto"
    languages: str = "eng"
    tessdata_dir: str | None = None
    page_timeout_s: float = 30.0
    file_budget_s: float = 90.0
    max_pages: int = 100
    render_dpi: int = 200
    upscale_to_px: int = 2000
    max_image_pixels: int = 40_000_000
    min_confidence: float = 40.0
    orientation_check_below: float = 60.0
    pdf_min_page_chars: int = 50

    @property
    def enabled(self) -> bool:
        return self.engine != "off"

    def within(self, parse_timeout_s: float) -> "OcrOptions":
        """These options with the file budget inside a parse timeout (90% of it), so a long
        scan ends indexed in part instead of killed with nothing."""
        if parse_timeout_s and parse_timeout_s > 0 and self.file_budget_s > 0.9 * parse_timeout_s:
            return dataclasses.replace(self, file_budget_s=0.9 * parse_timeout_s)
        return self

    @classmethod
    def from_settings(cls, settings: "Settings") -> "OcrOptions":
        return cls(
            engine=settings.ocr_engine,
            languages=settings.ocr_languages,
            tessdata_dir=str(settings.ocr_tessdata_dir) if settings.ocr_tessdata_dir else None,
            page_timeout_s=settings.ocr_page_timeout_s,
            file_budget_s=settings.ocr_file_budget_s,
            max_pages=settings.ocr_max_pages,
            render_dpi=settings.ocr_render_dpi,
            upscale_to_px=settings.ocr_upscale_to_px,
            max_image_pixels=settings.ocr_max_image_pixels,
            min_confidence=settings.ocr_min_confidence,
            orientation_check_below=settings.ocr_orientation_check_below,
            pdf_min_page_chars=settings.ocr_pdf_min_page_chars,
        )


@dataclass(frozen=True, slots=True)
class OcrParagraph:
    """One paragraph as read: lines joined by newlines, its vertical extent as page fractions
    (0 = top edge, 1 = bottom edge) and the engine's mean word confidence (0-100)."""

    text: str
    top: float
    bottom: float
    confidence: float


@dataclass(slots=True)
class OcrPage:
    paragraphs: list[OcrParagraph]
    confidence: float  # mean word confidence over the page, 0 when nothing was read
    rotation: int = 0  # degrees the image was turned (counter-clockwise) before this read
    dropped: int = 0  # paragraphs read but not kept (low confidence, no letters or digits)


class OcrEngine(Protocol):
    """A text recogniser. ``read`` raises ``OcrTimeout`` past ``timeout_s``."""

    name: str

    def read(self, image: "Image.Image", *, timeout_s: float) -> OcrPage: ...

    def detect_rotation(self, image: "Image.Image") -> int:
        """Counter-clockwise degrees (0, 90, 180, 270) that would turn the page upright; 0 when unsure."""
        ...


# --------------------------------------------------------------------------------------------
# engine selection (one instance per process and configuration)
# --------------------------------------------------------------------------------------------

_engines: dict[tuple[str, str, str | None], OcrEngine | OcrUnavailable] = {}
_engine_lock = threading.Lock()


def load_engine(options: OcrOptions) -> OcrEngine:
    """The engine for ``options``, loaded once per process; raises ``OcrUnavailable``."""
    if not options.enabled:
        raise OcrUnavailable("OCR is turned off (ocr_engine=off)")
    key = (options.engine, options.languages, options.tessdata_dir)
    with _engine_lock:
        if key not in _engines:
            try:
                from ingest.ocr_tesseract import TesseractEngine

                _engines[key] = TesseractEngine(options.languages, options.tessdata_dir)
            except OcrUnavailable as exc:
                _engines[key] = exc
        engine = _engines[key]
    if isinstance(engine, OcrUnavailable):
        raise engine
    return engine


_current_options: contextvars.ContextVar[OcrOptions] = contextvars.ContextVar("ocr_options", default=OcrOptions())
_parse_started: contextvars.ContextVar[float | None] = contextvars.ContextVar("ocr_parse_started", default=None)


def current_options() -> OcrOptions:
    """The options of the parse in progress (see ``using``)."""
    return _current_options.get()


@contextlib.contextmanager
def using(options: OcrOptions | None) -> Iterator[OcrOptions]:
    """Make ``options`` the ones format extractors see for the duration of one parse.

    The file's OCR budget counts from here, so time spent on its text layer is part of it.
    """
    token = _current_options.set(options or OcrOptions())
    started = _parse_started.set(time.monotonic())
    try:
        yield _current_options.get()
    finally:
        _parse_started.reset(started)
        _current_options.reset(token)


def availability(options: OcrOptions) -> str | None:
    """Why OCR cannot run with ``options`` (None when it can), without loading any model."""
    import importlib.util

    if not options.enabled:
        return "OCR is turned off (ocr_engine=off)"
    if importlib.util.find_spec("tesserocr") is None:
        return "Tesseract's Python binding is not installed (pip install tesserocr)"
    from ingest.ocr_tesseract import find_tessdata

    try:
        find_tessdata(options.languages, options.tessdata_dir)
    except OcrUnavailable as exc:
        return str(exc)
    return None


# --------------------------------------------------------------------------------------------
# image preparation (pure)
# --------------------------------------------------------------------------------------------


def ocr_scale(width: int, height: int, options: OcrOptions) -> float:
    """Factor to resize an image by before OCR: enlarge small ones, shrink huge ones."""
    if width <= 0 or height <= 0:
        return 1.0
    scale = 1.0
    longer = max(width, height)
    if options.upscale_to_px and longer < options.upscale_to_px:
        scale = min(_MAX_UPSCALE, options.upscale_to_px / longer)
    if width * height * scale * scale > options.max_image_pixels:
        scale = math.sqrt(options.max_image_pixels / (width * height))
    return scale


def prepare(image: "Image.Image", options: OcrOptions) -> "Image.Image":
    """Greyscale at a size the recogniser reads well (transparency flattened onto white)."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    grey = image.convert("L")
    scale = ocr_scale(grey.width, grey.height, options)
    if abs(scale - 1.0) > 0.05:
        size = (max(1, round(grey.width * scale)), max(1, round(grey.height * scale)))
        grey = grey.resize(size, Image.Resampling.LANCZOS)
    return grey


def is_blank(image: "Image.Image") -> bool:
    """Nothing but one flat tone (an empty page, a white scan)."""
    low, high = image.convert("L").getextrema()
    return high - low <= _BLANK_SPREAD


def keep_paragraphs(page: OcrPage, min_confidence: float) -> list[OcrParagraph]:
    """Paragraphs worth indexing: confident enough and holding a letter or digit."""
    return [
        paragraph for paragraph in page.paragraphs
        if paragraph.confidence >= min_confidence and any(ch.isalnum() for ch in paragraph.text)
    ]


# --------------------------------------------------------------------------------------------
# reading pages
# --------------------------------------------------------------------------------------------


def read_page(engine: OcrEngine, image: "Image.Image", options: OcrOptions, *, timeout_s: float) -> OcrPage:
    """Read one prepared page; a poor read triggers an orientation check and maybe a re-read."""
    started = time.monotonic()
    page = engine.read(image, timeout_s=timeout_s)
    if page.paragraphs and page.confidence < options.orientation_check_below:
        rotation = engine.detect_rotation(image)
        remaining = timeout_s - (time.monotonic() - started)
        if rotation and remaining > 0:
            turned = engine.read(image.rotate(rotation, expand=True), timeout_s=remaining)
            if turned.confidence > page.confidence:
                turned.rotation = rotation
                page = turned
    kept = keep_paragraphs(page, options.min_confidence)
    page.dropped, page.paragraphs = len(page.paragraphs) - len(kept), kept
    return page


@dataclass(slots=True)
class OcrReport:
    """What OCR did for one file: pages read, pages without text, pages given up on."""

    engine: str
    pages: list[tuple[int, OcrPage]] = field(default_factory=list)  # (page number, read with text)
    empty_pages: list[int] = field(default_factory=list)      # read (or blank) and nothing found
    timed_out_pages: list[int] = field(default_factory=list)
    unreadable_pages: list[int] = field(default_factory=list)  # could not be decoded or rendered
    unread_pages: int = 0                                      # beyond the page cap or time budget
    unread_because: str | None = None
    min_confidence: float = 0.0
    doubtful_pages: list[int] = field(default_factory=list)    # text seen, all of it below min_confidence

    def metadata(self) -> dict[str, Any]:
        """The document's ``ocr`` metadata: which pages' text came from OCR, and what was left out."""
        data: dict[str, Any] = {"engine": self.engine, "pages": sorted({number for number, _page in self.pages})}
        if self.pages:
            data["mean_confidence"] = round(sum(page.confidence for _n, page in self.pages) / len(self.pages), 1)
        rotations = {str(number): page.rotation for number, page in self.pages if page.rotation}
        if rotations:
            data["rotated_pages"] = rotations
        for key in ("timed_out_pages", "unreadable_pages"):
            if getattr(self, key):
                data[key] = sorted(set(getattr(self, key)))
        if self.unread_pages:
            data["unread_pages"] = self.unread_pages
            data["unread_because"] = self.unread_because
        return data

    @property
    def noteworthy(self) -> bool:
        """Whether the document's metadata should carry this report (text read, or pages lost)."""
        return bool(self.pages or self.timed_out_pages or self.unreadable_pages or self.unread_pages)

    @property
    def out_of_time(self) -> bool:
        """Nothing was read because time ran out (the file's failure is a timeout)."""
        budget_spent = self.unread_pages > 0 and (self.unread_because or "").startswith("ocr_file_budget_s")
        return (bool(self.timed_out_pages) or budget_spent) and not (self.pages or self.empty_pages or self.unreadable_pages)

    def nothing_found(self) -> str:
        """Why the file yielded no OCR text, for a ``no_extractable_text`` detail."""
        parts = [f"OCR ({self.engine}) found no text"]
        if self.doubtful_pages:
            parts.append(
                f"what it saw on {len(self.doubtful_pages)} page(s) was below ocr_min_confidence={self.min_confidence:g} "
                "(another language or script? see ocr_languages)"
            )
        if self.timed_out_pages:
            parts.append(f"{len(self.timed_out_pages)} page(s) timed out")
        if self.unreadable_pages:
            parts.append(f"{len(self.unreadable_pages)} page(s) could not be decoded")
        if self.unread_pages:
            parts.append(f"{self.unread_pages} page(s) left unread ({self.unread_because})")
        return "; ".join(parts)


PageLoader = Callable[[], "Image.Image"]
"""Produces one page image when called (decoding or rendering happens only for pages read)."""


def read_pages(pages: Sequence[tuple[int, PageLoader]], options: OcrOptions, *, engine: OcrEngine | None = None) -> OcrReport:
    """OCR ``(page number, loader)`` pairs in order, within the page cap and the file's time budget.

    Raises ``OcrUnavailable`` before loading any page when no engine can be loaded.
    """
    engine = engine or load_engine(options)
    report = OcrReport(engine.name, min_confidence=options.min_confidence)
    deadline = (_parse_started.get() or time.monotonic()) + options.file_budget_s
    for index, (number, load) in enumerate(pages):
        remaining = deadline - time.monotonic()
        if index >= options.max_pages or remaining <= 0:
            report.unread_pages = len(pages) - index
            report.unread_because = (
                f"ocr_max_pages={options.max_pages}" if index >= options.max_pages
                else f"ocr_file_budget_s={options.file_budget_s:g}"
            )
            break
        try:
            prepared = prepare(load(), options)
        except MemoryError:
            raise
        except Exception:  # a frame or page the decoder or renderer cannot produce
            report.unreadable_pages.append(number)
            continue
        if is_blank(prepared):
            report.empty_pages.append(number)
            continue
        try:
            page = read_page(engine, prepared, options, timeout_s=min(options.page_timeout_s, remaining))
        except OcrTimeout:
            report.timed_out_pages.append(number)
            continue
        if page.paragraphs:
            report.pages.append((number, page))
        else:
            report.empty_pages.append(number)
            if page.dropped:
                report.doubtful_pages.append(number)
    return report
