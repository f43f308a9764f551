"""Table fidelity and speed of PDF text extraction candidates, on real filings and docling's set.

    python bench/pdf_tables.py [--candidates layout,boxes,plumber-lines,plumber-text,plumber-rows] [--limit N]

Fidelity is measured as label-value adjacency: the share of (row label, cell value) pairs of a
reference table that come out in one text unit (a table row line, or a paragraph) of the
candidate's output. References:
  - FinanceBench evidence pages (evidence_text_full_page): a text line followed by lines of
    figures gives (label, figure) pairs; only pages with such runs count;
  - docling-test-data/pdf: the Markdown tables of groundtruth/*.md for the sources present,
    neighbouring cells of each body row (its tables are not all label-and-figures tables).
Speed is CPU seconds per page for the whole candidate (reading the PDF included), median of
--rounds rounds, so a busy neighbour inflates it less than wall time.

Candidates: ``layout`` the product's PDF path (pdfminer boxes + ingest.pdf_layout tables);
``boxes`` pdfminer text boxes as paragraphs (the PDF path before tables); ``plumber-lines`` and
``plumber-text`` pdfplumber's table finder with ruling-line and text-alignment strategies, the
rest of the page as pdfplumber text lines; ``plumber-rows`` pdfplumber's text lines alone.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import SHARED_DATA, machine, median, table  # noqa: E402

FINANCEBENCH = SHARED_DATA / "financebench"
DOCLING = SHARED_DATA / "docling-test-data" / "pdf"
_FIGURE_LINE = re.compile(r"^[\s$€£()%,.\d—–-]*\d[\s$€£()%,.\d—–-]*$")
_LEADERS = re.compile(r"(\s?\.){3,}")


_PUNCTUATION = re.compile(r"[^\w\s,.()%/&+-]")


def normalise(text: str) -> str:
    """Case, spacing, dot leaders, currency signs and typographic punctuation do not count."""
    text = _LEADERS.sub(" ", text.replace("\\_", "_"))
    return " ".join(_PUNCTUATION.sub(" ", text.casefold()).split())


def financebench_pairs(full_page: str) -> set[tuple[str, str]]:
    """(label, figure) pairs of a page's text: figures on the lines after a text line."""
    pairs: set[tuple[str, str]] = set()
    label = None
    for line in full_page.split("\n"):
        line = line.strip()
        if not line:
            continue
        if _FIGURE_LINE.match(line):
            if label:
                for token in line.replace("$", " ").split():
                    if any(c.isdigit() for c in token):
                        pairs.add((normalise(label), normalise(token)))
        else:
            label = line
    return {(label, value) for label, value in pairs if len(label) >= 3}


def markdown_pairs(markdown: str) -> set[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    in_table = False
    header_seen = False
    for line in markdown.split("\n"):
        if not line.startswith("|"):
            in_table = header_seen = False
            continue
        cells = [normalise(cell) for cell in line.strip().strip("|").split("|")]
        if all(set(cell) <= set("- :") for cell in cells):
            header_seen = True
            continue
        if not in_table:
            in_table = True  # the header row
            continue
        if not header_seen:
            continue
        filled = [cell.strip(" .") for cell in cells if cell.strip(" .")]
        for left, right in zip(filled, filled[1:]):  # neighbouring cells of a row
            if left != right:
                pairs.add((left[:40], right[:40]))
    return pairs


def recall(pairs: set[tuple[str, str]], units: list[str]) -> tuple[int, int]:
    normalised = [normalise(unit) for unit in units]
    found = 0
    for label, value in pairs:
        pattern = re.compile(rf"(?<![\d.,]){re.escape(value)}(?![\d])") if value[:1].isdigit() or value[:1] == "(" else None
        for unit in normalised:
            if label in unit and (pattern.search(unit) if pattern else value in unit):
                found += 1
                break
    return found, len(pairs)


# --- candidates: (path, zero-based pages) -> text units per page -----------------------------------


def _pdfminer_pages(path: Path, pages: set[int]):
    from pdfminer.converter import PDFPageAggregator
    from pdfminer.layout import LAParams, LTFigure, LTLine, LTRect, LTTextBox
    from pdfminer.pdfdocument import PDFDocument
    from pdfminer.pdfinterp import PDFPageInterpreter, PDFResourceManager
    from pdfminer.pdfpage import PDFPage
    from pdfminer.pdfparser import PDFParser

    def text_boxes(container):
        for item in container:
            if isinstance(item, LTTextBox):
                yield item
            elif isinstance(item, LTFigure):
                yield from text_boxes(item)

    def graphics(container):
        for item in container:
            if isinstance(item, (LTLine, LTRect)):
                yield item
            elif isinstance(item, LTFigure):
                yield from graphics(item)

    with path.open("rb") as stream:
        document = PDFDocument(PDFParser(stream))
        resources = PDFResourceManager(caching=True)
        device = PDFPageAggregator(resources, laparams=LAParams(all_texts=True))
        interpreter = PDFPageInterpreter(resources, device)
        for number, page in enumerate(PDFPage.create_pages(document)):
            if number in pages:
                interpreter.process_page(page)
                layout = device.get_result()
                yield number, list(text_boxes(layout)), layout.height or 1.0, list(graphics(layout))


def run_layout(path: Path, pages: set[int]) -> dict[int, list[str]]:
    from ingest.parsing import page_boxes

    out = {}
    for number, boxes, height, graphics in _pdfminer_pages(path, pages):
        units = []
        for box in page_boxes(boxes, height, number + 1, graphics):
            units.extend(box.text.split("\n") if box.table_head_lines is not None else [box.text])
        out[number] = units
    return out


def run_boxes(path: Path, pages: set[int]) -> dict[int, list[str]]:
    from ingest.parsing import pdf_box_paragraphs

    return {number: [p for box in boxes for p in pdf_box_paragraphs(box.get_text())] for number, boxes, _, _ in _pdfminer_pages(path, pages)}


def _plumber(strategy: str | None):
    def run(path: Path, pages: set[int]) -> dict[int, list[str]]:
        import pdfplumber

        out = {}
        with pdfplumber.open(str(path)) as pdf:
            for number in sorted(pages):
                if number >= len(pdf.pages):
                    continue
                page = pdf.pages[number]
                units: list[str] = []
                rest = page
                if strategy is not None:
                    found = page.find_tables({"vertical_strategy": strategy, "horizontal_strategy": strategy})
                    for found_table in found:
                        for row in found_table.extract():
                            cells = [" ".join((cell or "").split()) for cell in row]
                            if any(cells):
                                units.append(" | ".join(cells))
                    boxes = [t.bbox for t in found]

                    def outside(obj, boxes=boxes):
                        return not any(b[0] <= obj.get("x0", 0) <= b[2] and b[1] <= obj.get("top", 0) <= b[3] for b in boxes)

                    rest = page.filter(outside)
                units.extend(line for line in (rest.extract_text() or "").split("\n") if line.strip())
                out[number] = units
                page.close()
        return out

    return run


CANDIDATES = {
    "layout": run_layout,
    "boxes": run_boxes,
    "plumber-lines": _plumber("lines"),
    "plumber-text": _plumber("text"),
    "plumber-rows": _plumber(None),
}


def references(limit: int | None) -> list[tuple[str, Path, set[int], set[tuple[str, str]]]]:
    """(set name, pdf, zero-based pages, pairs) for every reference with pairs."""
    refs = []
    questions = FINANCEBENCH / "financebench_open_source.subset_with_pdfs.jsonl"
    if questions.is_file():
        by_page: dict[tuple[str, int], str] = {}
        for line in questions.read_text(encoding="utf-8").splitlines():
            for evidence in json.loads(line)["evidence"]:
                by_page[(evidence["doc_name"], evidence["evidence_page_num"])] = evidence["evidence_text_full_page"]
        for (doc, page), text in sorted(by_page.items()):
            pairs = financebench_pairs(text)
            if len(pairs) >= 3:
                refs.append(("financebench", FINANCEBENCH / "pdfs" / f"{doc}.pdf", {page}, pairs))
    for truth in sorted((DOCLING / "groundtruth").glob("*.md")):
        source = DOCLING / "sources" / f"{truth.stem}.pdf"
        pairs = markdown_pairs(truth.read_text(encoding="utf-8"))
        if source.is_file() and pairs:
            import pikepdf

            with pikepdf.open(source) as pdf:
                pages = set(range(len(pdf.pages)))
            refs.append(("docling", source, pages, pairs))
    return refs[:limit] if limit else refs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--rounds", type=int, default=1, help="timing rounds (median CPU s/page)")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--sets", default="financebench,docling", help="reference sets to use")
    parser.add_argument("--show-misses", type=int, default=0, help="print up to N missed pairs per candidate")
    args = parser.parse_args()
    wanted = set(args.sets.split(","))
    refs = [ref for ref in references(None) if ref[0] in wanted][: args.limit or None]
    if not refs:
        print(f"no references under {SHARED_DATA} (the shared data folder is optional; nothing to measure)")
        return
    names = [name.strip() for name in args.candidates.split(",") if name.strip()]
    found: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    per_ref: dict[tuple[str, str], list[float]] = defaultdict(list)
    seconds: dict[str, list[float]] = defaultdict(list)
    pages_done = sum(len(pages) for _, _, pages, _ in refs)
    misses: dict[str, list[str]] = defaultdict(list)
    for name in names:
        run = CANDIDATES[name]
        for _ in range(args.rounds):
            started = time.process_time()
            outputs = [run(path, pages) for _, path, pages, _ in refs]
            seconds[name].append((time.process_time() - started) / pages_done)
        for (set_name, path, pages, pairs), output in zip(refs, outputs):
            units = [unit for number in sorted(output) for unit in output[number]]
            hit, total = recall(pairs, units)
            found[(name, set_name)][0] += hit
            found[(name, set_name)][1] += total
            per_ref[(name, set_name)].append(hit / total)
            if args.show_misses and len(misses[name]) < args.show_misses:
                hits_set = {pair for pair in pairs if recall({pair}, units)[0]}
                misses[name].extend(f"{path.stem}: {pair}" for pair in sorted(pairs - hits_set)[: args.show_misses])
    sets = sorted({set_name for set_name, *_ in refs})
    rows = []
    for name in names:
        row = [name]
        for set_name in sets:
            hit, total = found[(name, set_name)]
            row += [f"{hit / total:.3f}", f"{median(per_ref[(name, set_name)]):.3f}"]
        row += [f"{median(seconds[name]):.3f}", f"{1 / median(seconds[name]):.1f}"]
        rows.append(row)
    headers = ["candidate"]
    for set_name in sets:
        n = sum(1 for s, *_ in refs if s == set_name)
        pairs_n = sum(len(p) for s, _, _, p in refs if s == set_name)
        headers += [f"{set_name} pairs ({pairs_n} in {n} refs)", f"{set_name} median per ref"]
    headers += ["CPU s/page", "pages/CPU-s"]
    print(f"machine: {machine()}")
    print(f"{pages_done} pages; label-value pairs found in one text unit (row line or paragraph)\n")
    print(table(rows, headers))
    for name, lines in misses.items():
        print(f"\n{name} misses:")
        for line in lines:
            print(f"  {line}")


if __name__ == "__main__":
    main()
