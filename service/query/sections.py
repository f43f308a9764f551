"""Sections a question names: "according to the income statement", "in the balance sheet".

A question that names the part of a document it wants ("based on the cash flow statement")
says where the evidence is, but in words that are rarely the document's own: a filing titles
that table "CONSOLIDATED STATEMENTS OF CASH FLOWS", and "statement", "cash" and "flows" are on
every page of it, so neither BM25 nor a small embedding model singles the table out. Matching
the named phrase's group against a passage's *label* (its heading path, a table's caption and
header), not its body, does. The groups come from a file in Solr's synonyms format (the shipped
``sections_business.txt``, or the operator's). Pure logic; ``service.query.retrieval`` applies
it to the fused candidates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from service.query.synonyms import SynonymGroups, contains_phrase, read_list, words

BUILTIN_FILE = Path(__file__).with_name("sections_business.txt")
# How much of a table piece's own text can be its caption and header (the first piece of a
# split table holds them in its text; later pieces hold them in their context).
LABEL_CHARS = 240


def folded(text_words: Sequence[str]) -> tuple[str, ...]:
    """Plurals folded, so "INCOME STATEMENTS" names the "income statement" ("sales",
    "loss" and other words ending in -ss or short ones stay as they are)."""
    return tuple(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") and w != "sales" else w
                 for w in text_words)


@dataclass(frozen=True)
class SectionNames:
    """Groups of phrases naming one kind of section, plurals folded. ``asks`` holds, per group,
    further phrases that name it in a question only: a metric computed from that section
    ("quick ratio" from the balance sheet) names it, but a passage labelled "quick ratio" is
    not the balance sheet."""

    groups: tuple[tuple[tuple[str, ...], ...], ...]
    asks: tuple[tuple[tuple[str, ...], ...], ...] = ()

    @classmethod
    def from_synonyms(cls, groups: SynonymGroups) -> SectionNames:
        return cls(tuple(tuple(dict.fromkeys(folded(phrase) for phrase in group)) for group in groups.groups))

    @classmethod
    def parse(cls, lines: Iterable[str]) -> SectionNames:
        """Solr's synonyms format: ``a, b, c`` is a group; ``x, y => a`` adds x and y as
        question-only phrases of the group holding ``a`` (declared on an earlier line)."""
        plain: list[str] = []
        mapped: list[tuple[int, str, str]] = []
        for number, line in enumerate(lines, 1):
            text = line.split("#", 1)[0].strip()
            if "=>" in text:
                left, right = text.split("=>", 1)
                mapped.append((number, left, right))
            elif text:
                plain.append(text)
        names = cls.from_synonyms(SynonymGroups.parse(plain))
        asks: list[list[tuple[str, ...]]] = [[] for _ in names.groups]
        for number, left, right in mapped:
            target = folded(words(right.split(",")[0]))
            group = next((g for g, phrases in enumerate(names.groups) if target in phrases), None)
            if group is None:
                raise ValueError(f"section line {number}: {right.strip()!r} is not a phrase of a group above")
            asks[group].extend(p for p in (folded(words(part)) for part in left.split(",")) if p)
        return cls(names.groups, tuple(tuple(dict.fromkeys(a)) for a in asks))

    def named_by(self, question: str) -> frozenset[int]:
        """The groups a phrase of ``question`` belongs to or asks for (by index)."""
        asked = folded(words(question))
        asks = self.asks or ((),) * len(self.groups)
        return frozenset(g for g, (group, more) in enumerate(zip(self.groups, asks))
                         if any(contains_phrase(asked, p) for p in (*group, *more)))

    def labelled(self, label: str) -> frozenset[int]:
        """The groups a phrase of ``label`` (``label_text``) belongs to. Spaces do not count
        here: a PDF's letter-spaced title reads "Consolidated Balance Shee t"."""
        held = "".join(folded(words(label)))
        return frozenset(g for g, group in enumerate(self.groups) if any("".join(p) in held for p in group))


def label_text(heading_path: Sequence[str], context: str, kind: str, text: str) -> str:
    """What names a passage's place: its headings and, for a table, its caption and header
    (in its context when it is a later piece of a split table, else at the head of its text)."""
    parts = list(heading_path)
    if context:
        parts.append(context[:LABEL_CHARS])
    if kind == "table":
        parts.append(text[:LABEL_CHARS])
    return "\n".join(parts)


@lru_cache(maxsize=8)
def load(source: str) -> SectionNames | None:
    """The groups named by the ``section_names`` setting (``synonyms.read_list``)."""
    lines = read_list(source, BUILTIN_FILE, "section_names")
    return SectionNames.parse(lines) if lines is not None else None
