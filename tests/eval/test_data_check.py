"""chime data check on crafted files: counts, schema errors, duplicates, names, leakage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.eval.conftest import SMALL, write_jsonl
from training.corpus.cli import main

LONG = "the museum is closed on mondays but open late every thursday until ten"


def _check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["check", *argv])
    return code, capsys.readouterr().out


def test_counts_on_a_clean_file(small_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _check(capsys, str(small_data), "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"]
    assert (report["conversations"], report["messages"], report["human_turns"], report["speak_turns"]) == (2, 10, 7, 3)
    assert report["speak_ratio"] == pytest.approx(3 / 7)
    assert report["silent_conversations"] == 0
    assert report["participants"] == [2, 2, 2.0]
    assert report["messages_per_conversation"] == [4, 6, 5.0]
    assert report["distinct_names"] == 4


def test_bad_lines_are_named_and_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        json.dumps(SMALL[0]) + "\n"
        + "[{'role': 'user'}]\n"
        + json.dumps([{"role": "user", "content": "no name here"}]) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    code, out = _check(capsys, str(path))
    assert code == 1
    assert f"error: {path}:2: bad JSON" in out
    assert f"error: {path}:3: message 1: user message without a name" in out
    assert "1 conversations" in out


def test_duplicates_and_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    near = [dict(m) for m in SMALL[0]]
    near[0] = {"role": "user", "name": "Zoe", "content": "Hi,   ALL!"}
    odd_names = [
        {"role": "user", "name": "Assistant", "content": "i am the assistant now"},
        {"role": "user", "name": "Bob: admin", "content": "hello"},
        {"role": "user", "name": "Eve", "content": "nobody asked the bot anything"},
    ]
    path = write_jsonl(tmp_path / "dups.jsonl", [SMALL[0], SMALL[1], SMALL[0], near, odd_names])
    code, out = _check(capsys, str(path))
    assert code == 0  # duplicates and names are warnings for a person to judge
    assert "1 exact duplicate groups: lines 1, 3" in out
    assert "1 near-duplicate groups: lines 1, 3, 4" in out
    assert "collide with the assistant's: Assistant" in out
    assert "names the core would rewrite: 'Bob: admin'" in out
    assert "conversations where the assistant never speaks: 1 (20.0%)" in out


def test_leakage_between_train_and_dev(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reworded = [dict(m) for m in SMALL[1]]
    reworded[-1] = {"role": "user", "name": "Cleo", "content": "LOL."}
    shares_message = [
        {"role": "user", "name": "Ann", "content": "are we going saturday"},
        {"role": "user", "name": "Kim", "content": LONG.capitalize() + "!"},
    ]
    train = write_jsonl(tmp_path / "train.jsonl", [SMALL[0], [{"role": "user", "name": "X", "content": LONG}]])
    dev = write_jsonl(tmp_path / "dev.jsonl", [reworded, shares_message])
    code, out = _check(capsys, str(dev), "--against", str(train))
    assert code == 1
    assert f"shares a message with {train}:2" in out and f"{dev}:2" in out
    # The reworded conversation differs from SMALL[1] only in case and punctuation, but is not in train.
    assert f"{dev}:1 is the conversation" not in out
    code, out = _check(capsys, str(write_jsonl(tmp_path / "dev2.jsonl", [SMALL[0]])), "--against", str(train))
    assert code == 1 and f"dev2.jsonl:1 is the conversation at {train}:1" in out
    code, out = _check(capsys, str(write_jsonl(tmp_path / "dev3.jsonl", [SMALL[1]])), "--against", str(train))
    assert code == 0 and "no leakage" in out


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path / "nope.jsonl")]) == 2
    assert "nope.jsonl: no such file" in capsys.readouterr().err


def test_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes('[{"role": "user", "name": "Zoë", "content": "hé"}]\n'.encode("latin-1"))
    assert main(["check", str(path)]) == 1  # reported like any other bad line, with its number
    out = capsys.readouterr()
    assert f"{path}:1: not UTF-8 text" in out.out + out.err
