"""Small seed-format files for the evaluation and data-tool tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# Gold decisions and the rule-based runtime's p_speak (addressed 0.9, wh-question 0.3, else 0.05):
#   conv 1: "hi all" silent/0.05, "assistant, ..." speak/0.9, "who wrote dune?" speak/0.3, "thanks" silent/0.05
#   conv 2: "@assistant ..." speak/0.9 (forced), "hey assistant ..." silent/0.9, "lol" silent/0.05
SMALL = [
    [
        {"role": "user", "name": "Ana", "content": "hi all"},
        {"role": "user", "name": "Ben", "content": "assistant, what year did the berlin wall fall?"},
        {"role": "assistant", "content": "In 1989."},
        {"role": "user", "name": "Ana", "content": "who wrote dune?"},
        {"role": "assistant", "content": "Frank Herbert."},
        {"role": "user", "name": "Ben", "content": "thanks"},
    ],
    [
        {"role": "user", "name": "Cleo", "content": "@assistant how tall is everest?"},
        {"role": "assistant", "content": "About 8,849 metres."},
        {"role": "user", "name": "Dev", "content": "hey assistant you can stay out of this one"},
        {"role": "user", "name": "Cleo", "content": "lol"},
    ],
]


def write_jsonl(path: Path, conversations: list) -> Path:
    """Write conversations one per line."""
    path.write_text("".join(json.dumps(c) + "\n" for c in conversations), encoding="utf-8")
    return path


@pytest.fixture
def small_data(tmp_path: Path) -> Path:
    """The two hand-labelled conversations above."""
    return write_jsonl(tmp_path / "small.jsonl", SMALL)


@pytest.fixture
def rules_config(tmp_path: Path) -> Path:
    """A chime config selecting the rule-based runtime."""
    path = tmp_path / "rules.yaml"
    path.write_text("runtime:\n  kind: rules\n", encoding="utf-8")
    return path
