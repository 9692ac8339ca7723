"""Read the key-value metadata of a GGUF file in pure Python (no llama_cpp, no gguf package).

Used to check a model or adapter file before llama.cpp loads it (so that a broken file
gives an error naming it), to compare an adapter's architecture with its base, and to
read the chat template and special tokens for the server backend.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import Any

from model_runtime.interface import RuntimeError_

GGUF_MAGIC = b"GGUF"

# GGUF value types -> struct format (scalars) or a marker for strings/arrays.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9

# llama.cpp token types (tokenizer.ggml.token_type): 3 = control, 4 = user defined.
TOKEN_TYPE_CONTROL = 3
TOKEN_TYPE_USER_DEFINED = 4


class _Reader:
    def __init__(self, buf: mmap.mmap | bytes) -> None:
        self.buf = buf
        self.pos = 0

    def scalar(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise ValueError("truncated file")
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        n = self.scalar("<Q")
        if self.pos + n > len(self.buf):
            raise ValueError("truncated string")
        raw = self.buf[self.pos : self.pos + n]
        self.pos += n
        return bytes(raw).decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.scalar(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            itype = self.scalar("<I")
            count = self.scalar("<Q")
            if count > len(self.buf):
                raise ValueError("array length beyond the end of the file")
            return [self.value(itype) for _ in range(count)]
        raise ValueError(f"unknown value type {vtype}")


def read_metadata(path: str | Path) -> dict[str, Any]:
    """All key-value metadata of a GGUF file; RuntimeError_ naming the file if it is not a valid GGUF."""
    return _read(path, with_tensors=False)[0]


def read_tensor_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape in ggml order (ne[0] first), from a GGUF file's header."""
    return _read(path, with_tensors=True)[1]


def _read(path: str | Path, with_tensors: bool) -> tuple[dict[str, Any], dict[str, tuple[int, ...]]]:
    path = Path(path)
    if not path.is_file():
        raise RuntimeError_(f"model file not found: {path}")
    try:
        with path.open("rb") as fh:
            if path.stat().st_size < 24:
                raise ValueError("file too short for a GGUF header")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                reader = _Reader(buf)
                meta, n_tensors = _parse(reader)
                shapes = _tensor_shapes(reader, n_tensors) if with_tensors else {}
                return meta, shapes
    except (ValueError, struct.error, OSError) as exc:
        raise RuntimeError_(f"not a valid GGUF file: {path} ({exc})") from exc


def _parse(reader: _Reader) -> tuple[dict[str, Any], int]:
    if bytes(reader.buf[:4]) != GGUF_MAGIC:
        raise ValueError("bad magic, expected 'GGUF'")
    reader.pos = 4
    version = reader.scalar("<I")
    if version not in (2, 3):
        raise ValueError(f"unsupported GGUF version {version}")
    n_tensors = reader.scalar("<Q")
    kv_count = reader.scalar("<Q")
    meta: dict[str, Any] = {}
    for _ in range(kv_count):
        key = reader.string()
        meta[key] = reader.value(reader.scalar("<I"))
    return meta, n_tensors


def _tensor_shapes(reader: _Reader, n_tensors: int) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for _ in range(n_tensors):
        name = reader.string()
        n_dims = reader.scalar("<I")
        shapes[name] = tuple(reader.scalar("<Q") for _ in range(n_dims))
        reader.scalar("<I")  # type
        reader.scalar("<Q")  # offset
    return shapes


def special_token_texts(meta: dict[str, Any]) -> list[str]:
    """Texts of the control and user-defined tokens (``<|im_start|>`` ...) that a message must not contain."""
    tokens = meta.get("tokenizer.ggml.tokens") or []
    types = meta.get("tokenizer.ggml.token_type") or []
    special = {TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED}
    return [tok for tok, kind in zip(tokens, types, strict=False) if kind in special and len(tok.strip()) > 1]


def token_text(meta: dict[str, Any], key: str) -> str:
    """The text of the token whose id is stored under ``key`` (e.g. ``tokenizer.ggml.bos_token_id``), or ""."""
    tokens = meta.get("tokenizer.ggml.tokens") or []
    idx = meta.get(key)
    return tokens[idx] if isinstance(idx, int) and 0 <= idx < len(tokens) else ""
