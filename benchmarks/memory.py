"""Memory index: indexing throughput and retrieval latency in one channel of 1k, 10k and 100k messages.

The messages and questions are those of training/data/memory_qa.jsonl (every channel's
history, repeated to the size wanted; each copy gets its own message ids), stored through
``Store.add_messages`` in batches of 1,000, so the figure includes the store's own work
and the index the database keeps current. Retrieval is ``Memory.search(k=5)`` for every
question of the file, after a warm-up. A deletion is one ``delete_message`` (it rewrites
the SQLite index so no deleted word is left in it). On PostgreSQL the table is analyzed
after storing, as autovacuum does on a server that has it on (the default): without
statistics the planner takes a channel of 100,000 messages for a few dozen rows and reads
the channel's whole index in each query (``--no-analyze`` measures that). Prints one
JSON object per size:

    .venv/bin/python benchmarks/memory.py                          # SQLite, ~1 min on 2 cores
    .venv/bin/python benchmarks/memory.py --url postgresql://postgres@127.0.0.1/bench --sizes 1000 10000
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.domain import ChannelRef, IncomingMessage  # noqa: E402
from bot.memory import Memory  # noqa: E402
from bot.store import Store, sqlite_url  # noqa: E402
from bot.store.migrate import downgrade, upgrade  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "training" / "data" / "memory_qa.jsonl"
CH = ChannelRef("bench", "one-channel", "bench")
BATCH = 1000


def corpus() -> tuple[list[tuple[str, str]], list[str]]:
    """(author, text) of every message in the file, and every question."""
    messages, questions = [], []
    for raw in DATA.read_text(encoding="utf-8").splitlines():
        line = json.loads(raw)
        for history in line["channels"].values():
            messages += [(m["name"], m["content"]) for m in history]
        questions += [q["content"] for q in line["questions"]]
    return messages, questions


def percentiles(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 2),
        "n": len(ordered),
    }


def run(url: str, size: int, messages: list[tuple[str, str]], questions: list[str], analyze: bool = True) -> dict:
    upgrade(url)
    store = Store(url)
    try:
        pk = store.channel(CH).pk
        t0 = datetime(2026, 1, 1, tzinfo=UTC)
        start = time.perf_counter()
        for first in range(0, size, BATCH):
            batch = [
                IncomingMessage(CH, f"m{i}", author, author, text, created_at=t0 + timedelta(seconds=i))
                for i in range(first, min(size, first + BATCH))
                for author, text in [messages[i % len(messages)]]
            ]
            store.add_messages(batch, channel_pk=pk, outcome="legacy")
        seconds = time.perf_counter() - start
        analyze = analyze and store.engine.dialect.name == "postgresql"
        if analyze:
            with store.engine.begin() as conn:
                conn.execute(text("ANALYZE messages"))
        memory = Memory(store.engine)
        for q in questions[:20]:  # warm the caches
            memory.search(pk, q, 5)
        times = []
        for q in questions:
            t = time.perf_counter()
            memory.search(pk, q, 5)
            times.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        store.delete_message(CH.platform, f"m{size // 2}")
        delete_ms = (time.perf_counter() - t) * 1000
        return {
            "messages": size,
            "index_msgs_per_s": round(size / seconds),
            "retrieval": percentiles(times),
            "delete_ms": round(delete_ms, 1),
            "analyzed": analyze,
        }
    finally:
        store.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    p.add_argument("--url", help="an empty database to use (default: a temporary SQLite file)")
    p.add_argument("--no-analyze", action="store_true", help="PostgreSQL: search without the table's statistics")
    args = p.parse_args()
    messages, questions = corpus()
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="chime-bench-") as tmp:
            url = args.url or sqlite_url(Path(tmp) / "bench.db")
            result = run(url, size, messages, questions, not args.no_analyze)
            if args.url:
                downgrade(url, "base")
        backend = "sqlite " + sqlite3.sqlite_version if url.startswith("sqlite") else "postgresql"
        print(json.dumps({**result, "backend": backend, "cpus": os.cpu_count()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
