"""Writes training/smoke/{train,dev}.jsonl: small synthetic conversations for the tiny smoke run.

Run from the repository root: ``python training/smoke/make_smoke_data.py`` (deterministic).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

NAMES = ["Ana", "Bruno", "Chen", "Dara", "Emeka", "Farah", "Gus", "Hana"]
CHAT = [
    "morning all", "anyone up for lunch later?", "sure, where?", "the noodle place again?", "lol fine",
    "I'm so tired today", "same, the train was late", "did you see the game last night",
    "yes what a finish", "I need a coffee", "brb", "ok back", "that meeting could have been an email",
    "haha true", "weekend plans?", "probably hiking if it doesn't rain", "nice, send pics",
]  # fmt: skip
FACTS = [
    ("assistant, how many days are in a leap year?", "A leap year has 366 days."),
    ("what's the capital of Australia again? not Sydney right", "Right, it's Canberra."),
    ("@assistant what is 15% of 80?", "15% of 80 is 12."),
    ("who painted the Mona Lisa, I forgot", "Leonardo da Vinci painted the Mona Lisa."),
    ("assistant, how many ounces in a pound?", "There are 16 ounces in a pound."),
    ("what year did the first moon landing happen?", "The first crewed Moon landing was in 1969."),
    ("assistant what's the boiling point of water in F", "Water boils at 212°F at sea level."),
]


def conversation(rng: random.Random) -> list[dict[str, str]]:
    """Chit-chat among three people with a few questions the assistant answers."""
    people = rng.sample(NAMES, 3)
    out: list[dict[str, str]] = []
    for _ in range(rng.randint(4, 8)):
        out.append({"role": "user", "name": rng.choice(people), "content": rng.choice(CHAT)})
        if rng.random() < 0.3:
            q, a = rng.choice(FACTS)
            out.append({"role": "user", "name": rng.choice(people), "content": q})
            out.append({"role": "assistant", "content": a})
    return out


def main() -> None:
    """Write the two files."""
    rng = random.Random(7)
    here = Path(__file__).parent
    for name, count in (("train.jsonl", 24), ("dev.jsonl", 6)):
        with open(here / name, "w", encoding="utf-8") as f:
            for _ in range(count):
                f.write(json.dumps(conversation(rng), ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
