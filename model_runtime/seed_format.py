"""Reading, validating and writing seed-format JSON Lines (one conversation per line).

Each line is a JSON array of ``{"role": "user", "name": ..., "content": ...}`` and
``{"role": "assistant", "content": ...}`` messages; an assistant message comes only
directly after the human message it answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

Conversation = list[dict[str, str]]


class SeedFormatError(ValueError):
    """A line of a seed-format file is malformed; the message starts with ``file:line``."""

    def __init__(self, path: str | Path, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = str(path)
        self.line = line
        self.reason = reason


def validate_conversation(value: object) -> Conversation:
    """Check one parsed conversation; raise ValueError with the reason if it is malformed."""
    if not isinstance(value, list):
        raise ValueError(f"expected a JSON array of messages, got {type(value).__name__}")
    if not value:
        raise ValueError("empty conversation")
    out: Conversation = []
    for i, msg in enumerate(value):
        where = f"message {i + 1}"
        if not isinstance(msg, dict):
            raise ValueError(f"{where}: expected an object, got {type(msg).__name__}")
        role = msg.get("role")
        if role not in ("user", "assistant"):
            raise ValueError(f"{where}: unknown role {role!r} (expected 'user' or 'assistant')")
        content = msg.get("content")
        if not isinstance(content, str) or not content.strip():
            raise ValueError(f"{where}: empty or missing content")
        if role == "user":
            name = msg.get("name")
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"{where}: user message without a name")
            out.append({"role": "user", "name": name, "content": content})
        else:
            if i == 0:
                raise ValueError(f"{where}: the conversation starts with an assistant message")
            if out[-1]["role"] == "assistant":
                raise ValueError(f"{where}: two assistant messages in a row")
            out.append({"role": "assistant", "content": content})
    return out


@dataclass
class ReadResult:
    """Conversations read from a file, with the line number of each, and skipped bad lines."""

    conversations: list[Conversation]
    line_numbers: list[int]
    errors: list[SeedFormatError]


def iter_lines(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """Non-blank lines of a file, undecoded, with their 1-based numbers (one bad line spoils no other)."""
    with open(path, "rb") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                yield n, line


def read_seed_file(path: str | Path, *, skip_bad: bool = False) -> ReadResult:
    """Read a seed-format file; raise SeedFormatError at the first bad line unless ``skip_bad``."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    result = ReadResult([], [], [])
    for n, raw in iter_lines(p):
        try:
            conv = validate_conversation(json.loads(raw.decode("utf-8")))
        except UnicodeDecodeError as e:
            err = SeedFormatError(p, n, f"not UTF-8 text (byte 0x{raw[e.start]:02x} at byte {e.start + 1})")
        except json.JSONDecodeError as e:
            err = SeedFormatError(p, n, f"bad JSON: {e.msg} at column {e.colno}")
        except ValueError as e:
            err = SeedFormatError(p, n, str(e))
        else:
            result.conversations.append(conv)
            result.line_numbers.append(n)
            continue
        if not skip_bad:
            raise err
        result.errors.append(err)
    return result


def dumps_conversation(conversation: Conversation) -> str:
    """One conversation as a JSON line (UTF-8 kept readable)."""
    return json.dumps(conversation, ensure_ascii=False)


def write_seed_file(path: str | Path, conversations: list[Conversation]) -> None:
    """Write conversations to ``path``, one per line."""
    with open(path, "w", encoding="utf-8") as f:
        for conv in conversations:
            f.write(dumps_conversation(validate_conversation(conv)) + "\n")
