"""The real-traffic check: annotated IRC logs replayed as channels, gold-silent lines, the unprompted rate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fakes import ScriptedRuntime
from training.eval import irc
from training.eval.evaluate import main

SHARED_DEV = Path(__file__).resolve().parents[3] / "shared" / "data" / "ubuntu-irc" / "dev"


def _write_log(folder: Path, tail: list[str], links: list[tuple[int, int]]) -> None:
    """A log whose annotated part (line 1000 on) is ``tail``, after 1000 lines of context."""
    context = [f"[10:{i % 60:02d}] <old{i % 3}> context line {i}" for i in range(999)]
    lines = [*context, "=== alice has joined #ubuntu", *tail]
    (folder / "2020-01-01.ascii.txt").write_text("\n".join(lines) + "\n")
    (folder / "2020-01-01.annotation.txt").write_text("".join(f"{a} {b} -\n" for a, b in links))


def test_gold_silent_lines_and_the_unprompted_rate(tmp_path: Path) -> None:
    _write_log(
        tmp_path,
        [
            "[11:00] <alice> how do I mount an iso file?",  # 1000: to the channel, no gold
            "[11:01] <bob> alice: mount -o loop file.iso /mnt",  # 1001: opens with a present nick
            "[11:01] <alice> thanks, worked",  # 1002: answers bob's line (link), no nick
            "[11:02] <ubotu> factoid: iso is a disk image",  # 1003: the channel's bot, not measured
            "[11:03] <carol> which kernel added btrfs?",  # 1004: no gold
            "[11:03] <carol> never mind, found it",  # 1005: linked to her own line: not another person
        ],
        links=[(1000, 1000), (1000, 1001), (1001, 1002), (1004, 1005)],
    )
    # The model alone would speak on every question-like line.
    runtime = ScriptedRuntime(lambda w: 0.9 if "?" in w[-1].content or ":" in w[-1].content else 0.1)
    report = irc.evaluate(runtime, tmp_path, threshold=0.5, lines_out=tmp_path / "lines.jsonl")
    assert report["lines"] == 5 and report["logs"] == 1
    assert report["nick_address"]["lines"] == 1 and report["reply_link_only"]["lines"] == 1
    assert report["put_to_another_person"]["lines"] == 2
    # bob's "alice: ..." is left to alice by the rule; alice's thanks is below threshold.
    assert report["unprompted_rate"] == 0.0
    assert report["put_to_another_person"]["speak_rate_model_only"] == 0.5
    assert report["no_gold"]["lines"] == 3
    # One channel per log, whose cache is dropped at the end; windows stay within the history.
    assert runtime.forgotten == ["irc-0"] and max(len(c.window) for c in runtime.calls) <= 40
    # Every measured line is written out with its text and marks, so the errors can be read.
    rows = [json.loads(line) for line in (tmp_path / "lines.jsonl").read_text().splitlines()]
    assert [(r["line"], r["nick"], r["gold"]) for r in rows] == [
        (1000, "alice", None),
        (1001, "bob", "nick_address"),
        (1002, "alice", "reply_link"),
        (1004, "carol", None),
        (1005, "carol", None),
    ]
    assert (
        rows[1]["content"] == "alice: mount -o loop file.iso /mnt" and rows[1]["to_other"] and rows[1]["p_speak"] == 0.9
    )
    assert report["lines_file"] == str(tmp_path / "lines.jsonl")


def test_a_nick_at_the_end_of_a_line_is_not_the_gold_mark(tmp_path: Path) -> None:
    _write_log(
        tmp_path,
        [
            "[11:00] <alice> how do I mount an iso file?",  # 1000: to the channel
            "[11:01] <bob> did you try mount -o loop, alice?",  # 1001: ends with a present nick, no link
        ],
        links=[(1000, 1000), (1001, 1001)],
    )
    report = irc.evaluate(ScriptedRuntime(lambda w: 0.9), tmp_path, threshold=0.5)
    # The mark is an opening address; the bot's own rule still leaves bob's line to alice.
    assert report["nick_address"]["lines"] == 0 and report["no_gold"]["lines"] == 2
    assert report["no_gold"]["speak_rate"] == 0.5


def test_a_bad_annotation_line_names_the_file(tmp_path: Path) -> None:
    _write_log(tmp_path, ["[11:00] <alice> hi"], links=[])
    (tmp_path / "2020-01-01.annotation.txt").write_text("1000 x -\n")
    with pytest.raises(irc.RuntimeError_, match=r"2020-01-01.annotation.txt:1"):
        irc.evaluate(ScriptedRuntime(0.1), tmp_path, threshold=0.5)


def test_a_folder_without_logs_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "one.jsonl"
    data.write_text(json.dumps([{"role": "user", "name": "A", "content": "hi"}]) + "\n")
    cfg = tmp_path / "rules.yaml"
    cfg.write_text("runtime:\n  kind: rules\n")
    assert main([str(data), "--config", str(cfg), "--no-baselines", "--irc", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err


@pytest.mark.skipif(not SHARED_DEV.is_dir(), reason="the shared Ubuntu IRC data is not beside the checkout")
def test_the_shared_dev_logs_parse_and_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "one.jsonl"
    data.write_text(json.dumps([{"role": "user", "name": "A", "content": "hi"}]) + "\n")
    cfg = tmp_path / "rules.yaml"
    cfg.write_text("runtime:\n  kind: rules\n")
    argv = [str(data), "--config", str(cfg), "--no-baselines", "--json", "--irc", str(SHARED_DEV)]
    assert main([*argv, "--irc-max-lines", "30", "--turns", str(tmp_path / "turns.jsonl")]) == 0
    report = json.loads(capsys.readouterr().out)
    # --turns puts the IRC lines in a file of their own beside the data set's turns.
    assert len((tmp_path / "turns-irc.jsonl").read_text().splitlines()) == 300 and (tmp_path / "turns.jsonl").is_file()
    traffic = report["real_traffic"]
    assert traffic["logs"] == 10 and traffic["lines"] == 300
    assert traffic["put_to_another_person"]["lines"] > 50  # real people mostly talk to each other
    assert 0.0 <= traffic["unprompted_rate"] <= 1.0 and len(report["sets"]) == 1


def test_the_irc_lines_never_overwrite_a_data_sets_turns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = json.dumps([{"role": "user", "name": "A", "content": "hi"}]) + "\n"
    (tmp_path / "a.jsonl").write_text(line)
    (tmp_path / "irc.jsonl").write_text(line)
    cfg = tmp_path / "rules.yaml"
    cfg.write_text("runtime:\n  kind: rules\n")
    argv = [str(tmp_path / "a.jsonl"), str(tmp_path / "irc.jsonl"), "--config", str(cfg), "--no-baselines"]
    argv += ["--irc", str(tmp_path), "--turns", str(tmp_path / "t.jsonl")]
    # The set named "irc" writes t-irc.jsonl, where the IRC lines would go: refused before anything runs.
    assert main(argv) == 2
    assert "t-irc.jsonl" in capsys.readouterr().err and not (tmp_path / "t-a.jsonl").exists()
