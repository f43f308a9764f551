"""Embeddings from a sentence-transformers model, on torch, ONNX Runtime or OpenVINO.

Texts are tokenized once, sorted by length and batched under a padded-token budget, so a
corpus of mixed lengths wastes little compute on padding. The torch backend runs the
sentence-transformers module stack directly (fp16 on CUDA). The OpenVINO and ONNX Runtime
backends run a graph exported once from the same local files into
``<cache>/<weights fingerprint>/<backend>[-int8]``. On the project's 2-core CPUs OpenVINO is
about 3.9x faster than ``SentenceTransformer.encode`` at unchanged nDCG@10, and about 5x with
int8 weights (bench/embed.py has the figures).

All model loading is offline, through ``ingest.runtime`` (resolve, device, load, export
cache, OpenVINO), which the reranker uses too.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from index.errors import ModelUnavailable
from ingest.embedder import Embedder, combine_fingerprint, l2_normalize, pad_batch, plan_batches
from ingest.runtime.device import INSTALL_HINTS, backend_installed, on_gpu, pick_backend, pick_device, required_packages
from ingest.runtime.export_cache import cache_root, cached_export, export_dir
from ingest.runtime.fingerprint import fingerprint_model_dir
from ingest.runtime.load import load_sentence_transformer
from ingest.runtime.offline import set_offline_environment
from ingest.runtime.openvino import OpenVinoRequest, convert_from_torch, save_graph
from ingest.runtime.resolve import resolve_model

if TYPE_CHECKING:
    from index.settings import Settings

log = logging.getLogger(__name__)

Backend = Literal["auto", "torch", "onnx", "openvino"]
Quantization = Literal["none", "int8"]

# Bumped whenever the export or quantization recipe changes, so stale cached exports are
# ignored and, for lossy recipes, so the embedder fingerprint changes with the vectors.
_EXPORT_RECIPE = "st-export-v1"
_QUANT_RECIPES = {"onnx": "onnx-int8-dynamic-per-channel-v1", "openvino": "openvino-int8-nncf-v1"}

# Export-time self-check: an exported graph must reproduce the torch model on these texts.
_PROBE_TEXTS = (
    "A short probe.",
    "The export check embeds a few sentences of different lengths with both the original "
    "model and the exported graph, and refuses a graph whose vectors drift.",
    "Padding matters: the shortest text in a batch is padded to the longest one, so the "
    "attention mask has to reach every layer of the exported graph.",
)
_MIN_PROBE_COSINE = {"none": 0.9999, "int8": 0.9}  # int8 only has to be recognisably the same model


class BackendUnavailable(ModelUnavailable, RuntimeError):
    """The requested backend needs packages that are not installed."""


def resolve_backend(backend: Backend, quantization: Quantization, device: str) -> tuple[str, str]:
    """Turn ``auto`` into a concrete backend for this machine and check the combination.

    ``auto`` keeps torch on a GPU, where fp16 is already fast. On a CPU it takes OpenVINO when
    installed (3.9x torch, same vectors), else ONNX Runtime (1.4x), else torch. All three give
    the same vectors up to float noise and so the same fingerprint: switching between them
    never invalidates an index. int8 is never chosen implicitly, since it does change vectors.
    """
    if quantization not in ("none", "int8"):
        raise ValueError(f"unknown embedding quantization {quantization!r}")
    gpu = on_gpu(device)
    if backend == "auto":
        backend = pick_backend("auto", device, ("openvino", "onnx"), quantization)
        if backend == "torch" and quantization == "int8" and not gpu:
            backend = "openvino"  # int8 was asked for: fail below naming the packages it needs
    if backend not in ("torch", "onnx", "openvino"):
        raise ValueError(f"unknown embedding backend {backend!r}")
    if quantization == "int8" and (backend == "torch" or gpu):
        raise ValueError("int8 quantization is a CPU option of the onnx and openvino backends")
    return backend, quantization


def batch_limits(device: str, batch_size: int, batch_tokens: int,
                 gpu_batch_size: int | None, gpu_batch_tokens: int | None) -> tuple[int, int]:
    """(texts, padded tokens) per batch: a GPU is starved by batches sized for a CPU, so it
    takes the GPU limits when they are given (measured: ``embedding_gpu_batch_size``)."""
    if on_gpu(device):
        return gpu_batch_size or batch_size, gpu_batch_tokens or batch_tokens
    return batch_size, batch_tokens


class SentenceTransformerEmbedder(Embedder):
    """An ``Embedder`` over any local sentence-transformers model."""

    def __init__(
        self,
        model: str = "all-MiniLM-L6-v2",
        *,
        device: str | None = None,
        backend: Backend = "torch",
        quantization: Quantization = "none",
        batch_size: int = 64,
        batch_tokens: int = 16384,
        threads: int = 0,
        cache_dir: Path | None = None,
        gpu_batch_size: int | None = None,
        gpu_batch_tokens: int | None = None,
    ):
        set_offline_environment()
        started = time.perf_counter()
        self.model_name = model
        self._model_dir = resolve_model(model)
        self.weights_fingerprint = fingerprint_model_dir(self._model_dir)
        # ONNX Runtime's dynamic int8 scales activations per call, so a text's vector would
        # depend on its batch-mates (cosine down to 0.97); one text per call keeps it a
        # function of the text alone, for about 25% less throughput than batched calls.
        self._texts_per_call = 0
        self._threads = threads
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None

        self.device = pick_device(device, backend)
        self.batch_size, self.batch_tokens = batch_limits(self.device, batch_size, batch_tokens, gpu_batch_size, gpu_batch_tokens)
        self.backend, self.quantization = resolve_backend(backend, quantization, self.device)
        if self.backend == "onnx" and self.quantization == "int8":
            self._texts_per_call = 1
        if self.backend != "torch" and self.device != "cpu":
            raise ValueError(f"the {self.backend} backend runs on the CPU; use backend='torch' for {self.device}")
        if self.backend != "torch" and not backend_installed(self.backend, self.quantization):
            missing = " and ".join(required_packages(self.backend, self.quantization))
            raise BackendUnavailable(
                f"embedding backend {self.backend!r} needs {missing}; install them ({INSTALL_HINTS[self.backend]}) "
                "or set GROUNDWORK_EMBEDDING_BACKEND=torch"
            )

        st_config = _read_json(self._model_dir / "sentence_bert_config.json")
        self._lowercase = bool(st_config.get("do_lower_case", False))
        self._prompts = _read_prompts(self._model_dir)
        if self._prompts and not _read_json(self._model_dir / "1_Pooling" / "config.json").get("include_prompt", True):
            log.warning("%s pools without its prompt tokens; prompts are embedded with the text here", model)

        self._engine: Callable[[np.ndarray, np.ndarray], np.ndarray]
        if self.backend == "torch":
            st_model = load_sentence_transformer(self._model_dir, self.device)
            self.max_seq_length = int(st_model.max_seq_length)
            self.dimension = _embedding_dimension(st_model)
            self._tokenizer = _FastTokenizer.from_hf(st_model.tokenizer, self.max_seq_length)
            self._engine = _TorchEngine(st_model, self.device, _wants_type_ids(st_model.tokenizer), threads)
        else:
            # Only the exported graph and tokenizer.json are needed from here on, so an embedder
            # on a cached export starts without importing torch or sentence-transformers.
            export_dir = self._exported_model()
            manifest = _read_json(export_dir / "manifest.json")
            self.max_seq_length = int(manifest["max_seq_length"])
            self.dimension = int(manifest["dimension"])
            self._tokenizer = _FastTokenizer.from_file(export_dir / "tokenizer.json", int(manifest["pad_id"]), self.max_seq_length)
            if self.backend == "onnx":
                self._engine = _OnnxEngine(export_dir / "model.onnx", threads)
            else:
                self._engine = _OpenVinoEngine(export_dir / "model.xml", threads)
        self._tokenizer.parallel = threads != 1

        self.fingerprint = (
            self.weights_fingerprint
            if self.quantization == "none"
            else combine_fingerprint(self.weights_fingerprint, _QUANT_RECIPES[self.backend])
        )
        log.info(
            "embedder %s on %s (backend %s, quantization %s, fingerprint %s) ready in %.1fs",
            model, self.device, self.backend, self.quantization, self.fingerprint[:12],
            time.perf_counter() - started,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> SentenceTransformerEmbedder:
        return cls(
            settings.embedding_model,
            device=settings.embedding_device,
            backend=settings.embedding_backend,
            quantization=settings.embedding_quantization,
            batch_size=settings.embedding_batch_size,
            batch_tokens=settings.embedding_batch_tokens,
            threads=settings.embedding_threads,
            cache_dir=cache_root(settings),
            gpu_batch_size=settings.embedding_gpu_batch_size,
            gpu_batch_tokens=settings.embedding_gpu_batch_tokens,
        )

    # --- Embedder ---------------------------------------------------------------------------

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts, self._prompts.get("document", ""))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts, self._prompts.get("query", ""))

    def tokenizer_path(self) -> Path | None:
        return self._model_dir

    # --- internals --------------------------------------------------------------------------

    def _embed(self, texts: Sequence[str], prompt: str) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("pass a sequence of texts, not a single string")
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        inputs = [prompt + text for text in texts] if prompt else list(texts)
        if self._lowercase:
            inputs = [text.lower() for text in inputs]
        flat_ids, lengths, truncated = self._tokenizer.encode(inputs)
        if truncated:
            log.debug("%d of %d texts exceed %d tokens and were truncated", truncated, len(inputs), self.max_seq_length)

        batch_size = self._texts_per_call or self.batch_size
        batches = plan_batches(lengths, batch_size=batch_size, batch_tokens=self.batch_tokens)
        order = np.concatenate(batches)
        sorted_ids = _gather_rows(flat_ids, lengths, order)
        out = np.empty((len(inputs), self.dimension), dtype=np.float32)
        position = 0
        for batch in batches:
            batch_lengths = lengths[batch]
            count = int(batch_lengths.sum())
            ids, mask = pad_batch(sorted_ids[position : position + count], batch_lengths, self._tokenizer.pad_id)
            position += count
            out[batch] = self._engine(ids, mask)
        return l2_normalize(out)

    def _exported_model(self) -> Path:
        """Directory of the exported (and maybe quantized) graph, exporting it on first use."""
        if self._cache_dir is None:
            from index.settings import Settings

            self._cache_dir = cache_root(Settings())
        variant = self.backend + ("-int8" if self.quantization == "int8" else "")
        target = export_dir(self._cache_dir, self._model_dir, variant)

        def build(staging: Path) -> None:
            log.info("exporting %s to %s (one time)", self.model_name, target)
            started = time.perf_counter()
            try:
                manifest = _export(self._model_dir, staging, self.backend, self.quantization, self._threads)
            except Exception as exc:
                raise RuntimeError(
                    f"exporting {self.model_name} for the {variant} embedding backend failed ({exc}); "
                    "set GROUNDWORK_EMBEDDING_BACKEND=torch to run without an export"
                ) from exc
            manifest.update(recipe=_EXPORT_RECIPE, source_fingerprint=self.weights_fingerprint)
            (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
            log.info("export of %s done in %.1fs", variant, time.perf_counter() - started)

        return cached_export(target, build, _export_complete)


def _export_complete(directory: Path) -> bool:
    manifest = _read_json(directory / "manifest.json")
    model_file = "model.onnx" if manifest.get("backend") == "onnx" else "model.xml"
    return (
        manifest.get("recipe") == _EXPORT_RECIPE
        and {"dimension", "max_seq_length", "pad_id"} <= manifest.keys()
        and (directory / model_file).is_file()
        and (directory / "tokenizer.json").is_file()
    )


# --- tokenization -------------------------------------------------------------------------


class _FastTokenizer:
    """Tokenizes a whole input list in one call to the Rust tokenizer, truncating to the model limit."""

    def __init__(self, fast: Any | None, hf: Any | None, pad_id: int, max_seq_length: int):
        self.pad_id = pad_id
        self._fast = fast
        self._hf = hf
        self._max = max_seq_length
        # encode_batch fans out to a thread pool: fewer seconds for a large input, but more CPU
        # in all (3 queries: 0.22 ms against 0.10 one by one). An embedder held to one thread,
        # as the server's query model is, tokenizes one text after another.
        self.parallel = True
        if fast is not None:
            fast.no_padding()
            fast.enable_truncation(max_length=max_seq_length)

    @classmethod
    def from_hf(cls, hf_tokenizer: Any, max_seq_length: int) -> _FastTokenizer:
        pad_id = int(hf_tokenizer.pad_token_id or 0)
        backend = getattr(hf_tokenizer, "backend_tokenizer", None)
        if backend is None:  # a slow (pure Python) tokenizer: correct, just slower
            return cls(None, hf_tokenizer, pad_id, max_seq_length)
        from tokenizers import Tokenizer

        # A private copy: truncation and padding are mutable state on the shared tokenizer.
        return cls(Tokenizer.from_str(backend.to_str()), None, pad_id, max_seq_length)

    @classmethod
    def from_file(cls, path: Path, pad_id: int, max_seq_length: int) -> _FastTokenizer:
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(str(path)), None, pad_id, max_seq_length)

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
        """(all token ids end to end, tokens per text, how many texts were truncated)."""
        if self._fast is not None:
            if self.parallel:
                encodings = self._fast.encode_batch(texts, add_special_tokens=True)
            else:
                encodings = [self._fast.encode(text, add_special_tokens=True) for text in texts]
            rows = [encoding.ids for encoding in encodings]
            truncated = sum(1 for encoding in encodings if encoding.overflowing)
        else:
            rows = self._hf(texts, truncation=True, max_length=self._max)["input_ids"]
            truncated = 0
        lengths = np.fromiter((len(row) for row in rows), dtype=np.int64, count=len(rows))
        flat = np.fromiter((token for row in rows for token in row), dtype=np.int64, count=int(lengths.sum()))
        return flat, lengths, truncated


def _gather_rows(flat: np.ndarray, lengths: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Rows of ``flat`` (laid end to end, ``lengths`` long) rearranged into ``order``, end to end."""
    starts = np.cumsum(lengths) - lengths
    new_lengths = lengths[order]
    new_starts = np.cumsum(new_lengths) - new_lengths
    gather = np.arange(int(new_lengths.sum())) + np.repeat(starts[order] - new_starts, new_lengths)
    return flat[gather]


def _wants_type_ids(hf_tokenizer: Any) -> bool:
    return "token_type_ids" in getattr(hf_tokenizer, "model_input_names", ())


# --- engines ------------------------------------------------------------------------------


class _TorchEngine:
    def __init__(self, st_model: Any, device: str, type_ids: bool, threads: int):
        import torch

        if threads > 0:
            torch.set_num_threads(threads)
        self._torch = torch
        self._model = st_model
        self._device = device
        self._type_ids = type_ids

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            input_ids = torch.from_numpy(ids).to(self._device, non_blocking=True)
            features = {"input_ids": input_ids, "attention_mask": torch.from_numpy(mask).to(self._device, non_blocking=True)}
            if self._type_ids:
                features["token_type_ids"] = torch.zeros_like(input_ids)
            return self._model(features)["sentence_embedding"].float().cpu().numpy()


class _OnnxEngine:
    def __init__(self, path: Path, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads > 0:
            options.intra_op_num_threads = threads
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._type_ids = "token_type_ids" in {item.name for item in self._session.get_inputs()}

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": ids, "attention_mask": mask}
        if self._type_ids:
            feed["token_type_ids"] = np.zeros_like(ids)
        return self._session.run(None, feed)[0]


class _OpenVinoEngine:
    def __init__(self, path: Path, threads: int):
        self._request = OpenVinoRequest(path, threads)
        self._type_ids = "token_type_ids" in self._request.input_names

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": ids, "attention_mask": mask}
        if self._type_ids:
            feed["token_type_ids"] = np.zeros_like(ids)
        return self._request(feed)


# --- export -------------------------------------------------------------------------------


def _export(model_dir: Path, out_dir: Path, backend: str, quantization: str, threads: int) -> dict[str, Any]:
    """Write ``model.onnx`` or ``model.xml`` into ``out_dir``, check it against torch, return its manifest."""
    st_model = load_sentence_transformer(model_dir, "cpu")
    tokenizer = st_model.tokenizer
    backend_tokenizer = getattr(tokenizer, "backend_tokenizer", None)
    if backend_tokenizer is None:
        raise ValueError(f"the {backend} backend needs a fast tokenizer (tokenizer.json); use backend='torch' for this model")
    (out_dir / "tokenizer.json").write_text(backend_tokenizer.to_str(), encoding="utf-8")
    input_names = ["input_ids", "attention_mask"] + (["token_type_ids"] if _wants_type_ids(tokenizer) else [])
    max_seq_length = int(st_model.max_seq_length)

    engine: Callable[[np.ndarray, np.ndarray], np.ndarray]
    if backend == "onnx":
        model_file = out_dir / "model.onnx"
        _export_onnx(st_model, input_names, model_file)
        _fuse_onnx_for_cpu(model_file, st_model)
        if quantization == "int8":
            _quantize_onnx_dynamic(model_file)
        engine = _OnnxEngine(model_file, threads)
    else:
        model_file = out_dir / "model.xml"
        _export_openvino(st_model, input_names, model_file, quantization, max_seq_length)
        engine = _OpenVinoEngine(model_file, threads)
    _check_export(st_model, engine, quantization, max_seq_length)
    return {
        "backend": backend,
        "quantization": quantization,
        "dimension": _embedding_dimension(st_model),
        "max_seq_length": max_seq_length,
        "input_names": input_names,
        "pad_id": int(tokenizer.pad_token_id or 0),
    }


def _traceable(st_model: Any, input_names: list[str]) -> tuple[Any, dict[str, Any]]:
    """The module stack as a function of named tensors, and a padded example batch to trace it with.

    The example must contain padding: on an unpadded batch the attention code may skip the
    mask altogether, and a graph traced that way would ignore the mask for every later batch.
    """
    import torch

    class SentenceEmbedding(torch.nn.Module):
        # Named parameters, not *args: converters name the graph's inputs after them.
        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            features = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                features["token_type_ids"] = token_type_ids
            return self.inner(features)["sentence_embedding"]

    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102], [101, 3231, 102, 0, 0, 0]], dtype=torch.long)
    ids = ids.clamp(max=st_model.tokenizer.vocab_size - 1)
    mask = (torch.arange(ids.shape[1]) < torch.tensor([[6], [3]])).long()
    example = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    return SentenceEmbedding(st_model).eval(), {name: example[name] for name in input_names}


def _export_onnx(st_model: Any, input_names: list[str], path: Path) -> None:
    import torch

    module, example = _traceable(st_model, input_names)
    dynamic = {name: {0: "batch", 1: "sequence"} for name in input_names}
    dynamic["sentence_embedding"] = {0: "batch"}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            tuple(example.values()),
            str(path),
            input_names=input_names,
            output_names=["sentence_embedding"],
            dynamic_axes=dynamic,
            opset_version=17,
            dynamo=False,
        )
    st_model.eval()  # the exporter restores the wrapper's training flag onto every submodule


def _export_openvino(st_model: Any, input_names: list[str], path: Path, quantization: str, max_seq_length: int) -> None:
    """Convert straight from torch, optionally int8 via nncf. At run time bf16 CPUs keep a
    cosine to fp32 above 0.9999."""
    module, example = _traceable(st_model, input_names)
    model = convert_from_torch(module, example)
    if quantization == "int8":
        import nncf

        tokenizer = _FastTokenizer.from_hf(st_model.tokenizer, max_seq_length)
        samples = []
        for text in _calibration_texts():
            flat, lengths, _ = tokenizer.encode([text])
            ids, mask = pad_batch(flat, lengths, tokenizer.pad_id)
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            samples.append({name: feed[name] for name in input_names})
        model = nncf.quantize(model, nncf.Dataset(samples), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(samples))
    save_graph(model, path)


def _fuse_onnx_for_cpu(path: Path, st_model: Any) -> None:
    """Fuse attention/LayerNorm/GELU subgraphs with ONNX Runtime's transformer optimizer.

    Worth little in fp32 (the session applies most fusions itself) but it lets the int8
    quantizer use the fused quantized attention kernel. Only BERT-style encoders are fused.
    """
    config = st_model[0].auto_model.config if hasattr(st_model[0], "auto_model") else None
    if config is None or getattr(config, "model_type", "") not in ("bert", "roberta", "xlm-roberta", "distilbert", "camembert", "electra"):
        return
    from onnxruntime.transformers.optimizer import optimize_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimized = optimize_model(
            str(path),
            model_type="bert",
            num_heads=int(getattr(config, "num_attention_heads", 0)),
            hidden_size=int(getattr(config, "hidden_size", 0)),
        )
    optimized.save_model_to_file(str(path))


def _quantize_onnx_dynamic(path: Path) -> None:
    """int8 weights per output channel, activations quantized on the fly: no calibration data needed.

    Per-tensor weight scales lose too much on small encoders (probe cosines near 0.9);
    per-channel scales keep them above 0.99.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantized = path.with_name("model.int8.onnx")
    quantize_dynamic(
        str(path),
        str(quantized),
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    os.replace(quantized, path)


def _calibration_texts() -> list[str]:
    """Generic sentences for static int8 calibration, combined into short, medium and long inputs."""
    sentences = [
        "The committee approved the budget after a long debate about maintenance costs.",
        "Patients in the treatment group reported fewer side effects than the control group.",
        "To reset the device, hold the power button for ten seconds until the light blinks.",
        "The river floods every spring when snow melts in the mountains to the north.",
        "Revenue grew by twelve percent, driven mainly by subscriptions in new markets.",
        "The protein binds to the receptor and blocks the signal that triggers inflammation.",
        "Install the package, then run the migration script before starting the server.",
        "Her novel follows three generations of a family that runs a small bakery.",
        "Measurements were repeated five times and the median value is reported.",
        "The contract may be terminated by either party with thirty days written notice.",
        "Cells were cultured for 48 hours at 37 degrees before the assay was performed.",
        "What is the maximum upload size, and can administrators change it?",
        "The bridge was closed for repairs after inspectors found cracks in two supports.",
        "Table 3 lists the error rates for each model on the held-out test set.",
        "Students who slept more than seven hours scored higher on the memory task.",
        "The API returns a JSON object with the matching passages and their scores.",
    ]
    texts = list(sentences)
    for width in (3, 6, 12):
        for start in range(0, len(sentences), width):
            texts.append(" ".join(sentences[start : start + width] + sentences[: max(0, start + width - len(sentences))]))
    return texts


def _check_export(st_model: Any, engine: Callable[[np.ndarray, np.ndarray], np.ndarray], quantization: str, max_seq_length: int) -> None:
    """Refuse an exported graph whose vectors drift from the torch model's on a padded batch."""
    tokenizer = _FastTokenizer.from_hf(st_model.tokenizer, max_seq_length)
    flat, lengths, _ = tokenizer.encode(list(_PROBE_TEXTS))
    ids, mask = pad_batch(flat, lengths, tokenizer.pad_id)
    reference = _TorchEngine(st_model, "cpu", _wants_type_ids(st_model.tokenizer), 0)(ids, mask)
    cosines = np.sum(l2_normalize(reference) * l2_normalize(engine(ids, mask)), axis=1)
    if float(cosines.min()) < _MIN_PROBE_COSINE[quantization]:
        raise RuntimeError(
            f"exported embedding graph disagrees with the torch model (cosines {np.round(cosines, 4).tolist()}); "
            "refusing to use it"
        )


# --- loading ------------------------------------------------------------------------------


def _embedding_dimension(st_model: Any) -> int:
    getter = getattr(st_model, "get_embedding_dimension", None) or st_model.get_sentence_embedding_dimension
    return int(getter())


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _read_prompts(model_dir: Path) -> dict[str, str]:
    """Query/document prompts declared by the model (e5/bge-style), keyed 'query' and 'document'."""
    prompts = _read_json(model_dir / "config_sentence_transformers.json").get("prompts") or {}
    found = {}
    if prompts.get("query"):
        found["query"] = prompts["query"]
    document = prompts.get("document") or prompts.get("passage") or prompts.get("corpus")
    if document:
        found["document"] = document
    return found
