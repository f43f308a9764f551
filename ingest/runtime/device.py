"""Where a model runs: the device, and the backend that runs it there.

One policy for the embedder and the reranker: a GPU when torch sees one (fp16 torch there is
already fast), else the CPU, where an exported graph beats torch (OpenVINO: 4.2x for the
embedder, 3.2x for the reranker; bench/embed.py, bench/rerank.py).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

# The packages each backend needs beyond torch; int8 on OpenVINO also needs nncf.
BACKEND_PACKAGES: dict[str, tuple[str, ...]] = {"torch": (), "onnx": ("onnxruntime", "onnx"), "openvino": ("openvino",)}
INSTALL_HINTS: dict[str, str] = {"onnx": "pip install onnxruntime onnx", "openvino": "pip install openvino (and nncf for int8)"}

# Backends that run exported graphs, and only on the CPU.
CPU_ONLY_BACKENDS = frozenset({"onnx", "openvino"})


def required_packages(backend: str, quantization: str = "none") -> tuple[str, ...]:
    extra = ("nncf",) if backend == "openvino" and quantization == "int8" else ()
    return BACKEND_PACKAGES.get(backend, ()) + extra


def backend_installed(backend: str, quantization: str = "none") -> bool:
    """Whether the packages ``backend`` needs are importable (checked without importing them)."""
    return all(importlib.util.find_spec(name) is not None for name in required_packages(backend, quantization))


def on_gpu(device: str) -> bool:
    return device.startswith("cuda")


def pick_device(requested: str | None = None, backend: str = "auto") -> str:
    """``requested`` when given; the CPU for a CPU-only backend or without torch; else CUDA
    when torch sees a GPU."""
    if requested:
        return requested
    if backend in CPU_ONLY_BACKENDS or importlib.util.find_spec("torch") is None:
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_backend(requested: str, device: str, cpu_preference: Sequence[str] = ("openvino",), quantization: str = "none") -> str:
    """``requested`` unless it is ``auto``: then torch on a GPU, and on a CPU the first backend
    of ``cpu_preference`` whose packages are installed, else torch."""
    if requested != "auto":
        return requested
    if on_gpu(device):
        return "torch"
    return next((name for name in cpu_preference if backend_installed(name, quantization)), "torch")
