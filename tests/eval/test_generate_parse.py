"""The generator's parse / repair / reject path on crafted answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model_runtime.seed_format import read_seed_file
from training.corpus.generate import Rejected, build_prompt, extract_json_array, generate, repair

NAMES = ["Ana", "Ben"]


def _conv(n: int = 8, names: list[str] = NAMES) -> list[dict]:
    """A clean conversation of ``n`` messages between ``names`` with one assistant reply."""
    msgs = [{"role": "user", "name": names[i % 2], "content": f"message number {i}"} for i in range(n - 1)]
    msgs.insert(3, {"role": "assistant", "content": "Paris, since 508."})
    return msgs


def _accept(answer: str) -> tuple[list[dict], bool]:
    return repair(extract_json_array(answer), NAMES)


def _reason(answer: str) -> str:
    with pytest.raises(Rejected) as e:
        _accept(answer)
    return e.value.reason


def test_clean_answer_is_accepted_unchanged() -> None:
    conv, repaired = _accept(json.dumps(_conv()))
    assert conv == _conv() and not repaired


def test_code_fence_and_chatter_around_the_array() -> None:
    answer = "Sure! Here it is:\n```json\n" + json.dumps(_conv()) + "\n```\nHope this helps [really]."
    assert _accept(answer)[0] == _conv()
    assert _accept("Here you go: " + json.dumps(_conv()) + " Enjoy!")[0] == _conv()
    assert _accept(json.dumps({"conversation": _conv()}))[0] == _conv()


def test_simple_slips_are_repaired() -> None:
    raw = [
        {"role": "Human", "speaker": "Ana", "text": "  hi Ben  "},
        {"role": "Ben", "content": "Ben: hey"},
        {"role": "assistant", "content": "(silence)"},
        {"role": "user", "name": " Ana ", "content": "who painted the mona lisa?", "timestamp": "10:00"},
        {"role": "AI", "content": "(response) Leonardo da Vinci."},
    ]
    conv, repaired = repair(raw, NAMES)
    assert repaired
    assert conv == [
        {"role": "user", "name": "Ana", "content": "hi Ben"},
        {"role": "user", "name": "Ben", "content": "hey"},
        {"role": "user", "name": "Ana", "content": "who painted the mona lisa?"},
        {"role": "assistant", "content": "Leonardo da Vinci."},
    ]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("Sure, here is a conversation between Ana and Ben about cheese.", "no JSON array"),
        ("[{'role': 'user', 'name': 'Ana', 'content': 'hi'}]", "not JSON"),
        (json.dumps([{"role": "user", "content": "hi"}]), "user message without a name"),
        (json.dumps([{"role": "assistant", "content": "Hello all!"}, *_conv()]), "assistant speaks first"),
        (json.dumps([*_conv(), {"role": "assistant", "content": "a"}, {"role": "bot", "content": "b"}]),
         "two assistant messages in a row"),
        (json.dumps([{"role": "narrator", "content": "It was a dark night."}]), "unknown role"),
        (json.dumps([{"role": "user", "name": "Ana"}]), "schema"),
        (json.dumps(["hi", "there"]), "schema"),
        (json.dumps([{"role": "user", "name": "Ana", "content": "   "}]), "schema"),
        (json.dumps([{"role": "user", "name": "@Assistant", "content": "I'm the bot"}]), "user named like the assistant"),
    ],
)  # fmt: skip
def test_bad_answers_are_rejected_with_a_reason(answer: str, reason: str) -> None:
    assert _reason(answer) == reason


def test_prompt_names_topic_people_and_shape() -> None:
    prompt = build_prompt("sourdough starters", ["Ana", "Ben", "Cleo"])
    assert "Ana, Ben and Cleo" in prompt and "sourdough starters" in prompt
    assert "between 10 and 12 messages" in prompt and "JSON array" in prompt
    json.loads(prompt[prompt.index("[") :])  # the example itself is valid seed format


def test_generate_appends_only_valid_new_conversations(tmp_path: Path) -> None:
    out = tmp_path / "gen.jsonl"
    existing = _conv(9)
    out.write_text(json.dumps(existing) + "\n", encoding="utf-8")
    # Each answer is written for the speakers the request names.
    answers = [
        lambda names: json.dumps(_conv(8, names)),  # accepted
        lambda names: "not json at all",  # rejected
        lambda names: json.dumps(_conv(8, names)),  # duplicate of the first (names do not matter)
        lambda names: json.dumps(_conv(9, names)),  # duplicate of what the file already had
        lambda names: json.dumps([{**m, "content": m["content"] + "  "} for m in _conv(10, names)]),  # repaired
        lambda names: json.dumps(_conv(4, names)),  # too short
        lambda names: json.dumps([{"role": "assistant", "content": "x"}]),  # rejected
        lambda names: json.dumps(_conv(11, ["Noor", "Teo"])),  # the prompt's example people, not the asked ones
    ]
    calls: list[tuple[str, list[str]]] = []

    def send(prompt: str, names: list[str]) -> str:
        calls.append((prompt, names))
        return answers[len(calls) - 1](names)

    log: list[str] = []
    stats = generate(send, ["tea", "maps"], len(answers), out, seed=3, log=log.append)
    assert (stats.asked, stats.accepted, stats.repaired, stats.duplicates) == (8, 2, 1, 2)
    assert dict(stats.rejected) == {
        "no JSON array": 1,
        "too short": 1,
        "assistant speaks first": 1,
        "speakers not asked for": 1,
    }
    assert "accepted 2 (1 repaired), duplicates 2, rejected 4" in stats.summary()
    kept = read_seed_file(out)
    assert kept.errors == []
    assert kept.conversations == [existing, _conv(8, calls[0][1]), _conv(10, calls[4][1])]
    assert ["tea" in p for p, _ in calls] == [True, False] * 4
    assert all(
        len(names) in (2, 3) and len(set(names)) == len(names) and ", ".join(names[:-1]) in p for p, names in calls
    )
    assert len(log) == 8 and "rejected: no JSON array" in log[1]


def test_cli_refuses_an_out_path_in_a_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from training.corpus.cli import main

    out = tmp_path / "missing" / "gen.jsonl"
    argv = ["generate", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--topic", "t", "--count", "1"]
    assert main([*argv, "--out", str(out)]) == 2
    assert "no such directory for --out" in capsys.readouterr().err


def test_topics_file(tmp_path: Path) -> None:
    from training.corpus.cli import read_topics

    path = tmp_path / "topics.txt"
    path.write_text("# one per line\nbirdwatching\n\n  moving house  \n", encoding="utf-8")
    assert read_topics(path) == ["birdwatching", "moving house"]
    path.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no topics"):
        read_topics(path)
