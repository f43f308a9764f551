"""A quoted table row's change between two periods, for a question that asks for one (pure).

"What is Amazon's year-over-year change in revenue from FY2016 to FY2017?" is answered by a
row ("Total net sales | 2015: 107,006 | 2016: 135,987 | 2017: 177,866"), but the figure asked
for is not in it: it is the difference of two of its cells. The extractive answer keeps the row
verbatim (the citation checks it) and adds, outside the quote, what follows from it by
arithmetic alone: "(2016 to 2017: +41,879, +30.8%)"; for two percentages, the difference in
points. The periods are the two years the question names when the row has a cell under each,
else the row's two latest years. Nothing is added when the question asks no change, or a
row's periods cannot be told apart by year (a quarter beside a half year of the same year).
"""

from __future__ import annotations

import re

from service.query.citations import TABLE_CELL_SEPARATOR, YEAR, content_terms

# The words that ask for a comparison of two periods' figures.
_ASKS_CHANGE = re.compile(
    r"\b(?:chang(?:e|ed|es)|growth|grow|grew|increas(?:e|ed)|decreas(?:e|ed)|declin(?:e|ed)|drop(?:ped)?|"
    r"fell|rose|trend(?:ed)?|year[- ]over[- ]year|yoy|y/y|improv(?:e|ed|ing)|compared?)(?:\s+rate)?\b", re.IGNORECASE)
_VALUE = re.compile(r"^[-$(\s]*(?P<number>\d{1,3}(?:,\d{3})+|\d+)(?P<fraction>\.\d+)?\s*(?P<percent>%)?\s*\)?\s*(?P<percent_after>%)?$")
_CHANGE_COLUMN = re.compile(r"\bchange\b|%|\bpercent", re.IGNORECASE)


def asks_change(question: str) -> bool:
    return bool(_ASKS_CHANGE.search(question))


def comparison_terms(question: str) -> set[str]:
    """The question's words that ask for the comparison ("year-over-year change", "growth
    rate"): a row states each period's figure, never the comparison, so they do not count
    against a row's support (prose that says "grew 31%" still matches them)."""
    return set(content_terms(" ".join(found.group() for found in _ASKS_CHANGE.finditer(question))))


def _value(text: str) -> tuple[float, bool] | None:
    """A cell's number (negative in brackets or with a minus) and whether it is a percentage."""
    found = _VALUE.match(text.strip())
    if not found:
        return None
    number = float(found.group("number").replace(",", "") + (found.group("fraction") or ""))
    negative = "(" in text or text.strip().lstrip("$ ").startswith("-")
    return (-number if negative else number), bool(found.group("percent") or found.group("percent_after"))


def _decimals(text: str) -> int:
    fraction = re.search(r"\.(\d+)", text)
    return len(fraction.group(1)) if fraction else 0


def row_change(row: str, question_years: list[str]) -> str | None:
    """"2016 to 2017: +41,879, +30.8%" for the row's cells under two years, or None."""
    label, separator, cells = row.partition(TABLE_CELL_SEPARATOR)
    if not separator:
        return None
    by_year: dict[str, list[tuple[float, bool, str]]] = {}
    for cell in cells.split(TABLE_CELL_SEPARATOR):
        header, colon, raw = cell.rpartition(": ")
        if not colon or _CHANGE_COLUMN.search(header):
            continue
        years = set(YEAR.findall(header))
        value = _value(raw)
        if len(years) != 1 or value is None:
            continue
        by_year.setdefault(years.pop(), []).append((*value, raw))
    named = [year for year in dict.fromkeys(question_years) if year in by_year]
    pair = sorted(named)[-2:] if len(named) >= 2 else sorted(by_year)[-2:]
    if len(pair) < 2 or any(len(by_year[year]) != 1 for year in pair):
        return None
    (before, before_percent, before_raw), (after, after_percent, after_raw) = by_year[pair[0]][0], by_year[pair[1]][0]
    if before_percent != after_percent:
        return None
    decimals = max(_decimals(before_raw), _decimals(after_raw))
    difference = after - before
    if before_percent:
        return f"{pair[0]} to {pair[1]}: {difference:+,.{max(decimals, 1)}f} points"
    relative = f", {100 * difference / abs(before):+.1f}%" if before else ""
    return f"{pair[0]} to {pair[1]}: {difference:+,.{decimals}f}{relative}"
