"""QLoRA on the CPU: bitsandbytes 4-bit NF4 base, LoRA on top, the loss goes down."""

from __future__ import annotations

import json
from pathlib import Path

from tests.training.test_train_smoke import SMOKE, _config
from training import train_cli
from training.config import TrainConfig
from training.models import check_4bit
from training.prepare import prepare


def _qlora_config(out: Path, **train) -> TrainConfig:
    raw = _config(out, **train).model_dump()
    raw["model"].update(load_in_4bit=True, gradient_checkpointing=True)
    return TrainConfig.model_validate(raw)


def test_the_base_is_really_4bit_and_only_lora_trains(tmp_path: Path) -> None:
    check_4bit("cpu")  # a clear error here would say bitsandbytes lost CPU support
    prep = prepare(_qlora_config(tmp_path / "run", max_steps=1))
    import bitsandbytes as bnb

    # peft's LoRA wrapper is also called Linear4bit; the frozen base layers are bnb's own.
    linear4 = [m for m in prep.model.modules() if type(m) is bnb.nn.Linear4bit]
    assert len(linear4) == 2 * 7  # 2 layers x q, k, v, o, gate, up, down
    assert all(m.weight.quant_state.quant_type == "nf4" for m in linear4)
    trainable = {n for n, p in prep.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)


def test_qlora_training_on_cpu_lowers_the_loss(tmp_path: Path) -> None:
    cfg = _qlora_config(tmp_path / "run", max_steps=40)
    result = train_cli.run(cfg, SMOKE, resume=False)
    assert result["steps"] == 40
    assert result["final_eval_loss"] < result["initial_eval_loss"] - 1.0
    summary = json.loads((tmp_path / "run" / train_cli.SUMMARY_FILE).read_text())
    assert summary["base"]["train_sha256"] and (tmp_path / "run" / "adapter_model.safetensors").is_file()
