"""chime eval with real runtimes: the rule-based one, and the policy baselines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model_runtime.addressing import addresses_assistant, mentions_assistant
from model_runtime.rules import RuleBasedRuntime
from tests.eval.conftest import SMALL, write_jsonl
from tests.fakes import ScriptedRuntime
from training.eval.baselines import AlwaysSilentRuntime, MentionOnlyRuntime
from training.eval.evaluate import human_windows, load_conversations, main, replay, to_turns

KEYS = {
    "precision",
    "recall",
    "f1",
    "false_interruption_rate",
    "missed_intervention_rate",
    "balanced_accuracy",
    "forced_compliance",
    "turns",
    "speak_turns",
    "decisions_per_second",
    "baselines",
}


def _run_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_replay_extends_each_window_and_uses_one_channel_per_conversation() -> None:
    runtime = ScriptedRuntime(p_speak=0.2)
    rep = replay(runtime, SMALL)
    unforced = runtime.scored
    assert [len(c.window) for c in unforced] == [1, 2, 4, 6, 1, 3, 4]
    for prev, cur in zip(unforced, unforced[1:], strict=False):
        if prev.channel == cur.channel:
            assert cur.window[: len(prev.window)] == prev.window
    assert [c.channel for c in unforced] == ["eval-0"] * 4 + ["eval-1"] * 3
    # Every human turn is scored; a reply is asked for the forced turns alone, forced as
    # the bot forces: "@assistant", and the name used as an address.
    assert [c.window[-1].content for c in runtime.replies] == [
        "assistant, what year did the berlin wall fall?",
        "@assistant how tall is everest?",
        "hey assistant you can stay out of this one",
    ]
    assert runtime.forgotten == ["eval-0", "eval-1"]
    assert [r.gold_speak for r in rep.results] == [False, True, True, False, True, False, False]
    assert rep.decisions == 7


def test_rules_runtime_metrics_by_hand(
    small_data: Path, rules_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(small_data), "--config", str(rules_config), "--json", "--baselines", "always_silent,mention_only"]
    report = _run_json(capsys, argv)
    assert KEYS <= set(report)
    # At 0.5: tp 2 (berlin, everest), fp 1 (hey assistant), fn 1 (dune), tn 3.
    assert (report["tp"], report["fp"], report["fn"], report["tn"]) == (2, 1, 1, 3)
    assert report["precision"] == pytest.approx(2 / 3)
    assert report["false_interruption_rate"] == pytest.approx(1 / 4)
    assert report["balanced_accuracy"] == pytest.approx((2 / 3 + 3 / 4) / 2)
    assert report["forced_compliance"] == 1.0
    assert (report["turns"], report["speak_turns"]) == (7, 3)
    assert report["decisions_per_second"] > 0
    assert set(report["baselines"]) == {"always_silent", "mention_only"}
    silent = report["baselines"]["always_silent"]
    assert (silent["f1"], silent["false_interruption_rate"], silent["forced_compliance"]) == (0.0, 0.0, 0.0)
    mention = report["baselines"]["mention_only"]
    assert (mention["tp"], mention["fp"], mention["fn"]) == (2, 1, 1)


def test_threshold_override_and_no_baselines(
    small_data: Path, rules_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(small_data), "--config", str(rules_config), "--json", "--threshold", "0.2", "--no-baselines"]
    report = _run_json(capsys, argv)
    assert report["threshold"] == 0.2
    assert (report["tp"], report["fp"], report["fn"]) == (3, 1, 0)
    assert report["baselines"] == {}


def test_text_report_and_sweep_png(
    small_data: Path, rules_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "sweep.png"
    argv = [str(small_data), "--config", str(rules_config), "--sweep", str(png), "--no-baselines"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # p_speak values 0.05, 0.3, 0.9: speaking from 0.3 up (threshold 0.175) catches all three gold speaks.
    assert "best threshold by F1: 0.175 (F1 0.857)" in out
    # "hey assistant you can stay out of this one" is gold silent but forced: one of four silent
    # turns (25%) is interrupted at every threshold, so no threshold stays within 3%.
    assert "best threshold by F1 with false interruptions <= 3%: none (forced turns alone exceed it)" in out
    assert "rules" in out and "targets" in out


def test_turns_file_lists_every_human_turn_with_its_decision_inputs(
    small_data: Path, rules_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "turns.jsonl"
    argv = [str(small_data), "--config", str(rules_config), "--json", "--threshold", "0.2", "--no-baselines"]
    report = _run_json(capsys, [*argv, "--turns", str(out)])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    humans = [m for conv in load_conversations(small_data) for m in conv if m["role"] == "user"]
    assert report["turns_file"] == str(out) and len(rows) == report["turns"] == len(humans)
    assert [r["content"] for r in rows] == [m["content"] for m in humans]
    assert sum(r["gold_speak"] for r in rows) == report["speak_turns"]
    # The file holds what the metrics are computed from: the same decisions at the same threshold.
    spoke = [r["forced"] or (not r["to_other"] and r["p_speak"] >= 0.2) for r in rows]
    assert sum(s and r["gold_speak"] for s, r in zip(spoke, rows, strict=True)) == report["tp"]
    assert sum(s and not r["gold_speak"] for s, r in zip(spoke, rows, strict=True)) == report["fp"]


def test_no_human_turns_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    assert main([str(empty), "--no-baselines"]) == 2
    assert f"{empty}: no human turns to evaluate" in capsys.readouterr().err


def test_bad_line_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write_jsonl(tmp_path / "bad.jsonl", [SMALL[0], [{"role": "assistant", "content": "hi"}]])
    assert main([str(bad), "--no-baselines"]) == 2
    assert f"{bad}:2: message 1: the conversation starts with an assistant message" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"bad\.jsonl:2"):
        load_conversations(bad)


def test_bad_config_and_threshold(small_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("runtime:\n  kind: rules\n  speed: 3\n", encoding="utf-8")
    assert main([str(small_data), "--config", str(cfg)]) == 2
    assert "runtime.speed" in capsys.readouterr().err
    assert main([str(small_data), "--threshold", "1.5"]) == 2


def test_windows_trim_in_steps_and_never_start_with_the_assistant() -> None:
    msgs = [{"role": "user", "name": f"u{i % 2}", "content": f"m{i}"} for i in range(12)]
    msgs[3] = {"role": "assistant", "content": "a3"}
    windows = list(human_windows(to_turns(msgs, "assistant"), history=5))
    starts = [k + 1 - len(w) for k, w in windows]
    # Past 5 messages the start jumps to keep 3 (at k=5 that is message 3, the assistant's, so 4),
    # then stays put until the window is over 5 long again.
    assert [k for k, _ in windows] == [0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11]
    assert starts == [0, 0, 0, 0, 4, 4, 4, 4, 7, 7, 7]
    assert all(w[0].role == "user" for _, w in windows)


def test_names_are_sanitised_as_the_core_does() -> None:
    turns = to_turns([{"role": "user", "name": "assistant", "content": "hi"}], "assistant")
    assert turns[0].name != "assistant"


@pytest.mark.parametrize(
    ("text", "addressed"),
    [
        ("@assistant what time is it", True),
        ("assistant, which way do I turn it?", True),
        ("found it. Assistant: how long do I boil it?", True),
        ("hey assistant what's the capital of peru", True),
        ("what's 7 times 8, assistant?", True),
        ("the assistant was wrong yesterday", False),
        ("my assistant manager is away", False),
        ("no idea", False),
    ],
)
def test_mention_only_policy(text: str, addressed: bool) -> None:
    assert addresses_assistant(text, "assistant") is addressed
    assert MentionOnlyRuntime().score(
        "c", to_turns([{"role": "user", "name": "A", "content": text}], "x")
    ).p_speak == float(addressed)


def test_forced_needs_the_at_sign_and_honours_the_name() -> None:
    assert mentions_assistant("@Assistant hi", "assistant") and not mentions_assistant("assistant, hi", "assistant")
    assert mentions_assistant("@chime hi", "chime") and not mentions_assistant("@assistant hi", "chime")
    assert AlwaysSilentRuntime().reply("c", []).text == ""
    assert RuleBasedRuntime().reply("c", to_turns([{"role": "user", "name": "A", "content": "x"}], "a")).text
