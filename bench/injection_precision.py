"""How often the injection detector (service/query/injection.py) flags ordinary documents.

Real documents hold (next to) no text addressed to an answering system, so every sentence
flagged in them is a false positive: a sentence the extractive generator will never quote.
The figure is the share of sentences flagged, per corpus, against the same-run baseline of a
detector that flags any sentence showing any cue at all.

    python bench/injection_precision.py [--show 10]

Corpora (from ../shared/data, or GROUNDWORK_SHARED_DATA; each is skipped when absent, and
the script exits 2 when none is found): the SciFact abstracts, an 872-page employee handbook (DOCX), a novel full of dialogue, and a
news-style text.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import SCIFACT, SHARED_DATA, machine  # noqa: E402
from service.query.citations import sentence_spans  # noqa: E402
from service.query.injection import judge, lead_in  # noqa: E402

EXAMPLES = SHARED_DATA / "unstructured-example-docs"


def scifact() -> Iterator[str]:
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            yield f"{row.get('title', '')}\n\n{row.get('text', '')}"


def docx_paragraphs(path: Path) -> Iterator[str]:
    import docx

    yield from (p.text for p in docx.Document(str(path)).paragraphs if p.text.strip())


def text_paragraphs(path: Path) -> Iterator[str]:
    yield from (block for block in path.read_text(encoding="utf-8", errors="replace").split("\n\n") if block.strip())


CORPORA = {
    "scifact abstracts": (SCIFACT / "corpus.jsonl", scifact),
    "employee handbook (docx, 872 pages)": (EXAMPLES / "handbook-872p.docx", lambda: docx_paragraphs(EXAMPLES / "handbook-872p.docx")),
    "novel (War and Peace)": (EXAMPLES / "book-war-and-peace-1225p.txt", lambda: text_paragraphs(EXAMPLES / "book-war-and-peace-1225p.txt")),
    "news text (norwich-city.txt)": (EXAMPLES / "norwich-city.txt", lambda: text_paragraphs(EXAMPLES / "norwich-city.txt")),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", type=int, default=5, help="flagged sentences to print per corpus, for inspection")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    present = {name: texts for name, (path, texts) in CORPORA.items() if path.exists()}
    for name, (path, _) in CORPORA.items():
        if name not in present:
            print(f"{name}: skipped, {path} not found", file=sys.stderr)
    if not present:
        print(f"no corpus found under {SHARED_DATA}; set GROUNDWORK_SHARED_DATA to the shared data folder", file=sys.stderr)
        return 2
    print(f"{'corpus':40} {'sentences':>10} {'flagged':>8} {'rate':>9}   {'any cue (baseline)':>20}")
    for name, texts in present.items():
        total = flagged = any_cue = 0
        shown: list[str] = []
        for text in texts():
            for start, end in sentence_spans(text):
                total += 1
                verdict = judge(text[start:end], lead_in(text, start, end))
                any_cue += bool(verdict.cues)
                if verdict.flagged:
                    flagged += 1
                    if len(shown) < args.show:
                        shown.append(f"    {verdict.cues}: {text[start:end][:160]!r}")
        print(f"{name:40} {total:>10,} {flagged:>8,} {flagged / max(total, 1):>9.5%}   {any_cue:>8,} = {any_cue / max(total, 1):.4%}")
        for line in shown:
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
