"""Checkpoints: the adapter, optimizer, schedule, step and RNG states, written atomically."""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

STATE_FILE = "trainer_state.pt"
PREFIX = "checkpoint-"


@dataclass
class ResumeState:
    """Where a run stopped."""

    step: int
    path: Path
    state: dict[str, Any]


def save_checkpoint(
    output_dir: Path, step: int, model: Any, optimizer: Any, scheduler: Any, extra: dict[str, Any], keep: int
) -> Path:
    """Write ``checkpoint-STEP`` (via a temporary directory, so a crash never leaves half of one)."""
    final = output_dir / f"{PREFIX}{step}"
    tmp = output_dir / f".tmp-{PREFIX}{step}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, save_embedding_layers=False)
    state = {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng_python": random.getstate(),
        "rng_torch": torch.get_rng_state(),
        **extra,
    }
    if torch.cuda.is_available():
        state["rng_cuda"] = torch.cuda.get_rng_state_all()
    torch.save(state, tmp / STATE_FILE)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    _prune(output_dir, keep)
    return final


def _prune(output_dir: Path, keep: int) -> None:
    for old in list_checkpoints(output_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints in ``output_dir``, oldest first."""
    if not output_dir.is_dir():
        return []
    found = [
        p
        for p in output_dir.iterdir()
        if p.is_dir() and p.name.startswith(PREFIX) and p.name[len(PREFIX) :].isdigit() and (p / STATE_FILE).is_file()
    ]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def load_latest(output_dir: Path) -> ResumeState | None:
    """The newest complete checkpoint, or None."""
    found = list_checkpoints(output_dir)
    if not found:
        return None
    path = found[-1]
    state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)
    return ResumeState(int(state["step"]), path, state)


def restore(resume: ResumeState, model: Any, optimizer: Any, scheduler: Any) -> None:
    """Load adapter weights, optimizer, schedule and RNG states from a checkpoint."""
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(str(resume.path / "adapter_model.safetensors"))
    result = set_peft_model_state_dict(model, weights)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise RuntimeError(f"{resume.path}: adapter does not match the model (unexpected {unexpected[:3]})")
    optimizer.load_state_dict(resume.state["optimizer"])
    scheduler.load_state_dict(resume.state["scheduler"])
    random.setstate(resume.state["rng_python"])
    torch.set_rng_state(resume.state["rng_torch"])
    if "rng_cuda" in resume.state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(resume.state["rng_cuda"])
