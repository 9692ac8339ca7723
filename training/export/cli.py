"""``chime export ADAPTER_DIR --gguf OUT.gguf``: a trained adapter as a GGUF LoRA (plus meta.json), or merged."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from training.export.gguf import ExportError, write_gguf_lora
from training.fit.cli import SUMMARY_FILE
from training.fit.dataset import file_sha256
from training.fit.models import BaseRef, ModelLoadError, resolve_base

META_FILE = "meta.json"


def build_parser() -> argparse.ArgumentParser:
    """The ``chime export`` argument parser."""
    p = argparse.ArgumentParser(prog="chime export", description=__doc__)
    p.add_argument("adapter_dir", type=Path, help="a directory written by chime train (or any peft LoRA adapter)")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--gguf", type=Path, help="write a GGUF LoRA adapter for llama.cpp here (meta.json beside it)")
    out.add_argument("--merge", type=Path, help="write the base with the adapter merged in (transformers) here")
    p.add_argument("--base", help="base model (HF id, dir, .gguf, bundled:smollm2); default: from chime_train.json")
    p.add_argument("--outtype", choices=["f16", "f32"], default="f16", help="GGUF tensor type (default f16)")
    p.add_argument("--threshold", type=float, help="recommended p_speak threshold to record in meta.json")
    p.add_argument("--verify", type=int, default=0, metavar="N",
                   help="compare p_speak of llama.cpp+GGUF LoRA and transformers+peft on N decisions")  # fmt: skip
    return p


def read_summary(adapter_dir: Path) -> dict[str, Any]:
    """chime_train.json of a chime-trained adapter ({} for a foreign peft adapter)."""
    path = adapter_dir / SUMMARY_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def base_for(adapter_dir: Path, summary: dict[str, Any], override: str | None) -> tuple[str, BaseRef]:
    """(spec, reference) of the base the adapter was trained on."""
    if override:
        return override, _ref(override)
    base = summary.get("base", {})
    if base.get("spec", "").startswith("tiny:"):
        return base["spec"], BaseRef(base["path"])
    if base.get("spec"):
        return base["spec"], _ref(base["spec"])
    raise ExportError(f"{adapter_dir}: no {SUMMARY_FILE}; name the base model with --base")


def _ref(spec: str) -> BaseRef:
    return BaseRef(spec) if Path(spec).is_dir() else resolve_base(spec)


def load_config(ref: BaseRef) -> Any:
    """The base's transformers config (read from GGUF metadata for a GGUF base)."""
    from transformers import AutoConfig

    kwargs = {"gguf_file": ref.gguf_file} if ref.gguf_file else {}
    return AutoConfig.from_pretrained(ref.path, **kwargs)


def write_meta(out: Path, spec: str, ref: BaseRef, summary: dict[str, Any], info: dict[str, Any], threshold: float | None) -> Path:  # fmt: skip
    """meta.json beside the GGUF: threshold, base hash, training config and data hashes."""
    base = summary.get("base", {})
    gguf = ref.gguf_path
    meta = {
        "threshold": threshold,
        "base_model": spec,
        "base_model_sha256": file_sha256(gguf) if gguf is not None else None,
        "adapter_sha256": file_sha256(out),
        "lora": info,
        "training_config": summary.get("config"),
        "data_sha256": {k.removesuffix("_sha256"): v for k, v in base.items() if k.endswith("_sha256") and k != "gguf_sha256"},
        "eval_loss": summary.get("final_eval_loss"),
        "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip
    path = out.parent / META_FILE
    path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return path


def load_peft_model(ref: BaseRef, adapter_dir: Path) -> tuple[Any, Any]:
    """(transformers base + peft adapter in float32, tokenizer) for merging or verifying."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": ref.gguf_file} if ref.gguf_file else {}
    base = AutoModelForCausalLM.from_pretrained(ref.path, dtype=torch.float32, **kwargs)
    tok_src = adapter_dir if (adapter_dir / "tokenizer_config.json").is_file() else ref.path
    tokenizer = AutoTokenizer.from_pretrained(tok_src, **({} if tok_src == adapter_dir else kwargs))
    if len(tokenizer) > base.get_input_embeddings().weight.shape[0]:
        base.resize_token_embeddings(len(tokenizer))
    return PeftModel.from_pretrained(base, adapter_dir).eval(), tokenizer


def merge(ref: BaseRef, adapter_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Write the merged model and tokenizer to ``out_dir``."""
    model, tokenizer = load_peft_model(ref, adapter_dir)
    merged = model.merge_and_unload()
    merged.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return {"merged": str(out_dir)}


def verify(ref: BaseRef, adapter_dir: Path, gguf_out: Path, summary: dict[str, Any], n: int) -> dict[str, Any]:
    """p_speak under llama.cpp + the GGUF LoRA against transformers + peft on ``n`` dev decisions."""
    from model_runtime.seed_format import read_seed_file
    from training.export.pspeak import compare, decision_points, llama_cpp_evaluator, transformers_evaluator
    from training.fit.dataset import conversation_messages

    if ref.gguf_path is None:
        raise ExportError("--verify needs a GGUF base model (llama.cpp loads the adapter over it)")
    data = summary.get("config", {}).get("data", {})
    path = data.get("dev") or data.get("train")
    if not path:
        raise ExportError("--verify needs the training config's data paths (chime_train.json)")
    convs = [conversation_messages(c) for c in read_seed_file(path, skip_bad=True).conversations]
    model, tokenizer = load_peft_model(ref, adapter_dir)
    decisions = decision_points(tokenizer, convs, n)
    pairs = compare(decisions, transformers_evaluator(model), llama_cpp_evaluator(str(ref.gguf_path), str(gguf_out)))
    diffs = [abs(a - b) for a, b in pairs]
    return {"verified": len(pairs), "max_abs_diff": max(diffs), "mean_abs_diff": sum(diffs) / len(diffs)}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        summary = read_summary(args.adapter_dir)
        spec, ref = base_for(args.adapter_dir, summary, args.base)
        if args.merge:
            result = merge(ref, args.adapter_dir, args.merge)
        else:
            info = write_gguf_lora(args.adapter_dir, load_config(ref), args.gguf, args.outtype)
            meta = write_meta(args.gguf, spec, ref, summary, info, args.threshold)
            result = {"gguf": str(args.gguf), "meta": str(meta), **info}
            if args.verify:
                result.update(verify(ref, args.adapter_dir, args.gguf, summary, args.verify))
    except (ExportError, ModelLoadError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
