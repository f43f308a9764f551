"""OCR engines and settings compared on real scans and page images, in the same run.

    python bench/ocr.py [--engines tesseract,rapidocr] [--variants default,no-upscale,...] [--rounds 3]

Pages, each with a reference text, all from ``../shared/data`` (GROUNDWORK_SHARED_DATA):

- ``scan``: the scanned PDFs under docling-test-data/ocr/sources, rendered as the product
  renders them (upright, 90, 180 and 270 degrees). Every one of their pages carries the
  sentence of ``ocr_test``'s reference Markdown (its full-page OCR groundtruth); the letter in
  ``sample_with_rotation_mismatch.pdf`` has no reference and is timed only.
- ``rendered``: text-layer PDF pages from docling-test-data/pdf/sources rendered to images,
  a synthetic scan whose reference is the page's own text layer.
- ``image``: the images of unstructured-example-docs/img whose PDF twin in ../pdf has a text
  layer (the reference); the other images are timed only.

Accuracy is bag-of-words recall and precision over case-folded alphanumeric words (word order
and layout are not scored). Speed is pages per second on ONE thread (a parser worker's share:
each worker reads one page at a time), the median over rounds; every engine and variant reads
every page in every round, interleaved, so machine noise hits them alike.

Engines: ``tesseract`` goes through the product's own path (``ingest.ocr``: preparation,
orientation check, confidence filter); the variants change one OCR setting at a time.
``rapidocr`` (``pip install rapidocr-onnxruntime``, not a dependency) reads the unprepared
image with its packaged PP-OCRv4 models and default settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("OMP_THREAD_LIMIT", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import SHARED_DATA, machine, median, table  # noqa: E402

DOCLING = SHARED_DATA / "docling-test-data"
EXAMPLES = SHARED_DATA / "unstructured-example-docs"
# English pages (the default ocr_languages is eng): Korean and Arabic ones would only measure
# that an English model cannot read them.
RENDERED_PAGES = [
    ("2305.03393v1-pg9.pdf", 1), ("amt_handbook_sample.pdf", 1), ("code_and_formula.pdf", 2),
    ("multi_page.pdf", 1), ("picture_classification.pdf", 1), ("redp5110_sampled.pdf", 2),
    ("table_mislabeled_as_picture.pdf", 1),
]
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "no-upscale": {"upscale_to_px": 0},
    "no-orientation": {"orientation_check_below": 0.0},
    "dpi150": {"render_dpi": 150},
    "dpi300": {"render_dpi": 300},
}


@dataclass
class Page:
    group: str
    name: str
    load: Callable[[int], Any]  # render dpi -> PIL image
    reference: str | None


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def words(text: str) -> Counter:
    return Counter(re.findall(r"[0-9a-z]+", text.casefold()))


def recall_precision(found: str, reference: str) -> tuple[float, float]:
    hypothesis, truth = words(found), words(reference)
    common = sum((hypothesis & truth).values())
    return common / max(1, sum(truth.values())), common / max(1, sum(hypothesis.values()))


def text_layer(path: Path, page: int) -> str:
    import pypdfium2

    document = pypdfium2.PdfDocument(str(path))
    try:
        return document[page - 1].get_textpage().get_text_range()
    finally:
        document.close()


def render(path: Path, page: int, dpi: int):
    from index.settings import Settings
    from ingest.page_images import PdfPageRenderer

    with PdfPageRenderer(path, dpi, Settings().ocr_max_image_pixels) as renderer:
        return renderer.render(page)


def open_image(path: Path):
    from ingest.page_images import image_pages

    type_key = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png", "tiff": "tiff", "bmp": "bmp", "heic": "heic"}[path.suffix.lower().lstrip(".")]
    return image_pages(path, type_key)[0][1]()


def pages() -> list[Page]:
    import pypdfium2

    found: list[Page] = []
    sentence_file = next(iter(sorted((DOCLING / "ocr" / "groundtruth").glob("*/full_page/ocr_test.*.md"))), None)
    sentence = sentence_file.read_text(encoding="utf-8") if sentence_file else None
    for path in sorted((DOCLING / "ocr" / "sources").glob("*.pdf")):
        count = len(pypdfium2.PdfDocument(str(path)))
        reference = None if "rotation_mismatch" in path.name else sentence
        for number in range(1, count + 1):
            found.append(Page("scan", f"{path.name}#{number}", lambda dpi, p=path, n=number: render(p, n, dpi), reference))
    for name, number in RENDERED_PAGES:
        path = DOCLING / "pdf" / "sources" / name
        if path.exists():
            found.append(Page("rendered", f"{name}#{number}", lambda dpi, p=path, n=number: render(p, n, dpi), text_layer(path, number)))
    for path in sorted((EXAMPLES / "img").glob("*")):
        twin = EXAMPLES / "pdf" / (path.stem + ".pdf")
        reference = text_layer(twin, 1) if twin.exists() else None
        if reference is not None and len(reference.strip()) < 20:
            reference = None
        found.append(Page("image", path.name, lambda dpi, p=path: open_image(p), reference))
    return found


class TesseractReader:
    def __init__(self, overrides: dict[str, Any]) -> None:
        from ingest.ocr import OcrOptions, load_engine

        self.options = dataclasses.replace(OcrOptions(), **overrides)
        self.engine = load_engine(self.options)

    def __call__(self, image) -> str:
        from ingest.ocr import prepare, read_page

        page = read_page(self.engine, prepare(image, self.options), self.options, timeout_s=self.options.page_timeout_s)
        return "\n".join(paragraph.text for paragraph in page.paragraphs)


class RapidOcrReader:
    def __init__(self, overrides: dict[str, Any]) -> None:
        import numpy as np
        from rapidocr_onnxruntime import RapidOCR

        from ingest.ocr import OcrOptions

        self._np = np
        self.options = dataclasses.replace(OcrOptions(), **overrides)
        self.engine = RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1)

    def __call__(self, image) -> str:
        result, _elapsed = self.engine(self._np.asarray(image.convert("RGB")))
        return "\n".join(line[1] for line in result or [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="tesseract", help="comma-separated: tesseract, rapidocr")
    parser.add_argument("--variants", default="default", help=f"tesseract settings variants: {', '.join(VARIANTS)}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--groups", default="scan,rendered,image")
    parser.add_argument("--show", action="store_true", help="print every page's figures")
    args = parser.parse_args()
    if not (DOCLING / "ocr").is_dir() or not EXAMPLES.is_dir():
        sys.exit(f"{SHARED_DATA} lacks docling-test-data/ocr or unstructured-example-docs; nothing to measure")

    readers: dict[str, Any] = {}
    for engine in args.engines.split(","):
        for variant in (args.variants.split(",") if engine == "tesseract" else ["default"]):
            label = engine if variant == "default" else f"{engine}:{variant}"
            factory = TesseractReader if engine == "tesseract" else RapidOcrReader
            readers[label] = factory(VARIANTS[variant])
    chosen = [page for page in pages() if page.group in args.groups.split(",")]
    print(f"machine: {machine()}\n{len(chosen)} pages; {args.rounds} rounds; one thread per engine\n")

    seconds: dict[str, list[float]] = {label: [] for label in readers}     # per round, all pages
    per_page: dict[tuple[str, str], list[float]] = {}
    scores: dict[tuple[str, str], tuple[float, float]] = {}
    for round_number in range(args.rounds):
        totals = dict.fromkeys(readers, 0.0)
        for page in chosen:
            for label, reader in readers.items():
                image = page.load(reader.options.render_dpi)
                started = time.perf_counter()
                text = reader(image)
                elapsed = time.perf_counter() - started
                totals[label] += elapsed
                per_page.setdefault((label, page.name), []).append(elapsed)
                if round_number == 0 and page.reference:
                    scores[(label, page.name)] = recall_precision(text, page.reference)
        for label, total in totals.items():
            seconds[label].append(total)
        print(f"round {round_number + 1}: " + ", ".join(f"{label} {len(chosen) / total:.2f} pages/s" for label, total in totals.items()))

    rows = []
    for label in readers:
        row: list[Any] = [label, len(chosen) / median(seconds[label])]
        for group in args.groups.split(","):
            scored = [scores[(label, p.name)] for p in chosen if p.group == group and (label, p.name) in scores]
            row += [mean([r for r, _ in scored]), mean([p for _, p in scored])]
        rows.append(row)
    headers = ["engine", "pages/s (median)"]
    for group in args.groups.split(","):
        headers += [f"{group} recall", f"{group} precision"]
    print("\n" + table(rows, headers))
    print("\nrecall/precision: mean over the group's pages with a reference; pages/s: all pages, one thread")

    if args.show:
        for page in chosen:
            cells = []
            for label in readers:
                score = scores.get((label, page.name))
                figures = f"{median(per_page[(label, page.name)]):.2f}s"
                if score:
                    figures += f" r={score[0]:.2f} p={score[1]:.2f}"
                cells.append(f"{label}: {figures}")
            print(f"  {page.group:8s} {page.name:42s} " + " | ".join(cells))


if __name__ == "__main__":
    main()
