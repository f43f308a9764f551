"""Page images for OCR: frames of image files, rendered PDF pages, pictures on slides.

Each source is returned as a list of ``(page number, loader)`` pairs; a loader decodes or
renders its page only when called, so pages past OCR's page cap or time budget cost nothing.
PDF pages are rendered with PDFium (pypdfium2), which needs no model weights and renders
pages pdfminer cannot read.
"""

from __future__ import annotations

import functools
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ingest.documents import FailureReason, ParseFailure

if TYPE_CHECKING:
    from PIL import Image

    from ingest.ocr import PageLoader

IMAGE_NAMES = {
    "png": "PNG", "jpeg": "JPEG", "tiff": "TIFF", "bmp": "BMP", "gif": "GIF", "webp": "WebP", "heic": "HEIC",
}
_MULTI_FRAME = frozenset({"tiff"})  # frames of an animated GIF or WebP are not pages


def _open_image(source: Path | bytes) -> "Image.Image":
    from PIL import Image

    _register_heif()
    return Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)


@functools.lru_cache(maxsize=1)
def _register_heif() -> None:
    """Let Pillow open HEIC/HEIF (phone photos) through pi-heif."""
    import pi_heif

    pi_heif.register_heif_opener()


def _upright(image: "Image.Image") -> "Image.Image":
    """Apply the EXIF orientation a camera or phone recorded instead of turning the pixels."""
    from PIL import ImageOps

    return ImageOps.exif_transpose(image) or image


def image_pages(path: Path, type_key: str) -> list[tuple[int, "PageLoader"]]:
    """One loader per page of an image file (every frame of a TIFF, the first of anything else)."""
    from PIL import Image

    name = IMAGE_NAMES.get(type_key, type_key.upper())
    try:
        with _open_image(path) as image:
            frames = getattr(image, "n_frames", 1) if type_key in _MULTI_FRAME else 1
    except Image.DecompressionBombError as exc:
        raise ParseFailure(FailureReason.too_large, f"{name} image too large to decode: {exc}") from exc
    except (OSError, ValueError, SyntaxError) as exc:  # Pillow's decoders raise all three on damage
        raise ParseFailure(FailureReason.corrupt, f"cannot decode the {name} image: {exc}") from exc

    def load(frame: int) -> "Image.Image":
        with _open_image(path) as image:
            if frame:
                image.seek(frame)
            image.load()
            return _upright(image.copy())

    return [(frame + 1, lambda frame=frame: load(frame)) for frame in range(max(1, frames))]


# --------------------------------------------------------------------------------------------


def render_scale(width_pt: float, height_pt: float, dpi: int, max_pixels: int) -> float:
    """PDFium scale factor (pixels per point) for ``dpi``, reduced so a page stays under ``max_pixels``."""
    scale = dpi / 72.0
    area = max(width_pt, 1.0) * max(height_pt, 1.0)
    if area * scale * scale > max_pixels:
        scale = math.sqrt(max_pixels / area)
    return scale


class PdfPageRenderer:
    """Renders chosen pages of one PDF in greyscale; use as a context manager."""

    def __init__(self, path: Path, dpi: int, max_pixels: int) -> None:
        self.path, self.dpi, self.max_pixels = path, dpi, max_pixels
        self._document: Any = None

    def __enter__(self) -> "PdfPageRenderer":
        import pypdfium2

        self._document = pypdfium2.PdfDocument(str(self.path))
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._document is not None:
            self._document.close()
            self._document = None

    def __len__(self) -> int:
        return len(self._document)

    def render(self, number: int) -> "Image.Image":
        """Page ``number`` (1-based) as a greyscale image, its /Rotate applied."""
        page = self._document[number - 1]
        try:
            width, height = page.get_size()
            bitmap = page.render(scale=render_scale(width, height, self.dpi, self.max_pixels), grayscale=True)
            return bitmap.to_pil()
        finally:
            page.close()

    def pages(self, numbers: list[int]) -> list[tuple[int, "PageLoader"]]:
        return [(number, lambda number=number: self.render(number)) for number in numbers]


# --------------------------------------------------------------------------------------------


def _pictures(shapes: Any) -> Iterator[Any]:
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    for shape in shapes:
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _pictures(shape.shapes)
        elif shape.shape_type == MSO_SHAPE_TYPE.PICTURE or hasattr(shape, "image"):
            yield shape


def slide_pictures(path: Path, exclude: set[int]) -> list[tuple[int, "PageLoader"]]:
    """Loaders for the pictures on every slide (1-based) not in ``exclude``, top to bottom."""
    from pptx import Presentation

    found: list[tuple[int, "PageLoader"]] = []
    for number, slide in enumerate(Presentation(str(path)).slides, start=1):
        if number in exclude:
            continue
        pictures = []
        for shape in _pictures(slide.shapes):
            try:
                blob = shape.image.blob
            except Exception:  # linked or missing picture part: nothing to read
                continue
            pictures.append(((shape.top or 0, shape.left or 0), blob))
        for _position, blob in sorted(pictures, key=lambda item: item[0]):
            found.append((number, lambda blob=blob: _load_blob(blob)))
    return found


def _load_blob(blob: bytes) -> "Image.Image":
    with _open_image(blob) as image:
        image.load()
        return _upright(image.copy())
