"""The corpus and the default adapter in the repository still are what their cards say."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest

from model_runtime.seed_format import read_seed_file
from training.corpus.check import check_file

ROOT = Path(__file__).resolve().parents[2]
TRAIN, DEV = ROOT / "training" / "data" / "train.jsonl", ROOT / "training" / "data" / "dev.jsonl"
CHALLENGE = ROOT / "training" / "data" / "challenge.jsonl"
ADAPTER = ROOT / "model_runtime" / "default_adapter"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(("path", "other"), [(TRAIN, DEV), (DEV, TRAIN)], ids=["train", "dev"])
def test_each_split_follows_the_corpus_policy(path: Path, other: Path) -> None:
    r = check_file(path, against=other)
    assert not (r.schema_errors or r.exact_duplicates or r.near_duplicates), "chime data check would fail"
    assert not (r.leaked_conversations or r.leaked_messages), "train and dev overlap"
    assert not (r.unsafe_names or r.assistant_name_collisions)
    assert 0.15 <= r.speak_ratio <= 0.20
    assert r.silent_conversations >= 0.2 * r.conversations
    assert 2 <= r.participants[0] and r.participants[1] <= 7
    for conv in read_seed_file(path).conversations:
        assert 2 <= sum(m["role"] == "user" for m in conv) <= 16


def test_the_challenge_split_is_never_trained_on_and_covers_the_hard_cases() -> None:
    for other in (TRAIN, DEV):
        r = check_file(CHALLENGE, against=other)
        assert not (r.schema_errors or r.exact_duplicates or r.near_duplicates)
        assert not (r.leaked_conversations or r.leaked_messages), f"challenge overlaps {other.name}"
    assert r.conversations >= 80 and 0.12 <= r.speak_ratio <= 0.25


def test_the_pending_parts_are_clean_and_share_nothing_with_the_splits() -> None:
    # A part waiting for the next adapter (training/data/pending/) must merge without leaking.
    for pending in sorted((ROOT / "training" / "data" / "pending").glob("*.jsonl")):
        for other in (TRAIN, DEV, CHALLENGE):
            r = check_file(pending, against=other)
            assert not (r.schema_errors or r.exact_duplicates or r.near_duplicates), pending.name
            assert not (r.leaked_conversations or r.leaked_messages), f"{pending.name} overlaps {other.name}"
            assert not (r.unsafe_names or r.assistant_name_collisions), pending.name
            assert 0.12 <= r.speak_ratio <= 0.20, pending.name


def test_the_splits_are_big_enough() -> None:
    train, dev = check_file(TRAIN), check_file(DEV)
    assert dev.conversations >= 60 and train.conversations + dev.conversations >= 400


def test_the_default_adapter_matches_its_metadata_and_the_data() -> None:
    gguf = ADAPTER / "adapter.gguf"
    meta = json.loads((ADAPTER / "meta.json").read_text())
    assert gguf.stat().st_size <= 20 * 1024 * 1024
    assert meta["adapter_sha256"] == _sha256(gguf)
    # Retrained after the data changed? Then the adapter (and this hash) must be rebuilt too.
    assert meta["data_sha256"] == {"train": _sha256(TRAIN), "dev": _sha256(DEV)}
    assert 0.0 < meta["threshold"] < 1.0
    report = json.loads((ADAPTER / "eval_dev.json").read_text())
    assert report["threshold"] == pytest.approx(meta["threshold"])
    # Dev holds parts 5 and 6's hard cases (the part-5 adapter: F1 0.784, 4.3% there).
    assert report["f1"] >= 0.84 and report["false_interruption_rate"] <= 0.035 and report["forced_compliance"] == 1.0
    # The challenge report beside it is the same adapter's at the same threshold (never trained on).
    challenge = json.loads((ADAPTER / "eval_challenge.json").read_text())
    assert challenge["data"].endswith("challenge.jsonl") and "default_adapter" in challenge["model_id"]
    assert challenge["threshold"] == pytest.approx(meta["threshold"]) and challenge["forced_compliance"] == 1.0


@pytest.mark.slow
# 1,333 decisions take 360 to 600 s on 2 quiet cores (591 s on one AMD EPYC), and more beside
# other work (cut at 600 s next to a training job): it must not fail on time alone, so 3x the suite's limit.
@pytest.mark.timeout(1800)
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="needs the cpu extra")
def test_the_default_runtime_still_meets_the_targets_on_dev() -> None:
    """The whole dev split, replayed as `chime eval` does, with the runtime `chime run` uses."""
    from model_runtime import create_runtime
    from model_runtime.options import LlamaCppOptions
    from training.eval.evaluate import replay, summarize

    runtime = create_runtime(LlamaCppOptions(n_threads=1))  # one thread: CI shares its 2 cores
    try:
        rep = replay(runtime, read_seed_file(DEV).conversations, assistant_name=runtime.assistant_name)
        m = summarize(runtime, rep, runtime.base_threshold)
    finally:
        runtime.close()
    assert "default_adapter" in m["model_id"] and runtime.base_threshold == pytest.approx(0.486)
    # What the bot does (the model's p_speak plus the service's addressing rules) stays close
    # to what the card reports (F1 0.850, false interruptions 3.03% on the dev split of parts
    # 1 to 6); the targets are F1 >= 0.85 and <= 3%: the second is not met yet.
    assert m["f1"] >= 0.84 and m["false_interruption_rate"] <= 0.035 and m["forced_compliance"] == 1.0
    shipped = json.loads((ADAPTER / "eval_dev.json").read_text())
    # Greedy and deterministic: only llama.cpp's thread count can move a p_speak a little.
    assert abs(m["f1"] - shipped["f1"]) <= 0.01
    assert abs(m["model_only"]["f1"] - shipped["model_only"]["f1"]) <= 0.01
