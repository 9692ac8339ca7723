"""The training loop: loss only where the labels are, eval on the dev split, checkpoints and resume.

A plain loop rather than trl's SFTTrainer: it computes logits only at labelled positions
(the vocabulary projection is a fifth of a small model's compute), packs conversations
with no padding, and keeps resume exact with a few explicit lines.
"""

from __future__ import annotations

import json
import math
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from training.fit.batching import collate, make_rows, micro_batches
from training.fit.checkpoint import load_latest, restore, save_checkpoint
from training.fit.config import ConfigError, TrainConfig
from training.fit.labels import IGNORE, Encoded
from training.fit.prepare import Prepared

Batch = dict[str, torch.Tensor]


class Interrupted(Exception):
    """The run was stopped (Ctrl-C, SIGTERM); a checkpoint was written."""


@dataclass
class Plan:
    """How the epochs map onto optimizer steps."""

    micro_per_epoch: int
    steps_per_epoch: int
    total_steps: int


def make_plan(cfg: TrainConfig, rows_per_epoch: int) -> Plan:
    """Optimizer steps per epoch and in total (max_steps caps the epochs)."""
    micro = math.ceil(rows_per_epoch / cfg.train.batch_size)
    per_epoch = math.ceil(micro / cfg.train.grad_accumulation)
    total = math.ceil(per_epoch * cfg.train.epochs)
    if cfg.train.max_steps is not None:
        total = min(total, cfg.train.max_steps)
    return Plan(micro, per_epoch, max(1, total))


def batch_loss(model: Any, batch: Batch, device: str, decision_weight: float = 1.0) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the labelled tokens of a micro-batch (decision markers weighted), and their count."""
    ids = batch["input_ids"].to(device)
    labels = batch["labels"].to(device)
    targets = labels[:, 1:]
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = targets != IGNORE
    n = int(keep.sum())
    if n == 0:
        return torch.zeros((), device=device, requires_grad=True), 0
    # A boolean logits_to_keep projects only the kept positions onto the vocabulary.
    out = model(input_ids=ids, position_ids=batch["position_ids"].to(device), logits_to_keep=keep, use_cache=False)
    logits = out.logits.reshape(-1, out.logits.shape[-1]).float()
    if decision_weight == 1.0:
        return F.cross_entropy(logits, targets[keep[:, :-1]], reduction="sum"), n
    # The speak/silence marker is one or two tokens among a reply's dozens: weighting it
    # makes the loss care about the decision as much as about the reply's wording.
    per_token = F.cross_entropy(logits, targets[keep[:, :-1]], reduction="none")
    marked = batch["decision"][:, 1:].to(device)[keep[:, :-1]]
    weights = torch.where(marked, decision_weight, 1.0).to(per_token.dtype)
    return (per_token * weights).sum(), n


@torch.no_grad()
def evaluate(model: Any, seqs: list[Encoded], cfg: TrainConfig, device: str, pad_id: int) -> float | None:
    """Mean loss per labelled token on the dev sequences."""
    if not seqs:
        return None
    model.eval()
    rows = make_rows(seqs, cfg.data.max_length, cfg.data.packing, seed=0)
    total, count = 0.0, 0
    for mb in micro_batches(rows, cfg.train.batch_size):
        loss, n = batch_loss(model, collate(mb, pad_id), device)
        total += float(loss)
        count += n
    model.train()
    return total / max(count, 1)


def make_scheduler(cfg: TrainConfig, optimizer: Any, total_steps: int) -> Any:
    """Warmup then cosine, linear or constant learning rate."""
    from transformers import get_scheduler

    name = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}[cfg.train.lr_schedule]
    warmup = int(cfg.train.warmup_ratio * total_steps)
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)


def step_batches(prep: Prepared, cfg: TrainConfig, plan: Plan, start_step: int) -> Iterator[tuple[int, list[Batch]]]:
    """(step, micro-batches) from ``start_step`` on; each epoch's order depends only on seed and epoch."""
    pad = prep.tokenizer.pad_token_id
    rows = make_rows(prep.train, cfg.data.max_length, cfg.data.packing, seed=cfg.train.seed)
    step = start_step
    while step < plan.total_steps:
        epoch = step // plan.steps_per_epoch
        order = list(range(len(rows)))
        random.Random(cfg.train.seed + epoch).shuffle(order)
        mbs = micro_batches([rows[i] for i in order], cfg.train.batch_size)
        first = (step - epoch * plan.steps_per_epoch) * cfg.train.grad_accumulation
        for i in range(first, len(mbs), cfg.train.grad_accumulation):
            if step >= plan.total_steps:
                return
            yield step, [collate(mb, pad) for mb in mbs[i : i + cfg.train.grad_accumulation]]
            step += 1


class Trainer:
    """Runs the optimisation for a prepared model and config."""

    def __init__(self, prep: Prepared, cfg: TrainConfig, log: Callable[[str], None] = print) -> None:
        self.prep, self.cfg, self.log = prep, cfg, log
        self.out = cfg.train.output_dir
        self.out.mkdir(parents=True, exist_ok=True)
        self.plan = make_plan(cfg, len(make_rows(prep.train, cfg.data.max_length, cfg.data.packing, cfg.train.seed)))
        params = [p for p in prep.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
        self.scheduler = make_scheduler(cfg, self.optimizer, self.plan.total_steps)
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self._stop_requested = False

    def resume(self) -> bool:
        """Continue from the newest checkpoint in output_dir, if there is one."""
        found = load_latest(self.out)
        if found is None:
            return False
        self._check_same_run(found.path, found.state)
        restore(found, self.prep.model, self.optimizer, self.scheduler)
        self.step = found.step
        self.log(f"resuming from {found.path} (step {found.step} of {self.plan.total_steps})")
        return True

    def _check_same_run(self, path: Any, state: dict[str, Any]) -> None:
        """Refuse a checkpoint whose data, model or step plan differ: its step would mean other rows."""
        saved_cfg, saved_plan = state.get("config"), state.get("plan")
        if saved_cfg is None or saved_plan is None:
            return  # written before these were saved; nothing to compare
        now = self.cfg.model_dump(mode="json")
        changed = [
            f"{section}.{key}"
            for section in ("model", "lora", "data")
            for key in sorted(set(now[section]) | set(saved_cfg.get(section, {})))
            if now[section].get(key) != saved_cfg.get(section, {}).get(key)
        ]
        changed += [
            f"train.{k}"
            for k in ("seed", "lr", "lr_schedule", "warmup_ratio")
            if now["train"][k] != saved_cfg["train"].get(k)
        ]
        steps = {k: self.plan.__dict__[k] for k in ("steps_per_epoch", "total_steps")}
        if {k: saved_plan.get(k) for k in steps} != steps:
            changed.append(f"the optimizer steps ({saved_plan} then, {self.plan.__dict__} now)")
        if changed:
            raise ConfigError(
                f"{path}: cannot resume, the run changed: {', '.join(changed)}. Resume with the config it was "
                "made with (train.batch_size may change if batch_size x grad_accumulation stays the same), "
                "or start a new run in another output_dir"
            )

    def checkpoint(self) -> None:
        """Save the current step."""
        extra = {"config": self.cfg.model_dump(mode="json"), "plan": self.plan.__dict__}
        path = save_checkpoint(
            self.out, self.step, self.prep.model, self.optimizer, self.scheduler, extra, self.cfg.train.keep_checkpoints
        )
        self.log(f"checkpoint {path}")

    def _record(self, entry: dict[str, Any]) -> None:
        self.history.append(entry)
        with open(self.out / "train_log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    def train_step(self, batches: list[Batch]) -> tuple[float, int]:
        """One optimizer step over ``batches``; loss is averaged over all their labelled tokens."""
        total = sum(int((b["labels"][:, 1:] != IGNORE).sum()) for b in batches)
        loss_sum = 0.0
        for b in batches:
            loss, _ = batch_loss(self.prep.model, b, self.prep.device, self.cfg.train.decision_weight)
            (loss / max(total, 1)).backward()
            loss_sum += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(
            [p for p in self.prep.model.parameters() if p.requires_grad], self.cfg.train.max_grad_norm
        )
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss_sum / max(total, 1), sum(int(b["tokens"]) for b in batches)

    def dev_loss(self) -> float | None:
        """Loss on the dev split now."""
        return evaluate(self.prep.model, self.prep.dev, self.cfg, self.prep.device, self.prep.tokenizer.pad_token_id)

    def _request_stop(self, signum: int, frame: Any) -> None:
        if self._stop_requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self._stop_requested = True
        self.log("stopping after this step (a checkpoint will be written)")

    def run(self) -> dict[str, Any]:
        """Train to the end of the plan; on Ctrl-C or SIGTERM finish the step, checkpoint, raise Interrupted."""
        from tqdm.auto import tqdm

        cfg = self.cfg.train
        handlers = {}
        if threading.current_thread() is threading.main_thread():  # signal handlers only work there
            handlers = {sig: signal.signal(sig, self._request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        bar = tqdm(total=self.plan.total_steps, initial=self.step, desc="train", unit="step")
        start, tokens = time.perf_counter(), 0
        self.prep.model.train()
        try:
            for step, batches in step_batches(self.prep, self.cfg, self.plan, self.step):
                loss, n = self.train_step(batches)
                self.step, tokens = step + 1, tokens + n
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
                entry: dict[str, Any] = {"step": self.step, "loss": loss, "lr": self.scheduler.get_last_lr()[0]}
                if cfg.eval_steps and self.step % cfg.eval_steps == 0:
                    entry["eval_loss"] = self.dev_loss()
                if self.step % cfg.log_steps == 0 or "eval_loss" in entry or self.step == self.plan.total_steps:
                    entry["tokens_per_s"] = tokens / (time.perf_counter() - start)
                    self._record(entry)
                if self._stop_requested:
                    self.checkpoint()
                    raise Interrupted(f"stopped at step {self.step}; run again with --resume to continue")
                if self.step % cfg.save_steps == 0 and self.step < self.plan.total_steps:
                    self.checkpoint()
        finally:
            bar.close()
            for sig, old in handlers.items():
                signal.signal(sig, old)
        elapsed = time.perf_counter() - start
        return {"steps": self.step, "seconds": round(elapsed, 1), "tokens_per_s": round(tokens / max(elapsed, 1e-9))}
