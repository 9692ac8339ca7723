"""Builds the memory evaluation set (``chime eval --answers``) from the hand-written templates.

Each line is a small workspace of two channels with 300+ messages over several days:
small talk, passing mentions of many topics, and a few facts stated once. Questions
asked afterwards in each channel: every fact stated there (worded differently from the
statement), a trap whose fact was stated only in the other channel (the answer is
``null``: nobody said it here), and a question on a topic mentioned in passing that
nobody answered (``null`` as well).

    python -m training.corpus.memory_qa --seed 14 --lines 20 --out training/data/memory_qa.jsonl
    python -m training.corpus.memory_qa --seed 7 --lines 10 --out training/data/memory_qa_train.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from training.corpus.generate import NAMES
from training.corpus.memory_chatter import THANKS, chatter
from training.corpus.memory_facts import FACTS, Fact

PREFIXES = ("@assistant ", "@assistant ", "@assistant ", "assistant, ", "hey @assistant, ", "@assistant quick one: ")
CHANNEL_WORDS = ("general", "team", "flat", "trip", "office", "family", "climbing", "bookclub", "dev", "friends")
_WORD = re.compile(r"[a-z0-9]+")
# Words every question has; a question must have some other word that its statement lacks.
_FUNCTION = set(
    "a an and again any anyone assistant at by can did do does for get give has have hey how i in is it its me my "
    "now of on one our quick s so that the this to us was we what when where which who".split()
)


def words(text: str) -> set[str]:
    """Lower-case content words, plural "s" dropped, for checking that a question is worded differently."""
    found = {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in _WORD.findall(text.lower())}
    return found - _FUNCTION


def _times(rng: random.Random, n: int) -> list[datetime]:
    """``n`` message times over 3 to 7 days, in the waking hours, in order."""
    start = datetime(2026, rng.randint(9, 11), rng.randint(1, 20), tzinfo=UTC)
    days = rng.randint(3, 7)
    out = [start + timedelta(days=rng.randrange(days), minutes=rng.randint(7 * 60, 23 * 60 + 59)) for _ in range(n)]
    return sorted(out)


def _ask(rng: random.Random, fact: Fact, author: str, stated: str) -> str:
    """A question for ``fact`` that shares some, but not all, of its content words with the statement."""
    asks = list(fact.asks)
    rng.shuffle(asks)
    for ask in asks:
        question = ask.format(a=author)
        said = words(stated) | words(author)  # the author's name is searched too
        if not words(question) - said or not words(question) & said:
            continue
        return rng.choice(PREFIXES) + question
    raise ValueError(f"fact {fact.key}: every question repeats the statement {stated!r}")


def _channel(rng: random.Random, people: list[str], planted: dict[str, tuple[Fact, str]], topics: list[Fact]):
    """One channel's messages and, per planted fact, (index of the statement, its author, its text)."""
    n = rng.randint(300, 380)
    lines: list[tuple[str, str]] = [(rng.choice(people), chatter(rng)) for _ in range(n)]
    for fact in topics:  # passing mentions: the topic's words without its fact
        for _ in range(rng.randint(1, 3)):
            lines.insert(rng.randrange(len(lines)), (rng.choice(people), rng.choice(fact.mentions)))
    stated: dict[str, tuple[int, str, str]] = {}
    for fact, value in planted.values():
        at = rng.randrange(10, int(len(lines) * 0.85))
        author = rng.choice(people)
        text = rng.choice(fact.states).format(v=value)
        lines.insert(at, (author, text))
        if rng.random() < 0.5:
            lines.insert(at + 1, (rng.choice([p for p in people if p != author]), rng.choice(THANKS)))
    # Indices are known only once every line is in place.
    for i, (author, text) in enumerate(lines):
        for key, (fact, value) in planted.items():
            if text in [s.format(v=value) for s in fact.states]:
                stated[key] = (i, author, text)
    times = _times(rng, len(lines))
    messages = [
        {"role": "user", "name": a, "content": t, "time": when.isoformat().replace("+00:00", "Z")}
        for (a, t), when in zip(lines, times, strict=True)
    ]
    return messages, stated


def build_line(rng: random.Random, number: int) -> dict:
    """One workspace: two channels, their histories and the questions asked in each."""
    kinds = rng.sample(FACTS, 14)
    shared = kinds[10]  # stated in both channels, with different values
    plan = {"a": kinds[0:5] + [shared], "b": kinds[5:10] + [shared]}
    traps = {"a": rng.choice(kinds[5:10]), "b": rng.choice(kinds[0:5])}
    absent = {"a": kinds[11], "b": kinds[12 + rng.randrange(2)]}
    names = {"a": f"{rng.choice(CHANNEL_WORDS)}-{number}a", "b": f"{rng.choice(CHANNEL_WORDS)}-{number}b"}
    line: dict = {"channels": {}, "questions": []}
    said: dict[str, dict[str, tuple[str, str]]] = {}
    for side in ("a", "b"):
        people = rng.sample(NAMES, rng.randint(4, 6))
        planted = {f.key: (f, f.value(rng)) for f in plan[side]}
        while planted[shared.key][1] in said.get("a", {}).get(shared.key, ("", "")):
            planted[shared.key] = (shared, shared.value(rng))
        messages, stated = _channel(rng, people, planted, kinds)
        line["channels"][names[side]] = messages
        said[side] = {k: (planted[k][1], stated[k][1]) for k in planted}
        for key, (index, author, text) in stated.items():
            fact, value = planted[key]
            line["questions"].append(_question(rng, names[side], people, _ask(rng, fact, author, text), value, [index]))
        other = "b" if side == "a" else "a"
        line["questions"].append(
            {**_question(rng, names[side], people, "", None, []), "kind": "trap", "fact": traps[side].key}
        )
        line["questions"].append(
            {**_question(rng, names[side], people, "", None, []), "kind": "absent", "fact": absent[side].key}
        )
        line["questions"][-2]["_other"] = other
    return _fill_unanswerable(rng, line, said, names)


def _question(rng: random.Random, channel: str, people: list[str], content: str, answer: str | None, sources: list):
    return {"channel": channel, "name": rng.choice(people), "content": content, "answer": answer, "sources": sources}


def _fill_unanswerable(rng: random.Random, line: dict, said: dict, names: dict) -> dict:
    """Word the trap and absent questions (a trap names the other channel's author where the fact has one)."""
    by_key = {f.key: f for f in FACTS}
    for q in line["questions"]:
        if q["answer"] is not None:
            continue
        fact = by_key[q["fact"]]
        other = q.pop("_other", None)
        author = said[other][fact.key][1] if other and fact.key in said[other] else q["name"]
        q["content"] = rng.choice(PREFIXES) + rng.choice(fact.asks).format(a=author)
    return line


def build(seed: int, lines: int) -> list[dict]:
    """``lines`` workspaces drawn with ``seed`` (the same seed gives the same file)."""
    rng = random.Random(seed)
    return [build_line(rng, n + 1) for n in range(lines)]


def summary(data: list[dict]) -> dict:
    """Counts for the README: channels, messages, days, questions by kind."""
    channels = [m for line in data for m in line["channels"].values()]
    questions = [q for line in data for q in line["questions"]]
    days = [(datetime.fromisoformat(m[-1]["time"]) - datetime.fromisoformat(m[0]["time"])).days + 1 for m in channels]
    return {
        "lines": len(data),
        "channels": len(channels),
        "messages": sum(len(m) for m in channels),
        "messages_per_channel": [min(len(m) for m in channels), max(len(m) for m in channels)],
        "days_per_channel": [min(days), max(days)],
        "questions": len(questions),
        "answerable": sum(q["answer"] is not None for q in questions),
        "trap": sum(q.get("kind") == "trap" for q in questions),
        "absent": sum(q.get("kind") == "absent" for q in questions),
    }


def main(argv: list[str] | None = None) -> int:
    """Write the evaluation set and print its counts."""
    p = argparse.ArgumentParser(prog="python -m training.corpus.memory_qa", description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--lines", type=int, default=20, help="workspaces of two channels each")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    data = build(args.seed, args.lines)
    with args.out.open("w", encoding="utf-8") as f:
        for line in data:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    print(json.dumps(summary(data)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
