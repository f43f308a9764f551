"""Shared helpers for the benchmark scripts: machine description and robust statistics."""

from __future__ import annotations

import os
import platform
import statistics
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# GROUNDWORK_SHARED_DATA points elsewhere when the corpora are not beside the checkout.
SHARED_DATA = Path(os.environ.get("GROUNDWORK_SHARED_DATA") or REPO / ".." / "shared" / "data").resolve()
SCIFACT = SHARED_DATA / "scifact-train"


def machine() -> str:
    cpu, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    gpu = "none"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    except Exception:
        pass
    return f"{os.cpu_count()} cores, {cpu}{_vector_units(flags)}, GPU: {gpu}, Python {platform.python_version()}"


def _vector_units(flags: set[str]) -> str:
    """The CPU's widest vector and bf16 support: CPU embedding speed rests on them (OpenVINO runs
    the model in bf16 where the CPU has it: about 4x plain fp32 encode there, 1.2x on AVX2 alone),
    and machines called the same can differ."""
    widest = next((name for name in ("avx512f", "avx2", "avx") if name in flags), "")
    if not widest:
        return ""
    bf16 = "bf16" if flags & {"avx512_bf16", "amx_bf16"} else "no bf16"
    return f" ({widest.replace('avx512f', 'avx512')}, {bf16})"


def median(values) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values, q: float) -> float:
    data = sorted(values)
    if not data:
        return float("nan")
    pos = (len(data) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def table(rows: list[list], headers: list[str]) -> str:
    cells = [[str(h) for h in headers]] + [[f"{c:.3f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
