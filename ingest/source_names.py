"""How a file path becomes a document's source name, and any text becomes storable.

Linux file names are bytes. Python decodes the bytes that are not UTF-8 into lone surrogates
(``os.fsdecode``'s surrogateescape), which no database, JSON encoder or terminal accepts: one
such name used to stop a whole ingest job at its first write. A name that is valid UTF-8 is
kept as it is; in any other, each undecodable byte is written as ``\\xHH`` (Python's
``backslashreplace``), so ``bad\\xff.md`` names the file whose bytes are ``bad`` 0xFF ``.md``,
and :func:`path_of_source` gives those bytes back. The rendering is deterministic, so a re-run
finds the same document. Its one ambiguity (a valid name that itself spells ``\\xff``) is
caught where it matters: two files of one job with the same source name fail the second.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_ESCAPED_BYTE = re.compile(r"\\x([0-9a-f]{2})")


def storable(text: str) -> str:
    """``text`` unchanged when it is valid Unicode, else with each undecodable byte (a lone
    surrogate from surrogateescape) written as ``\\xHH`` and any other lone surrogate as
    ``\\udXXX``: what databases, JSON and logs can take."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") if _only_escaped_bytes(text) \
            else text.encode("utf-8", "backslashreplace").decode("utf-8")


def _only_escaped_bytes(text: str) -> bool:
    """Whether every surrogate in ``text`` stands for an undecodable byte (U+DC80..U+DCFF)."""
    return all(not 0xD800 <= ord(ch) <= 0xDFFF or 0xDC80 <= ord(ch) <= 0xDCFF for ch in text)


def source_name(path: Path | str) -> str:
    """The document source for a file path (see the module note)."""
    return storable(os.fspath(path))


def path_of_source(source: str) -> Path:
    """The file path a source name was made from: ``\\xHH`` escapes become the bytes they stand
    for when the source holds any, and the name is taken as it is otherwise."""
    if not _ESCAPED_BYTE.search(source):
        return Path(source)
    raw = _ESCAPED_BYTE.sub(lambda m: chr(0xDC00 + int(m.group(1), 16)) if int(m.group(1), 16) >= 0x80 else m.group(0), source)
    return Path(raw)
