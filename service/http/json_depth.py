"""How deeply a JSON text nests, measured on its raw bytes before any decoder sees them.

Decoders recurse once per level: a body of 100,000 ``[`` ends in a RecursionError (msgspec,
``json``) or worse, and nothing Groundwork stores or filters on needs more than a few levels.
So bodies are checked first, against ``max_json_depth``, in linear time and without building
anything: brackets are counted outside strings. Most bodies have fewer brackets in all than
the limit, and are passed after two byte counts.
"""

from __future__ import annotations

import re

import numpy as np

from index.errors import InputRejected

# A JSON string, also one left unterminated (it runs to the end). Possessive: linear time on
# any input, quotes and backslashes included.
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_OPENERS = (ord("["), ord("{"))
_CLOSERS = (ord("]"), ord("}"))


def json_depth(raw: bytes | str) -> int:
    """The deepest nesting of arrays and objects in ``raw``, brackets inside strings not
    counted. Exact for valid JSON; for anything else an estimate the decoder will reject anyway."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    if not (data.count(b"[") or data.count(b"{")):
        return 0
    outside = np.frombuffer(_STRING.sub(b"", data), dtype=np.uint8)
    steps = np.isin(outside, _OPENERS).astype(np.int32) - np.isin(outside, _CLOSERS).astype(np.int32)
    return int(np.cumsum(steps).max(initial=0))


def check_json_depth(raw: bytes | str, limit: int) -> None:
    """Raise ``InputRejected`` (code ``too_deeply_nested``) when ``raw`` nests deeper than ``limit``."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if data.count(b"[") + data.count(b"{") <= limit:
        return  # not enough brackets to nest that deep
    depth = json_depth(data)
    if depth > limit:
        raise InputRejected(f"the JSON is nested {depth} levels deep; the limit is {limit} (max_json_depth)",
                            code="too_deeply_nested")
