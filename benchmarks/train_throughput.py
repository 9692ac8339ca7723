"""Training throughput on the CPU: chime's loop against a plain transformers Trainer, same model, data, epoch.

Each variant runs in its own process (so peak RSS is its own) and prints one JSON line;
without --variant, all variants run in turn and a JSON list is printed.

    python benchmarks/train_throughput.py --conversations 40 --threads 2

Variants: hf_trainer (padded batches of 4, logits over the whole vocabulary at every position),
chime (one conversation per row, no padding, logits only at labelled positions),
chime_full_logits (same, logits everywhere), chime_padded (right-padded batches of 4),
chime_packed (conversations packed into rows of max_length), chime_1thread.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CONFIG = ROOT / "training" / "configs" / "smollm2-135m-cpu.yaml"
VARIANTS = ["hf_trainer", "chime", "chime_full_logits", "chime_padded", "chime_packed", "chime_1thread"]


def _subset(src: Path, n: int, dest: Path) -> Path:
    lines = [line for line in src.read_text(encoding="utf-8").splitlines() if line.strip()][:n]
    dest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dest


def _config(data: Path, out: Path, threads: int, variant: str):
    from training.fit.config import TrainConfig, load_config

    raw = load_config(CONFIG).model_dump()
    raw["data"].update({"train": data, "dev": None})
    raw["train"].update({"output_dir": out, "epochs": 1, "threads": threads, "save_steps": 10**6, "eval_steps": None})
    if variant == "chime_1thread":
        raw["train"]["threads"] = 1
    if variant in ("chime_padded", "hf_trainer"):
        raw["train"].update({"batch_size": 4, "grad_accumulation": 2})
    if variant == "chime_packed":
        raw["data"]["packing"] = True
    return TrainConfig.model_validate(raw)


def _full_logits_loss(model, batch, device):
    import torch.nn.functional as F

    from training.fit.labels import IGNORE

    logits = model(input_ids=batch["input_ids"].to(device), position_ids=batch["position_ids"].to(device)).logits
    labels = batch["labels"].to(device)[:, 1:]
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), reduction="sum")
    return loss, int((labels != IGNORE).sum())


def run_chime(cfg, variant: str) -> dict:
    """One epoch of chime's own loop."""
    import training.fit.trainer as trainer_mod
    from training.fit.models import set_threads
    from training.fit.prepare import prepare

    set_threads(cfg.train.threads)
    if variant == "chime_full_logits":
        trainer_mod.batch_loss = _full_logits_loss
    prep = prepare(cfg, log=lambda s: None)
    result = trainer_mod.Trainer(prep, cfg, log=lambda s: None).run()
    real = sum(len(s.input_ids) for s in prep.train)
    return {"tokens": real, "seconds": result["seconds"], "tokens_per_s": real / result["seconds"]}


def run_hf_trainer(cfg) -> dict:
    """One epoch of transformers' Trainer over the same sequences, padded per batch."""
    import torch
    from transformers import Trainer, TrainingArguments

    from training.fit.labels import IGNORE
    from training.fit.models import set_threads
    from training.fit.prepare import prepare

    set_threads(cfg.train.threads)
    prep = prepare(cfg, log=lambda s: None)
    pad = prep.tokenizer.pad_token_id
    rows = [{"input_ids": s.input_ids, "labels": s.labels} for s in prep.train]

    def collate(batch):
        width = max(len(r["input_ids"]) for r in batch)
        ids = torch.full((len(batch), width), pad)
        labels = torch.full((len(batch), width), IGNORE)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, r in enumerate(batch):
            n = len(r["input_ids"])
            ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(r["input_ids"]), torch.tensor(r["labels"]), 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    args = TrainingArguments(
        output_dir=str(cfg.train.output_dir), per_device_train_batch_size=4, gradient_accumulation_steps=2,
        num_train_epochs=1, learning_rate=cfg.train.lr, lr_scheduler_type="cosine", warmup_steps=0.05,
        save_strategy="no", report_to=[], logging_steps=10**6, use_cpu=True, seed=cfg.train.seed,
        dataloader_num_workers=0, remove_unused_columns=False,
    )  # fmt: skip
    # transformers dequantizes a GGUF checkpoint to float weights on load but keeps its
    # GGUF quantizer attached, and Trainer refuses any model that carries one; chime's
    # loop trains these same float weights, so the marker is dropped for the baseline.
    base = prep.model.get_base_model()
    base.hf_quantizer, base.is_quantized = None, False
    trainer = Trainer(model=prep.model, args=args, train_dataset=rows, data_collator=collate)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    real = sum(len(r["input_ids"]) for r in rows)
    return {"tokens": real, "seconds": round(seconds, 1), "tokens_per_s": real / seconds}


def one(variant: str, data: Path, threads: int) -> dict:
    """Run one variant in this process."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _config(data, Path(tmp) / "out", threads, variant)
        out = run_hf_trainer(cfg) if variant == "hf_trainer" else run_chime(cfg, variant)
    out["tokens_per_s"] = round(out["tokens_per_s"], 1)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": variant, "threads": cfg.train.threads, "peak_rss_mb": round(peak_mb), **out}


def main() -> None:
    """Parse arguments; run one variant or all of them in subprocesses."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", choices=VARIANTS)
    p.add_argument("--data", type=Path, default=ROOT / "training" / "data" / "train.jsonl")
    p.add_argument("--conversations", type=int, default=40)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", nargs="*", choices=VARIANTS, default=VARIANTS)
    args = p.parse_args()
    if args.variant:
        print(json.dumps(one(args.variant, args.data, args.threads)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = _subset(args.data, args.conversations, Path(tmp) / "subset.jsonl")
        results = []
        for v in args.only:
            cmd = [sys.executable, __file__, "--variant", v, "--data", str(data), "--threads", str(args.threads)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
            results.append(json.loads(lines[-1]) if lines else {"variant": v, "error": proc.stderr[-500:]})
            print(json.dumps(results[-1]), file=sys.stderr)
    print(json.dumps({"conversations": args.conversations, "results": results}, indent=2))


if __name__ == "__main__":
    main()
