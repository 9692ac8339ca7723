"""A peft LoRA adapter (safetensors) -> a GGUF LoRA adapter that llama.cpp applies over the GGUF base.

llama.cpp stores a llama-family model's q and k projections with the rows of each head
reordered for its rotary embedding: transformers rotates the first half of a head against
the second half, llama.cpp rotates neighbouring pairs. A LoRA delta ``B @ A`` on q or k
therefore needs B's rows (the output dimension) reordered the same way; A is unchanged.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Architectures whose GGUF form is llama.cpp's "llama" (Mistral is converted as llama).
LLAMA_FAMILY = {"llama", "mistral"}
# transformers module path -> llama.cpp tensor name inside blk.N
MODULE_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_KEY = re.compile(r"layers\.(\d+)\.([a-z_]+\.[a-z_]+)\.lora_([AB])\.weight$")


class ExportError(ValueError):
    """The adapter cannot be exported (names the file or tensor and the reason)."""


@dataclass(frozen=True)
class BaseShape:
    """What the exporter needs to know about the base model."""

    model_type: str
    n_head: int
    n_head_kv: int
    head_dim: int


def base_shape(config: Any) -> BaseShape:
    """The head layout of a transformers config (llama family only)."""
    model_type = getattr(config, "model_type", "")
    if model_type not in LLAMA_FAMILY:
        raise ExportError(f"GGUF export supports llama-family bases ({sorted(LLAMA_FAMILY)}), not {model_type!r}")
    n_head = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_head
    return BaseShape(model_type, n_head, getattr(config, "num_key_value_heads", None) or n_head, head_dim)


def rope_row_order(n_heads: int, head_dim: int) -> np.ndarray:
    """Row indices taking a q/k projection from transformers' layout to llama.cpp's.

    Within each head, transformers keeps the two halves of every rotated pair apart
    (j and j + head_dim/2); llama.cpp keeps them adjacent (2j and 2j + 1).
    """
    half = head_dim // 2
    order = [h * head_dim + part * half + j for h in range(n_heads) for j in range(half) for part in (0, 1)]
    return np.asarray(order, dtype=np.int64)


def lora_scale_alpha(adapter_config: dict[str, Any]) -> tuple[int, float]:
    """(r, alpha) such that llama.cpp's alpha / r equals the scale peft applied."""
    if adapter_config.get("rank_pattern") or adapter_config.get("alpha_pattern"):
        raise ExportError("per-module rank_pattern/alpha_pattern adapters cannot be exported to GGUF")
    if adapter_config.get("use_dora"):
        raise ExportError("DoRA adapters cannot be exported to GGUF LoRA")
    r, alpha = int(adapter_config["r"]), float(adapter_config["lora_alpha"])
    if adapter_config.get("use_rslora"):
        # rsLoRA scales by alpha / sqrt(r); llama.cpp always divides by r.
        alpha = alpha * math.sqrt(r)
    return r, alpha


def gguf_tensors(weights: dict[str, np.ndarray], shape: BaseShape) -> dict[str, np.ndarray]:
    """llama.cpp tensor names -> arrays, with q/k rows reordered."""
    out: dict[str, np.ndarray] = {}
    orders = {
        "attn_q": rope_row_order(shape.n_head, shape.head_dim),
        "attn_k": rope_row_order(shape.n_head_kv, shape.head_dim),
    }
    for key, value in weights.items():
        m = _KEY.search(key)
        if m is None or m.group(2) not in MODULE_NAMES:
            raise ExportError(f"adapter tensor {key!r} has no llama.cpp counterpart (target only linear projections)")
        layer, module, ab = int(m.group(1)), MODULE_NAMES[m.group(2)], m.group(3)
        arr = np.ascontiguousarray(value, dtype=np.float32)
        if ab == "B" and module in orders:
            if arr.shape[0] != len(orders[module]):
                raise ExportError(f"{key}: {arr.shape[0]} rows, expected {len(orders[module])} for {module}")
            arr = arr[orders[module]]
        # peft's A is (r, in) and B is (out, r): written as-is, GGUF's reversed dimension
        # order gives llama.cpp the ne[0] = in (A) and ne[1] = out (B) it checks.
        out[f"blk.{layer}.{module}.weight.lora_{ab.lower()}"] = arr
    if not out:
        raise ExportError("the adapter has no LoRA weights")
    return out


def load_peft_adapter(adapter_dir: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(adapter_config.json, tensors) of a peft adapter directory."""
    from safetensors.numpy import load_file

    cfg_path, weights_path = adapter_dir / "adapter_config.json", adapter_dir / "adapter_model.safetensors"
    for p in (cfg_path, weights_path):
        if not p.is_file():
            raise ExportError(f"{adapter_dir}: not a peft adapter directory ({p.name} missing)")
    weights = load_file(str(weights_path))
    return json.loads(cfg_path.read_text(encoding="utf-8")), {k: v for k, v in weights.items() if "lora_" in k}


def write_gguf_lora(
    adapter_dir: Path, config: Any, out_path: Path, outtype: str = "f16", name: str = "chime adapter"
) -> dict[str, Any]:
    """Write ``out_path``; returns a summary (tensor count, r, alpha)."""
    import gguf

    adapter_config, weights = load_peft_adapter(adapter_dir)
    shape = base_shape(config)
    r, alpha = lora_scale_alpha(adapter_config)
    tensors = gguf_tensors(weights, shape)
    dtype = {"f16": np.float16, "f32": np.float32}[outtype]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(out_path), arch="llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_name(name)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    for tname in sorted(tensors):
        writer.add_tensor(tname, tensors[tname].astype(dtype))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"tensors": len(tensors), "r": r, "alpha": alpha, "outtype": outtype}
