"""Run the shared example-documents folder through the parser pool and tally the outcomes.

    python bench/parse_example_docs.py [--workers 2] [--timeout 120] [--max-bytes N] [--root DIR] [--ocr-engine off]

Defaults come from Settings (``GROUNDWORK_*`` environment variables). Prints how many files
parsed and how many failed for each reason, the files behind each reason, the files whose text
came (partly) from OCR, and the wall time. ``--ocr-engine off`` shows the folder without OCR.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import SHARED_DATA, machine, table  # noqa: E402


def main() -> None:
    from index.settings import Settings

    settings = Settings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=SHARED_DATA / "unstructured-example-docs")
    parser.add_argument("--workers", type=int, default=settings.parse_workers)
    parser.add_argument("--timeout", type=float, default=settings.parse_timeout_s)
    parser.add_argument("--memory-mb", type=int, default=settings.parse_memory_mb)
    parser.add_argument("--max-bytes", type=int, default=settings.max_file_bytes)
    parser.add_argument("--max-chars", type=int, default=settings.max_document_chars)
    parser.add_argument("--ocr-engine", default=settings.ocr_engine, choices=["auto", "tesseract", "off"])
    args = parser.parse_args()
    if not args.root.is_dir():
        sys.exit(f"{args.root} not found (the shared data folder is optional; nothing to measure)")

    from ingest.documents import ParseFailure
    from ingest.ocr import OcrOptions
    from ingest.parser_pool import ParserPool

    files = sorted(path for path in args.root.rglob("*") if path.is_file())
    by_status: dict[str, list[str]] = defaultdict(list)
    ocr_read: list[str] = []
    characters = 0
    ocr = OcrOptions.from_settings(settings.model_copy(update={"ocr_engine": args.ocr_engine}))
    started = time.perf_counter()
    with ParserPool(args.workers, args.timeout, args.memory_mb, args.max_bytes, args.max_chars, parse_options={"ocr": ocr}) as pool:
        for path, outcome in pool.imap_unordered(files):
            name = path.relative_to(args.root).as_posix()
            if isinstance(outcome, ParseFailure):
                by_status[outcome.reason.value].append(f"{name}  ({outcome.detail[:120]})")
            else:
                by_status["parsed"].append(name)
                characters += len(outcome.text)
                if "ocr" in outcome.metadata:
                    report = outcome.metadata["ocr"]
                    ocr_read.append(f"{name}  ({len(report['pages'])} page(s) read, mean confidence {report.get('mean_confidence', '-')})")
    elapsed = time.perf_counter() - started

    print(f"machine: {machine()}")
    print(
        f"{len(files)} files from {args.root}; workers={args.workers} timeout={args.timeout:g}s "
        f"memory={args.memory_mb}MB max_bytes={args.max_bytes} max_chars={args.max_chars} ocr_engine={args.ocr_engine}\n"
    )
    rows = [[status, len(names)] for status, names in sorted(by_status.items(), key=lambda item: (item[0] != "parsed", item[0]))]
    print(table(rows, ["status", "files"]))
    for status, names in sorted(by_status.items()):
        if status == "parsed":
            continue
        print(f"\n{status}:")
        for name in sorted(names):
            print(f"  {name}")
    if ocr_read:
        print(f"\nparsed with OCR text ({len(ocr_read)}):")
        for line in sorted(ocr_read):
            print(f"  {line}")
    print(
        f"\nwall time {elapsed:.1f}s including worker start-up; "
        f"{len(by_status['parsed'])} parsed, {characters:,} characters extracted"
    )


if __name__ == "__main__":
    main()
