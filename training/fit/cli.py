"""``chime train CONFIG.yaml``: train a LoRA adapter that decides when to speak."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from model_runtime.seed_format import SeedFormatError
from training.fit.checkpoint import list_checkpoints
from training.fit.config import ConfigError, TrainConfig, load_config

SUMMARY_FILE = "chime_train.json"


def build_parser() -> argparse.ArgumentParser:
    """The ``chime train`` argument parser."""
    p = argparse.ArgumentParser(prog="chime train", description=__doc__)
    p.add_argument("config", type=Path, help="training YAML (see training/configs/)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output_dir")
    p.add_argument("--skip-bad", action="store_true", help="skip malformed data lines (counted) instead of stopping")
    p.add_argument("--output-dir", type=Path, help="override train.output_dir")
    p.add_argument("--max-steps", type=int, help="override train.max_steps")
    return p


def apply_overrides(cfg: TrainConfig, args: argparse.Namespace) -> TrainConfig:
    """The config with command-line overrides applied (validated again)."""
    raw = cfg.model_dump()
    if args.skip_bad:
        raw["data"]["skip_bad"] = True
    if args.output_dir is not None:
        raw["train"]["output_dir"] = args.output_dir
    if args.max_steps is not None:
        raw["train"]["max_steps"] = args.max_steps
    return TrainConfig.model_validate(raw)


def save_final(prep: Any, cfg: TrainConfig, config_path: Path, result: dict[str, Any]) -> Path:
    """Write the adapter, its tokenizer and a summary (config, base, data hashes, losses) to output_dir."""
    out = cfg.train.output_dir
    prep.model.save_pretrained(out, save_embedding_layers=False)
    prep.tokenizer.save_pretrained(out)
    summary = {
        "config_file": str(config_path),
        "config": cfg.model_dump(mode="json"),
        "base": prep.base,
        "data": [s.__dict__ for s in prep.stats],
        "dtype": str(prep.dtype).removeprefix("torch."),
        "device": prep.device,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **result,
    }
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    return out


def run(cfg: TrainConfig, config_path: Path, resume: bool) -> dict[str, Any]:
    """Prepare, train (or resume) and save; return the summary numbers."""
    from training.fit.models import set_threads
    from training.fit.prepare import prepare
    from training.fit.trainer import Trainer

    if not resume and list_checkpoints(cfg.train.output_dir):
        raise ConfigError(
            f"train.output_dir: {cfg.train.output_dir} already has checkpoints; pass --resume or choose another"
        )
    threads = set_threads(cfg.train.threads)
    prep = prepare(cfg)
    print(f"device {prep.device}, dtype {prep.dtype}, {threads} threads", file=sys.stderr)
    trainer = Trainer(prep, cfg, log=lambda s: print(s, file=sys.stderr))
    resumed = resume and trainer.resume()
    result: dict[str, Any] = {"resumed": resumed}
    if not resumed:
        result["initial_eval_loss"] = trainer.dev_loss()
    result.update(trainer.run())
    result["final_eval_loss"] = trainer.dev_loss()
    result["final_train_loss"] = trainer.history[-1]["loss"] if trainer.history else None
    save_final(prep, cfg, config_path, result)
    return result


def _out_of_memory(e: BaseException) -> bool:
    # torch.OutOfMemoryError (CUDA) and MemoryError (host) both mean: resume with less.
    return isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError"


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        cfg = apply_overrides(load_config(args.config), args)
        from training.fit.labels import TemplateError
        from training.fit.models import ModelLoadError
        from training.fit.trainer import Interrupted
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        result = run(cfg, args.config, args.resume)
    except (ConfigError, SeedFormatError, FileNotFoundError, ModelLoadError, TemplateError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(f"interrupted: {e}", file=sys.stderr)
        return 130
    except Exception as e:
        if not _out_of_memory(e):
            raise
        print(
            f"out of memory: {e}\nlower train.batch_size and raise train.grad_accumulation by the same factor, "
            "then run again with --resume to continue from the last checkpoint (a different data.max_length "
            "needs a new run)",
            file=sys.stderr,
        )
        return 3
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
