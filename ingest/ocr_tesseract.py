"""Tesseract as the OCR engine, through tesserocr (in-process, no subprocess per page).

The tesserocr wheel carries libtesseract itself; the language models come from the system
(Debian: ``tesseract-ocr-eng`` and ``tesseract-ocr-osd``, which ``scripts/setup.sh`` and the
Dockerfile install). Nothing is ever downloaded: without the binding or the models the engine
reports ``OcrUnavailable`` saying what to install.
"""

from __future__ import annotations

import glob
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.ocr import OcrPage, OcrParagraph, OcrTimeout, OcrUnavailable

if TYPE_CHECKING:
    from PIL import Image

TESSDATA_SEARCH = (
    "/usr/share/tesseract-ocr/*/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
    "/usr/local/share/tesseract-ocr/*/tessdata",
    "/opt/homebrew/share/tessdata",
)
_OSD_MAX_SIDE = 1600
"""Orientation detection reads a copy no larger than this: it needs letter shapes, not detail."""


def tessdata_candidates(configured: str | None) -> list[Path]:
    """Folders to look for traineddata in, most specific first."""
    if configured:
        return [Path(configured)]
    folders: list[Path] = []
    prefix = os.environ.get("TESSDATA_PREFIX")
    if prefix:
        folders += [Path(prefix), Path(prefix) / "tessdata"]
    for pattern in TESSDATA_SEARCH:
        folders += [Path(found) for found in sorted(glob.glob(pattern), reverse=True)]
    return folders


def find_tessdata(languages: str, configured: str | None = None) -> Path:
    """The first folder holding a model for every language in ``languages`` (``eng+deu``)."""
    wanted = [code for code in languages.split("+") if code]
    if not wanted:
        raise OcrUnavailable("no OCR language configured (ocr_languages is empty)")
    candidates = tessdata_candidates(configured)
    for folder in candidates:
        if all((folder / f"{code}.traineddata").is_file() for code in wanted):
            return folder
    where = ", ".join(str(folder) for folder in candidates) or "nowhere"
    packages = " ".join(f"tesseract-ocr-{code}" for code in wanted)
    raise OcrUnavailable(
        f"no Tesseract model for {'+'.join(wanted)} found (looked in {where}); "
        f"install it (Debian: apt-get install {packages}) or set ocr_tessdata_dir"
    )


class TesseractEngine:
    """One Tesseract instance per process; calls are serialised (the API is not re-entrant)."""

    def __init__(self, languages: str = "eng", tessdata_dir: str | None = None) -> None:
        try:
            import tesserocr
        except ImportError as exc:
            raise OcrUnavailable(f"Tesseract's Python binding is not installed (pip install tesserocr): {exc}") from exc
        self._tesserocr = tesserocr
        self._folder = find_tessdata(languages, tessdata_dir)
        try:
            self._api = tesserocr.PyTessBaseAPI(path=f"{self._folder}/", lang=languages, psm=tesserocr.PSM.AUTO)
        except RuntimeError as exc:
            raise OcrUnavailable(f"Tesseract could not load {languages} from {self._folder}: {exc}") from exc
        self._osd: object | None = None
        self._osd_missing = not (self._folder / "osd.traineddata").is_file()
        self._lock = threading.Lock()
        version = tesserocr.tesseract_version().split()
        self.name = f"tesseract {version[1]}" if len(version) > 1 else "tesseract"

    def read(self, image: "Image.Image", *, timeout_s: float) -> OcrPage:
        from tesserocr import RIL, iterate_level

        api = self._api
        with self._lock:
            api.SetImage(image)
            try:
                if not api.Recognize(timeout=max(1, int(timeout_s * 1000))):
                    raise OcrTimeout(f"no result within {timeout_s:g}s")
                height = float(image.height or 1)
                paragraphs: list[OcrParagraph] = []
                iterator = api.GetIterator()
                if iterator is not None:
                    for item in iterate_level(iterator, RIL.PARA):
                        try:
                            text = item.GetUTF8Text(RIL.PARA)
                            box = item.BoundingBox(RIL.PARA)
                            confidence = float(item.Confidence(RIL.PARA))
                        except RuntimeError:  # "No text returned": a paragraph of nothing but noise
                            continue
                        if not text or not text.strip() or box is None:
                            continue
                        _x0, y0, _x1, y1 = box
                        paragraphs.append(OcrParagraph(text.strip(), y0 / height, y1 / height, confidence))
                words = [c for c in api.AllWordConfidences() if c >= 0]
            finally:
                api.Clear()
        confidence = sum(words) / len(words) if words and paragraphs else 0.0
        return OcrPage(paragraphs, confidence)

    def detect_rotation(self, image: "Image.Image") -> int:
        if self._osd_missing:
            return 0
        small = image
        if max(image.size) > _OSD_MAX_SIDE:
            small = image.copy()
            small.thumbnail((_OSD_MAX_SIDE, _OSD_MAX_SIDE))
        with self._lock:
            if self._osd is None:
                try:
                    self._osd = self._tesserocr.PyTessBaseAPI(path=f"{self._folder}/", lang="osd", psm=self._tesserocr.PSM.OSD_ONLY)
                except RuntimeError:
                    self._osd_missing = True
                    return 0
            osd = self._osd
            try:
                osd.SetImage(small)
                found = osd.DetectOrientationScript()
            except RuntimeError:  # too little text to tell
                return 0
            finally:
                osd.Clear()
        if not found:
            return 0
        degrees = int(found.get("orient_deg") or 0)
        return degrees if degrees in (90, 180, 270) else 0
