"""Build train.jsonl and dev.jsonl from the hand-written parts, deterministically.

Run from the repository root:  python -m training.data.make_splits
Every conversation of parts/*.jsonl goes to exactly one split: dev takes those whose
SHA-256 (of the canonical JSON line) falls in the lowest 1/6 of the hash space, so the
split does not depend on file order and adding conversations never moves old ones.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from model_runtime.seed_format import dumps_conversation, read_seed_file

HERE = Path(__file__).resolve().parent
DEV_FRACTION = 1 / 6


def conversation_hash(line: str) -> float:
    """A conversation's position in [0, 1) of the hash space."""
    digest = hashlib.sha256(line.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def main() -> int:
    """Write train.jsonl and dev.jsonl next to this file; print the counts."""
    lines: dict[str, None] = {}
    for part in sorted((HERE / "parts").glob("*.jsonl")):
        for conv in read_seed_file(part).conversations:
            lines.setdefault(dumps_conversation(conv))
    train = [line for line in lines if conversation_hash(line) >= DEV_FRACTION]
    dev = [line for line in lines if conversation_hash(line) < DEV_FRACTION]
    for name, rows in (("train.jsonl", train), ("dev.jsonl", dev)):
        (HERE / name).write_text("".join(row + "\n" for row in rows), encoding="utf-8")
    print(f"{len(lines)} conversations: {len(train)} train, {len(dev)} dev")
    return 0


if __name__ == "__main__":
    sys.exit(main())
