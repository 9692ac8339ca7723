"""The tiny smoke training: loss goes down, a run stopped midway resumes to the same weights, bad data stops it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from training.fit import cli as train_cli
from training.fit.config import ConfigError, TrainConfig, load_config
from training.fit.prepare import prepare
from training.fit.trainer import Interrupted, Trainer

SMOKE = Path(__file__).resolve().parents[2] / "training" / "configs" / "tiny-smoke.yaml"
ROOT = SMOKE.parents[2]


# QLoRA: the base in bitsandbytes 4-bit NF4 (it runs on the CPU too), LoRA on top.
QLORA = {"load_in_4bit": True, "gradient_checkpointing": True}


def _config(out: Path, model: dict | None = None, **train) -> TrainConfig:
    raw = load_config(SMOKE).model_dump()
    raw["data"]["train"] = ROOT / raw["data"]["train"]
    raw["data"]["dev"] = ROOT / raw["data"]["dev"]
    raw["model"].update(model or {})
    raw["train"].update({"output_dir": out, **train})
    return TrainConfig.model_validate(raw)


@pytest.mark.parametrize("model", [None, QLORA], ids=["lora", "qlora-4bit"])
def test_smoke_training_lowers_the_loss(tmp_path: Path, model: dict | None) -> None:
    cfg = _config(tmp_path / "run", model, max_steps=40)
    result = train_cli.run(cfg, SMOKE, resume=False)
    assert result["steps"] == 40
    assert result["final_eval_loss"] < result["initial_eval_loss"] - 1.0
    summary = json.loads((tmp_path / "run" / train_cli.SUMMARY_FILE).read_text())
    assert summary["base"]["train_sha256"] and (tmp_path / "run" / "adapter_model.safetensors").is_file()


def _adapter_weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}


def test_stopped_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    straight = Trainer(prepare(_config(tmp_path / "a", max_steps=8)), _config(tmp_path / "a", max_steps=8))
    straight.run()

    cfg = _config(tmp_path / "b", max_steps=8, save_steps=100)
    first = Trainer(prepare(cfg), cfg)
    real_step = first.train_step

    def step_then_stop(batches):
        out = real_step(batches)
        if first.step == 4:  # the 5th step finishes, then the stop request is honoured
            first._request_stop(2, None)
        return out

    first.train_step = step_then_stop
    with pytest.raises(Interrupted):
        first.run()
    assert (tmp_path / "b" / "checkpoint-5").is_dir()

    second = Trainer(prepare(cfg), cfg)
    assert second.resume() and second.step == 5
    second.run()
    a, b = _adapter_weights(straight.prep.model), _adapter_weights(second.prep.model)
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_malformed_line_refuses_to_start(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "train.jsonl"
    lines = (ROOT / "training/smoke/train.jsonl").read_text().splitlines()[:3] + ['[{"role": "robot"}]']
    bad.write_text("\n".join(lines) + "\n")
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(SMOKE.read_text().replace("training/smoke/train.jsonl", str(bad)))
    code = train_cli.main([str(cfg_path), "--output-dir", str(tmp_path / "out"), "--max-steps", "1"])
    assert code == 2 and f"{bad}:4: " in capsys.readouterr().err
    assert not (tmp_path / "out" / "adapter_model.safetensors").exists()
    code = train_cli.main([str(cfg_path), "--output-dir", str(tmp_path / "out"), "--max-steps", "1", "--skip-bad"])
    assert code == 0
    summary = json.loads((tmp_path / "out" / train_cli.SUMMARY_FILE).read_text())
    assert len(summary["data"][0]["skipped_lines"]) == 1


def test_existing_checkpoints_need_resume(tmp_path: Path) -> None:
    (tmp_path / "out" / "checkpoint-3").mkdir(parents=True)
    (tmp_path / "out" / "checkpoint-3" / "trainer_state.pt").write_bytes(b"x")
    assert train_cli.main([str(SMOKE), "--output-dir", str(tmp_path / "out")]) == 2


def test_resume_refuses_a_checkpoint_from_another_plan(tmp_path: Path) -> None:
    cfg = _config(tmp_path / "run", max_steps=4, save_steps=2)
    Trainer(prepare(cfg), cfg).run()
    halved = _config(tmp_path / "run", max_steps=4, save_steps=2, batch_size=2, grad_accumulation=1)
    assert Trainer(prepare(halved), halved).resume()  # same rows per optimizer step: fine
    longer = _config(tmp_path / "run", max_steps=4, save_steps=2)
    raw = longer.model_dump()
    raw["data"]["max_length"] = 256
    other = TrainConfig.model_validate(raw)
    with pytest.raises(ConfigError, match=r"cannot resume, the run changed: data\.max_length"):
        Trainer(prepare(other), other).resume()


def test_decision_weight_adds_weight_on_the_marker_tokens_only(tmp_path: Path) -> None:
    """With decision_weight w, the loss is the plain loss plus (w - 1) times the markers' own cross-entropy."""
    from training.fit.batching import collate, make_rows
    from training.fit.trainer import batch_loss

    cfg = _config(tmp_path / "run", max_steps=1)
    prep = prepare(cfg)
    seq = prep.train[0]
    batch = collate(make_rows([seq], cfg.data.max_length, packing=False, seed=0), prep.tokenizer.pad_token_id)
    with torch.no_grad():
        plain, n = batch_loss(prep.model, batch, prep.device)
        weighted, n_w = batch_loss(prep.model, batch, prep.device, decision_weight=4.0)
        logits = prep.model(input_ids=batch["input_ids"]).logits[0].float()
    log_probs = torch.log_softmax(logits, dim=-1)
    # The marker token at position p is predicted by the logits at p - 1.
    marker_ce = -sum(float(log_probs[p - 1, seq.input_ids[p]]) for p, m in enumerate(seq.decision) if m and p > 0)
    assert sum(seq.decision) >= seq.assistant_turns > 0 and n == n_w
    assert float(weighted) == pytest.approx(float(plain) + 3.0 * marker_ce, rel=1e-4)
