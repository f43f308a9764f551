"""PDF parsing speed of this checkout against another one (e.g. main), interleaved.

    python bench/pdf_speed.py --baseline-root ../main [--files 3M_2018_10K ADOBE_2022_10K] [--rounds 3]

Each round parses every file once with each checkout's ``parse_file``, in a fresh process whose
CPU time around the call is what counts (imports and model loading are not timed). Medians over
the rounds, as pages per CPU-second and as a ratio to the baseline: on a shared machine wall
time says more about the neighbours than about the parser.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import REPO, SHARED_DATA, machine, median, table  # noqa: E402

DEFAULT_FILES = ["AMCOR_2023Q2_10Q", "BESTBUY_2024Q2_10Q", "MGMRESORTS_2022Q4_EARNINGS", "JOHNSON_JOHNSON_2022Q4_EARNINGS"]
_CHILD = """
import json, sys, time
from pathlib import Path
from ingest.offline import ensure_offline_nlp
ensure_offline_nlp(preload=True)
from ingest.parsing import parse_file
path = Path(sys.argv[1])
started = time.process_time()
document = parse_file(path, max_bytes=1 << 30, max_chars=1 << 30)
print(json.dumps({"cpu": time.process_time() - started, "pages": document.metadata.get("pages"), "chars": len(document.text)}))
"""


def parse_once(root: Path, pdf: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", _CHILD, str(pdf)], cwd=root, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-root", type=Path, required=True, help="checkout to compare with (e.g. main)")
    parser.add_argument("--files", nargs="*", default=DEFAULT_FILES, help="FinanceBench document names")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    pdfs = [SHARED_DATA / "financebench" / "pdfs" / f"{name}.pdf" for name in args.files]
    if not all(pdf.is_file() for pdf in pdfs):
        print(f"FinanceBench PDFs not found under {SHARED_DATA} (the shared data folder is optional; nothing to measure)")
        return
    roots = {"baseline": args.baseline_root.resolve(), "this checkout": REPO}
    cpu: dict[tuple[str, str], list[float]] = {}
    pages: dict[str, int] = {}
    for _ in range(args.rounds):
        for pdf in pdfs:
            for name, root in roots.items():
                result = parse_once(root, pdf)
                cpu.setdefault((name, pdf.stem), []).append(result["cpu"])
                pages[pdf.stem] = result["pages"]
    rows = []
    for pdf in pdfs:
        base = median(cpu[("baseline", pdf.stem)])
        for name in roots:
            ours = median(cpu[(name, pdf.stem)])
            rows.append([pdf.stem, name, pages[pdf.stem], f"{ours:.1f}", f"{pages[pdf.stem] / ours:.2f}", f"{base / ours:.2f}"])
    total_pages = sum(pages.values())
    for name in roots:
        total = sum(median(cpu[(name, pdf.stem)]) for pdf in pdfs)
        rows.append(["all", name, total_pages, f"{total:.1f}", f"{total_pages / total:.2f}",
                     f"{sum(median(cpu[('baseline', p.stem)]) for p in pdfs) / total:.2f}"])
    print(f"machine: {machine()}")
    print(f"baseline {roots['baseline']}; medians of {args.rounds} rounds, CPU seconds of parse_file alone\n")
    print(table(rows, ["file", "parser", "pages", "CPU s", "pages/CPU-s", "speed vs baseline"]))


if __name__ == "__main__":
    main()
