"""A quoted table row's figures restated in the unit the question asks (pure).

Financial tables state their scale once, in the caption or header: "(In thousands)", "($ in
millions, except per share data)". A question often asks in another: "What is Netflix's total
current liabilities (in USD millions)?" over a balance sheet in thousands. A quoted row then
holds "5,466,312", which is right but not what was asked, and a reader must find the caption to
know what it means. The extractive answer keeps the row verbatim (the citation checks it) and
adds, outside the quote, each of its figures in the asked unit: "(in millions: As of December
31, 2017: 5,466 | ...)".

Only money scales (thousands, millions, billions) are restated, only when both the asked and the
stated scale are explicit, and never a cell that is a ratio or percentage or a row about shares
or per-share amounts (a caption's "except share and per share data" exempts them).
"""

from __future__ import annotations

import re

from service.query.citations import TABLE_CELL_SEPARATOR

SCALES = {"thousand": 1e3, "thousands": 1e3, "million": 1e6, "millions": 1e6, "billion": 1e9, "billions": 1e9}
_SCALE_WORD = r"(thousands?|millions?|billions?)"
# "(in USD millions)", "Answer in USD billions", "in millions of dollars", "in units of millions".
_ASKED = re.compile(r"\bin\s+(?:units\s+of\s+)?(?:usd\s+|us\$\s*|\$\s*|dollars\s+|u\.s\.\s+dollars\s+)?" + _SCALE_WORD + r"\b",
                    re.IGNORECASE)
# "(In thousands)", "($ in millions, except per share data)", "(Dollars in thousands)",
# "(amounts in millions)": a parenthesised statement; or a line of its own that starts with it
# ("In millions, except per share amounts").
_STATED = re.compile(r"\([^()\n]{0,30}?\bin\s+" + _SCALE_WORD + r"\b[^()\n]{0,80}\)"
                     r"|^\s*(?:\$\s*)?in\s+" + _SCALE_WORD + r"\b", re.IGNORECASE | re.MULTILINE)
_FIGURE = re.compile(r"^(?P<lead>[-$(\s]*)(?P<number>\d{1,3}(?:,\d{3})+|\d+)(?P<fraction>\.\d+)?(?P<close>\)?)$")
_NOT_MONEY = re.compile(r"\b(?:shares?|per\s+share|ratio|margin|percent(?:age)?|employees|stores|days)\b|%", re.IGNORECASE)


def asked_scale(question: str) -> float | None:
    """The money scale the question asks its figures in (1e6 for "in USD millions"), if any."""
    found = _ASKED.search(question)
    return SCALES[found.group(1).lower()] if found else None


def stated_scale(text: str) -> float | None:
    """The scale the last statement in ``text`` gives ("(In thousands)" -> 1e3), if any."""
    last = None
    for last in _STATED.finditer(text):
        pass
    if last is None:
        return None
    return SCALES[(last.group(1) or last.group(2)).lower()]


def _restated(value: str, factor: float) -> str | None:
    """``value`` (a cell's figure as printed) times ``factor``, printed alike; None if it is no
    plain figure. Whole units from 100 up, else three significant digits."""
    found = _FIGURE.match(value.strip())
    if not found:
        return None
    amount = float(found.group("number").replace(",", "") + (found.group("fraction") or "")) * factor
    number = f"{amount:,.0f}" if abs(amount) >= 100 else f"{amount:,.3g}"
    return f"{found.group('lead')}{number}{found.group('close')}"


def restated_row(row: str, stated: float | None, asked: float | None) -> str | None:
    """The row's figures in the asked scale ("As of December 31, 2017: 5,466 | ..."), or None
    when there is nothing to restate: no explicit scale (the table's, ``stated``, or a cell
    header's own "(in thousands)"), the asked one already, a row about shares, per-share amounts
    or ratios, or no cell that is a plain figure."""
    if asked is None:
        return None
    label, separator, cells = row.partition(TABLE_CELL_SEPARATOR)
    if not separator or _NOT_MONEY.search(label):
        return None
    restated = []
    for cell in cells.split(TABLE_CELL_SEPARATOR):
        header, colon, value = cell.rpartition(": ")
        scale = (stated_scale(header) if colon else None) or stated
        if scale is None or scale == asked or _NOT_MONEY.search(cell):
            continue
        figure = _restated(value if colon else cell, scale / asked)
        if figure is not None:
            restated.append(f"{header}: {figure}" if colon else figure)
    return TABLE_CELL_SEPARATOR.join(restated) if restated else None


def scale_word(scale: float) -> str:
    return {1e3: "thousands", 1e6: "millions", 1e9: "billions"}[scale]
