"""``chime data check``: what a seed-format file holds and what is wrong with it.

Schema errors and train/dev leakage are problems (non-zero exit); duplicates, names that
collide with the assistant's and conversations where the assistant never speaks are
reported for a person to judge.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from model_runtime.protocol import DEFAULT_ASSISTANT_NAME, sanitize_name
from model_runtime.seed_format import Conversation, ReadResult, dumps_conversation, read_seed_file

# Messages at least this long (normalised) are specific enough that seeing one in both
# the training and the dev file means the dev set is not unseen.
LONG_MESSAGE_CHARS = 40


def normalize_text(text: str) -> str:
    """Case-folded, punctuation-free, single-spaced text, for near-duplicate comparison."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def near_key(conversation: Conversation) -> tuple[str, ...]:
    """A conversation's identity up to case, punctuation, whitespace and speaker names."""
    return tuple(f"{m['role'][0]}|{normalize_text(m['content'])}" for m in conversation)


def long_messages(conversation: Conversation) -> set[str]:
    """The conversation's normalised messages long enough to identify it."""
    return {t for m in conversation if len(t := normalize_text(m["content"])) >= LONG_MESSAGE_CHARS}


def _name_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", unicodedata.normalize("NFKC", name).casefold().lstrip("@"))


@dataclass
class CheckReport:
    """Counts and findings for one file (and its leakage into another)."""

    path: str
    conversations: int = 0
    messages: int = 0
    human_turns: int = 0
    speak_turns: int = 0
    silent_conversations: int = 0
    participants: tuple[int, int, float] = (0, 0, 0.0)
    messages_per_conversation: tuple[int, int, float] = (0, 0, 0.0)
    distinct_names: int = 0
    schema_errors: list[str] = field(default_factory=list)
    exact_duplicates: list[list[int]] = field(default_factory=list)
    near_duplicates: list[list[int]] = field(default_factory=list)
    assistant_name_collisions: list[str] = field(default_factory=list)
    unsafe_names: list[str] = field(default_factory=list)
    against: str | None = None
    leaked_conversations: list[tuple[int, int]] = field(default_factory=list)
    leaked_messages: list[tuple[int, int, str]] = field(default_factory=list)

    @property
    def speak_ratio(self) -> float:
        """Assistant turns per human turn."""
        return self.speak_turns / self.human_turns if self.human_turns else 0.0

    @property
    def ok(self) -> bool:
        """No schema errors and no leakage."""
        return not self.schema_errors and not self.leaked_conversations and not self.leaked_messages


def _spread(values: Sequence[int]) -> tuple[int, int, float]:
    return (min(values), max(values), sum(values) / len(values)) if values else (0, 0, 0.0)


def _groups(keys: Sequence[object], lines: Sequence[int]) -> list[list[int]]:
    by_key: dict[object, list[int]] = defaultdict(list)
    for key, line in zip(keys, lines, strict=True):
        by_key[key].append(line)
    return [group for group in by_key.values() if len(group) > 1]


def describe(report: CheckReport, read: ReadResult, assistant_name: str) -> None:
    """Fill the counts, duplicates and name findings of ``report`` from a read file."""
    convs, lines = read.conversations, read.line_numbers
    report.schema_errors = [str(e) for e in read.errors]
    report.conversations = len(convs)
    report.messages = sum(len(c) for c in convs)
    report.human_turns = sum(m["role"] == "user" for c in convs for m in c)
    report.speak_turns = report.messages - report.human_turns
    report.silent_conversations = sum(all(m["role"] == "user" for m in c) for c in convs)
    report.participants = _spread([len({m["name"] for m in c if m["role"] == "user"}) for c in convs])
    report.messages_per_conversation = _spread([len(c) for c in convs])
    names = sorted({m["name"] for c in convs for m in c if m["role"] == "user"})
    report.distinct_names = len(names)
    report.assistant_name_collisions = [n for n in names if _name_key(n) == _name_key(assistant_name)]
    # Names the core would rewrite (colons, newlines, brackets): training on them teaches
    # the model text it will never see in use.
    report.unsafe_names = [
        n for n in names if n not in report.assistant_name_collisions and sanitize_name(n, assistant_name) != n
    ]
    report.exact_duplicates = _groups([dumps_conversation(c) for c in convs], lines)
    exact = {line for group in report.exact_duplicates for line in group[1:]}
    near = _groups([near_key(c) for c in convs], lines)
    # A near-duplicate group made only of exact copies is already reported above.
    report.near_duplicates = [g for g in near if len([x for x in g if x not in exact]) > 1]


def find_leakage(report: CheckReport, read: ReadResult, other: ReadResult) -> None:
    """Record conversations and long messages of ``read`` that also appear in ``other``."""
    other_convs = {near_key(c): line for c, line in zip(other.conversations, other.line_numbers, strict=True)}
    other_msgs: dict[str, int] = {}
    for c, line in zip(other.conversations, other.line_numbers, strict=True):
        for text in long_messages(c):
            other_msgs.setdefault(text, line)
    for c, line in zip(read.conversations, read.line_numbers, strict=True):
        key = near_key(c)
        if key in other_convs:
            report.leaked_conversations.append((line, other_convs[key]))
            continue
        for text in sorted(long_messages(c)):
            if text in other_msgs:
                report.leaked_messages.append((line, other_msgs[text], text))


def _read(path: str | Path) -> ReadResult:
    # Bad lines (bad JSON, not UTF-8, wrong schema) are collected and reported, not fatal.
    return read_seed_file(path, skip_bad=True)


def check_file(
    path: str | Path, against: str | Path | None = None, assistant_name: str = DEFAULT_ASSISTANT_NAME
) -> CheckReport:
    """Check one seed-format file, and its overlap with ``against`` if given; ValueError if unreadable."""
    read = _read(path)
    report = CheckReport(path=str(path))
    describe(report, read, assistant_name)
    if against is not None:
        other = _read(against)
        report.against = str(against)
        report.schema_errors += [str(e) for e in other.errors]
        find_leakage(report, read, other)
    return report


def _lines(groups: list[list[int]]) -> str:
    return "; ".join("lines " + ", ".join(map(str, g)) for g in groups[:10]) + (" ..." if len(groups) > 10 else "")


def format_check(r: CheckReport) -> str:
    """The report as text: counts first, then each finding."""
    p, m = r.participants, r.messages_per_conversation
    out = [
        f"{r.path}: {r.conversations} conversations, {r.messages} messages",
        f"  human turns {r.human_turns}, assistant turns {r.speak_turns}, speak ratio {r.speak_ratio:.3f}",
        f"  conversations where the assistant never speaks: {r.silent_conversations}"
        f" ({r.silent_conversations / r.conversations if r.conversations else 0:.1%})",
        f"  participants per conversation {p[0]}-{p[1]} (mean {p[2]:.1f}); distinct names {r.distinct_names}",
        f"  messages per conversation {m[0]}-{m[1]} (mean {m[2]:.1f})",
    ]
    for err in r.schema_errors:
        out.append(f"error: {err}")
    if r.exact_duplicates:
        out.append(f"warning: {len(r.exact_duplicates)} exact duplicate groups: {_lines(r.exact_duplicates)}")
    if r.near_duplicates:
        out.append(f"warning: {len(r.near_duplicates)} near-duplicate groups: {_lines(r.near_duplicates)}")
    if r.assistant_name_collisions:
        out.append(f"warning: names that collide with the assistant's: {', '.join(r.assistant_name_collisions)}")
    if r.unsafe_names:
        out.append(f"warning: names the core would rewrite: {', '.join(map(repr, r.unsafe_names))}")
    if r.against is not None:
        for line, other_line in r.leaked_conversations:
            out.append(f"error: leakage: {r.path}:{line} is the conversation at {r.against}:{other_line}")
        for line, other_line, text in r.leaked_messages[:20]:
            out.append(f"error: leakage: {r.path}:{line} shares a message with {r.against}:{other_line}: {text[:60]!r}")
        if len(r.leaked_messages) > 20:
            out.append(f"error: leakage: ... {len(r.leaked_messages) - 20} more shared messages")
        if not r.leaked_conversations and not r.leaked_messages:
            out.append(f"  no leakage into {r.against}")
    out.append("ok" if r.ok else "problems found")
    return "\n".join(out)
