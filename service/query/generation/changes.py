"""A quoted table row's change between two periods, for a question that asks for one (pure).

"What is Amazon's year-over-year change in revenue from FY2016 to FY2017?" is answered by a
row ("Total net sales | 2015: 107,006 | 2016: 135,987 | 2017: 177,866"), but the figure asked
for is not in it: it is the difference of two of its cells. The extractive answer keeps the row
verbatim (the citation checks it) and adds, outside the quote, what follows from it by
arithmetic alone: "(2016 to 2017: +41,879, +30.8%)"; for two percentages, the difference in
points. The periods are the two years the question names when the row has one cell under
each, else the row's two latest periods (by full date where the headers give one). Nothing is
added when the question asks no change, or when a row's two latest periods cannot be told
apart (a quarter beside a half year ending the same day).
"""

from __future__ import annotations

import re
from typing import NamedTuple

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


_MONTHS = {name: number for number, names in enumerate(
    ("jan january", "feb february", "mar march", "apr april", "may", "jun june", "jul july", "aug august",
     "sep sept september", "oct october", "nov november", "dec december"), 1) for name in names.split()}
_DATE = re.compile(r"\b([A-Za-z]{3,9})\.?\s+(\d{1,2}),?\s+((?:19|20)\d\d)\b")


def _period(header: str) -> tuple[tuple[int, int, int], str] | None:
    """A column header's period as a sortable (year, month, day) and its words: the full date
    when the header gives one ("July 29, 2023"), else its one year (month and day 0)."""
    dates = [(int(y), _MONTHS[m.lower()], int(d), f"{m} {d}, {y}") for m, d, y in _DATE.findall(header) if m.lower() in _MONTHS]
    if len(dates) == 1:
        year, month, day, words = dates[0]
        return (year, month, day), words
    years = set(YEAR.findall(header))
    if len(years) == 1:
        year = years.pop()
        return (int(year), 0, 0), year
    return None


class _Column(NamedTuple):
    period: tuple[int, int, int]  # (year, month, day), sortable
    words: str  # how the header says the period: "July 29, 2023", or "2023"
    value: float
    percent: bool
    raw: str  # the value as printed (its decimals set the change's)


def row_change(row: str, question_years: list[str]) -> str | None:
    """"2016 to 2017: +41,879, +30.8%" for two of the row's cells, or None.

    The two cells are those under the two years the question names, when each has one cell;
    else the row's two latest periods, by full date where the headers give one ("January 28,
    2023 to July 29, 2023": a quarter's balance against the fiscal year's end)."""
    label, separator, cells = row.partition(TABLE_CELL_SEPARATOR)
    if not separator:
        return None
    columns: list[_Column] = []
    for cell in cells.split(TABLE_CELL_SEPARATOR):
        header, colon, raw = cell.rpartition(": ")
        if not colon or _CHANGE_COLUMN.search(header):
            continue
        period, value = _period(header), _value(raw)
        if period is not None and value is not None:
            columns.append(_Column(*period, *value, raw))
    by_year: dict[int, list[_Column]] = {}
    for column in columns:
        by_year.setdefault(column.period[0], []).append(column)
    named = sorted({int(year) for year in question_years} & {year for year, found in by_year.items() if len(found) == 1})
    if len(named) >= 2:
        before, after = (by_year[year][0] for year in named[-2:])
    else:
        latest = sorted(columns, key=lambda column: column.period)[-2:]
        if len(latest) < 2 or sum(column.period == latest[0].period for column in columns) > 1 \
                or latest[0].period == latest[1].period:
            return None
        before, after = latest
    if before.percent != after.percent:
        return None
    decimals = max(_decimals(before.raw), _decimals(after.raw))
    difference = after.value - before.value
    # Years say it when they differ; a quarter against its fiscal year's end needs the dates.
    if before.period[0] != after.period[0]:
        span = f"{before.period[0]} to {after.period[0]}"
    else:
        span = f"{before.words} to {after.words}"
    if before.percent:
        return f"{span}: {difference:+,.{max(decimals, 1)}f} points"
    relative = f", {100 * difference / abs(before.value):+.1f}%" if before.value else ""
    return f"{span}: {difference:+,.{decimals}f}{relative}"
