"""Seed-format files: every malformed line is reported as file:line with the reason."""

import json
from pathlib import Path

import pytest

from model_runtime.seed_format import SeedFormatError, read_seed_file, write_seed_file

GOOD = [{"role": "user", "name": "Ann", "content": "hi"}, {"role": "assistant", "content": "hello"}]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "bad JSON"),
        (json.dumps({"role": "user"}), "expected a JSON array"),
        (json.dumps([]), "empty conversation"),
        (json.dumps([{"role": "bot", "content": "x"}]), "unknown role 'bot'"),
        (json.dumps([{"role": "assistant", "content": "x"}]), "starts with an assistant"),
        (json.dumps([GOOD[0], GOOD[1], {"role": "assistant", "content": "again"}]), "two assistant messages in a row"),
        (json.dumps([{"role": "user", "content": "no name"}]), "without a name"),
        (json.dumps([{"role": "user", "name": "Ann", "content": "  "}]), "empty or missing content"),
    ],
)
def test_bad_lines_name_file_line_and_reason(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + line + "\n")
    with pytest.raises(SeedFormatError) as info:
        read_seed_file(path)
    assert str(info.value).startswith(f"{path}:3: ")
    assert reason in str(info.value)


def test_skip_bad_counts_and_keeps_good_lines(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join([json.dumps(GOOD), "oops", json.dumps(GOOD)]) + "\n")
    result = read_seed_file(path, skip_bad=True)
    assert len(result.conversations) == 2
    assert result.line_numbers == [1, 3]
    assert [e.line for e in result.errors] == [2]


def test_write_then_read(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    write_seed_file(path, [GOOD, GOOD[:1]])
    assert read_seed_file(path).conversations == [GOOD, GOOD[:1]]


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read_seed_file(tmp_path / "nope.jsonl")
