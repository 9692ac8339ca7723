"""Every shipped training config validates; bad configs name the file and the dotted key."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.fit.config import ConfigError, load_config

CONFIG_DIR = Path(__file__).resolve().parents[2] / "training" / "configs"
SHIPPED = sorted(CONFIG_DIR.glob("*.yaml"))


def test_the_expected_configs_are_shipped() -> None:
    names = {p.name for p in SHIPPED}
    assert {
        "smollm2-135m-cpu.yaml",
        "zephyr-7b-qlora.yaml",
        "llama2-7b-chat-qlora.yaml",
        "openchat-3.5-qlora.yaml",
        "tiny-smoke.yaml",
    } <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_config_is_valid_and_says_how_to_run_it(path: Path) -> None:
    cfg = load_config(path)
    assert f"chime train training/configs/{path.name}" in path.read_text(encoding="utf-8")
    assert cfg.train.output_dir.parts[0] == "runs"
    if "qlora" in path.name:
        assert cfg.model.load_in_4bit and cfg.model.gradient_checkpointing


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_unknown_key_is_named_with_its_path(tmp_path: Path) -> None:
    p = _write(tmp_path, "model: {base: x}\ntrain: {output_dir: o}\nlora: {rank: 8}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(p) in str(e.value) and "lora.rank" in str(e.value)


def test_float16_is_refused(tmp_path: Path) -> None:
    p = _write(tmp_path, "model: {base: x, dtype: float16}\ntrain: {output_dir: o}\n")
    with pytest.raises(ConfigError, match="model.dtype"):
        load_config(p)


def test_tiny_sizes_must_fit(tmp_path: Path) -> None:
    p = _write(tmp_path, "model: {base: 'tiny:llama', tiny: {hidden_size: 30, heads: 4}}\ntrain: {output_dir: o}\n")
    with pytest.raises(ConfigError, match="multiple of heads"):
        load_config(p)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "model: [unclosed\n"))
