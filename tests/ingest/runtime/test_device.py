"""One device and backend policy for every model: fp16 torch on a GPU, an exported graph on a CPU."""

from __future__ import annotations

import importlib.util

import pytest

from ingest.runtime import device as runtime_device
from ingest.runtime.device import backend_installed, pick_backend, pick_device, required_packages


def _installed(monkeypatch, *names: str) -> None:
    real = importlib.util.find_spec
    optional = {"openvino", "onnxruntime", "onnx", "nncf"}
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: (object() if name in names else None) if name in optional else real(name, *a))


@pytest.mark.parametrize(
    ("requested", "device", "openvino_installed", "expected"),
    [("auto", "cpu", True, "openvino"), ("auto", "cpu", False, "torch"), ("auto", "cuda", True, "torch"),
     ("torch", "cpu", True, "torch"), ("openvino", "cuda:0", True, "openvino")],
)
def test_reranker_backend_choice(monkeypatch, requested, device, openvino_installed, expected) -> None:
    _installed(monkeypatch, *(["openvino"] if openvino_installed else []))
    assert pick_backend(requested, device) == expected


def test_cpu_preference_is_taken_in_order(monkeypatch) -> None:
    _installed(monkeypatch, "onnxruntime", "onnx")
    assert pick_backend("auto", "cpu", ("openvino", "onnx")) == "onnx"
    _installed(monkeypatch, "onnxruntime", "onnx", "openvino")
    assert pick_backend("auto", "cpu", ("openvino", "onnx")) == "openvino"
    assert pick_backend("auto", "cpu", ("openvino", "onnx"), quantization="int8") == "onnx"  # openvino int8 needs nncf


def test_int8_on_openvino_needs_nncf(monkeypatch) -> None:
    assert required_packages("openvino", "int8") == ("openvino", "nncf")
    _installed(monkeypatch, "openvino")
    assert backend_installed("openvino") and not backend_installed("openvino", "int8")
    assert backend_installed("torch")


def test_a_requested_device_wins(monkeypatch) -> None:
    monkeypatch.setattr(runtime_device.importlib.util, "find_spec", lambda *a: pytest.fail("looked for torch"))
    assert pick_device("cuda:1") == "cuda:1"
    assert pick_device("cpu", "torch") == "cpu"


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_cpu_only_backends_run_on_the_cpu(backend) -> None:
    assert pick_device(None, backend) == "cpu"


def test_torch_takes_the_gpu_when_there_is_one(monkeypatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device(None) == "cuda" and pick_device(None, "torch") == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device(None) == "cpu"
