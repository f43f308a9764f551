"""Server-sent events framing."""

from __future__ import annotations

import json
from typing import Any

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse(event: str | None, payload: Any) -> bytes:
    """One event: an optional ``event:`` line, the payload (JSON unless a string) as ``data:``
    lines, and the blank line that ends it."""
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False, default=str)
    head = f"event: {event}\n" if event else ""
    return (head + "".join(f"data: {line}\n" for line in data.split("\n")) + "\n").encode()
