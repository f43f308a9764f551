"""Query expansion with synonym groups: the words a question uses, and the words documents use.

Analysts and employees ask in their own words ("capex", "cost of goods sold", "income
statement"), and a filing says "purchases of property and equipment", "cost of revenue",
"consolidated statements of operations". Neither BM25 nor a small embedding model connects
them, so the page with the answer ranks below pages that repeat the question's words. Search
engines answer this with a synonym list (Solr's ``synonyms.txt``, Elasticsearch's synonym
filter, Vespa's query rewriting); this is ours, applied to the keyword half of a search only:
the question's own words keep their weight, the expansion adds the other phrasings' words once.

The file format is Solr's equivalence lines: phrases separated by commas, one group per line,
``#`` starts a comment. Matching is on whole words, case-insensitive, after folding "&" to
"and" and dropping punctuation, so "PP&E" and "pp and e" are one phrase.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

BUILTIN = "business"
BUILTIN_FILE = Path(__file__).with_name("synonyms_business.txt")

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> tuple[str, ...]:
    """Lower-cased words, "&" read as "and" (so "PP&E" is "pp and e", "S&P" is "s and p")."""
    return tuple(_WORD.findall(text.lower().replace("&", " and ")))


@dataclass(frozen=True)
class SynonymGroups:
    """Equivalence groups of phrases (each a tuple of words), indexed by first word."""

    groups: tuple[tuple[tuple[str, ...], ...], ...]

    @classmethod
    def parse(cls, lines: Iterable[str]) -> SynonymGroups:
        groups = []
        for number, line in enumerate(lines, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            phrases = tuple(dict.fromkeys(p for p in (words(part) for part in line.split(",")) if p))
            if len(phrases) < 2:
                raise ValueError(f"synonym line {number}: a group needs two phrases or more: {line!r}")
            groups.append(phrases)
        return cls(tuple(groups))

    def expansion(self, text: str) -> str:
        """The words of every other phrase of each group a phrase of ``text`` belongs to, each
        word once and none the question already has; "" when no group matches."""
        asked = words(text)
        present = set(asked)
        added: dict[str, None] = {}
        for group in self.groups:
            if any(contains_phrase(asked, phrase) for phrase in group):
                for phrase in group:
                    for word in phrase:
                        if word not in present:
                            added[word] = None
        return " ".join(added)


def contains_phrase(haystack: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    """Whether the words of ``phrase`` occur in ``haystack`` one after another."""
    n = len(phrase)
    if n == 1:
        return phrase[0] in haystack
    first = phrase[0]
    return any(haystack[i : i + n] == phrase for i, word in enumerate(haystack[: len(haystack) - n + 1]) if word == first)


def read_list(source: str, builtin: Path, setting: str) -> list[str] | None:
    """The lines of the list a setting names: "business" (``builtin``, shipped with the
    product), "off" (None), or a path to a file; an unreadable file is a ValueError naming
    ``setting``. Shared by the synonym and section lists (``service.query.sections``)."""
    if source in ("", "off"):
        return None
    path = builtin if source == BUILTIN else Path(source)
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"{setting}: cannot read {path} ({exc.strerror or exc})") from exc


@lru_cache(maxsize=8)
def load(source: str) -> SynonymGroups | None:
    """The groups named by the ``query_synonyms`` setting (``read_list``)."""
    lines = read_list(source, BUILTIN_FILE, "query_synonyms")
    return SynonymGroups.parse(lines) if lines is not None else None
