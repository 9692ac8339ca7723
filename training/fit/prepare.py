"""Everything a run needs before its first step: tokenizer, data, base model and LoRA adapter."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from model_runtime.seed_format import read_seed_file
from training.fit.config import TINY_PREFIX, TrainConfig
from training.fit.dataset import DataStats, file_sha256, load_sequences
from training.fit.labels import Encoded
from training.fit.models import (
    BaseRef,
    add_lora,
    fix_pad_token,
    load_model,
    load_tokenizer,
    pick_device,
    pick_dtype,
    resolve_base,
)
from training.fit.tiny import build_tiny, save_tiny, seed_texts

TINY_BASE_DIR = "base"


@dataclass
class Prepared:
    """A model ready to train and the sequences to train it on."""

    model: Any
    tokenizer: Any
    train: list[Encoded]
    dev: list[Encoded]
    device: str
    dtype: torch.dtype
    base: dict[str, Any]
    stats: list[DataStats] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    """Fix Python's and torch's random generators."""
    random.seed(seed)
    torch.manual_seed(seed)


def _base_info(cfg: TrainConfig, ref: BaseRef | None) -> dict[str, Any]:
    info: dict[str, Any] = {"spec": cfg.model.base}
    if ref is not None:
        info["path"] = ref.path
        if ref.gguf_path is not None:
            info["gguf_file"] = str(ref.gguf_path)
            info["gguf_sha256"] = file_sha256(ref.gguf_path)
    return info


def base_ref(cfg: TrainConfig) -> tuple[BaseRef, dict[str, Any]]:
    """Where the base lives; a tiny model is built once and kept under output_dir/base."""
    if not cfg.model.base.startswith(TINY_PREFIX):
        ref = resolve_base(cfg.model.base)
        return ref, _base_info(cfg, ref)
    tiny_dir = cfg.train.output_dir / TINY_BASE_DIR
    if not (tiny_dir / "config.json").is_file():
        convs = read_seed_file(cfg.data.train, skip_bad=cfg.data.skip_bad).conversations
        model, tok = build_tiny(cfg.model.tiny, seed_texts(convs), cfg.train.seed)
        save_tiny(model, tok, tiny_dir)
    ref = BaseRef(str(tiny_dir.resolve()))
    return ref, {"spec": cfg.model.base, "path": ref.path}


def load_base_model(cfg: TrainConfig, ref: BaseRef, tokenizer: Any, device: str, dtype: torch.dtype) -> Any:
    """The base model, its embeddings grown if the tokenizer gained a pad token."""
    model = load_model(ref, cfg.model, device, dtype)
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        # The added pad token needs an embedding row; pad positions never carry loss nor
        # are attended to, so the row's value does not matter.
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def load_data(cfg: TrainConfig, tokenizer: Any, log: Callable[[str], None]) -> tuple[list, list, list[DataStats]]:
    """Training and dev sequences; a malformed line stops the run unless data.skip_bad."""
    d = cfg.data
    common = dict(
        max_length=d.max_length,
        completion_only=d.completion_only,
        skip_bad=d.skip_bad,
        assistant_name=d.assistant_name,
        max_message_chars=d.max_message_chars,
        max_name_chars=d.max_name_chars,
    )
    train, train_stats = load_sequences(d.train, tokenizer, **common)
    stats = [train_stats]
    dev: list[Encoded] = []
    if d.dev is not None:
        dev, dev_stats = load_sequences(d.dev, tokenizer, **common)
        stats.append(dev_stats)
    for s in stats:
        log(s.summary())
        for line in s.skipped_lines:
            log(f"  skipped {line}")
    if not train:
        raise ValueError(f"{d.train}: no usable conversations")
    return train, dev, stats


def prepare(cfg: TrainConfig, log: Callable[[str], None] = print) -> Prepared:
    """Load the base, the data and wrap the model in a LoRA adapter."""
    seed_everything(cfg.train.seed)
    device = pick_device(cfg.train.device)
    dtype = pick_dtype(cfg.model.dtype, device)
    ref, base = base_ref(cfg)
    tokenizer = load_tokenizer(ref, cfg.model.trust_remote_code)
    fix_pad_token(tokenizer)
    # The data first: a malformed line stops the run before the model is loaded.
    train, dev, stats = load_data(cfg, tokenizer, log)
    base["train_sha256"] = file_sha256(cfg.data.train)
    if cfg.data.dev is not None:
        base["dev_sha256"] = file_sha256(cfg.data.dev)
    model = load_base_model(cfg, ref, tokenizer, device, dtype)
    model = add_lora(model, cfg.lora, cfg.model)
    return Prepared(model, tokenizer, train, dev, device, dtype, base, stats)


def write_text(path: Path, text: str) -> None:
    """Write a small text file, creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
