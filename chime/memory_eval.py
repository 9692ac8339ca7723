"""``chime eval --answers FILE``: how well memory answers questions about a channel's past.

Each line of FILE holds channels (seed-format messages, each may carry "time") and
questions asked in them (``answer``: the key fact a correct reply contains, ``null``
when nobody in that channel said it; ``sources``: indices of the messages that state
it). Every line is loaded into its own temporary SQLite store, each question is
answered as the bot would (retrieve, ask the responder, ground), and the replies are
scored. Unknown fields are ignored.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.config import ConfigError
from bot.domain import ChannelRef, IncomingMessage
from bot.memory import Memory
from bot.memory.respond import answer
from bot.memory.search import DEFAULT_MIN_COVERAGE, Passage
from bot.store import Store, sqlite_url
from bot.store.migrate import upgrade
from model_runtime.interface import Runtime
from model_runtime.protocol import Turn, sanitize_name

PLATFORM = "eval"
# (channel name, question, k) -> passages
Retrieve = Callable[[str, str, int], list[Passage]]
_START = datetime(2026, 1, 1, tzinfo=UTC)
# Ways a reply says it does not know.
_ABSTAINS = re.compile(r"can'?t find|cannot find|couldn'?t find|don'?t know|do not know|no idea|not sure", re.I)


@dataclass
class Line:
    """One line of the answers file: its channels' messages and its questions."""

    number: int
    channels: dict[str, list[dict]]
    questions: list[dict]


def norm(text: str) -> str:
    """Case- and whitespace-insensitive form for comparing a key fact with a reply."""
    return " ".join(text.casefold().split())


def read_lines(path: Path) -> Iterator[Line]:
    """The answers file's lines, checked; a ValueError names the line and what is wrong."""
    with path.open(encoding="utf-8") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            where = f"{path}:{number}"
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not JSON ({e.msg})") from None
            channels, questions = obj.get("channels"), obj.get("questions")
            if not isinstance(channels, dict) or not all(isinstance(v, list) for v in channels.values()):
                raise ValueError(f"{where}: 'channels' must map channel names to lists of messages")
            if not isinstance(questions, list):
                raise ValueError(f"{where}: 'questions' must be a list")
            for i, q in enumerate(questions):
                if not isinstance(q, dict) or q.get("channel") not in channels or not isinstance(q.get("content"), str):
                    raise ValueError(f"{where}: question {i} needs 'channel' (one of the line's) and 'content'")
            yield Line(number, channels, questions)


def _message(channel: ChannelRef, index: int, m: dict, where: str) -> IncomingMessage:
    if m.get("role") == "assistant":
        name, author = "assistant", "assistant"
    elif isinstance(m.get("name"), str) and isinstance(m.get("content"), str):
        name, author = m["name"], f"user:{m['name']}"
    else:
        raise ValueError(f"{where}: message {index} needs 'name' and 'content'")
    stamp = m.get("time")
    try:
        at = datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else _START + timedelta(minutes=index)
    except (AttributeError, ValueError):
        raise ValueError(f"{where}: message {index}: 'time' is not ISO 8601: {stamp!r}") from None
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    # Message ids are unique per platform, so they carry the channel.
    return IncomingMessage(channel, f"{channel.channel_id}#{index}", author, name, m["content"], created_at=at)


def _index(message_id: str) -> int:
    return int(message_id.rsplit("#", 1)[1])


def load(store: Store, line: Line, where: str) -> dict[str, int]:
    """Store every channel of a line; returns channel name -> channel key."""
    keys = {}
    for name, messages in line.channels.items():
        ref = ChannelRef(PLATFORM, name, name)
        keys[name] = store.channel(ref).pk
        converted = [(_message(ref, i, m, f"{where} channel {name!r}"), m.get("role")) for i, m in enumerate(messages)]
        store.add_messages([msg for msg, role in converted if role != "assistant"], channel_pk=keys[name])
        for msg, role in converted:
            if role == "assistant":
                store.add_message(msg, channel_pk=keys[name], from_assistant=True)
    return keys


def _leak_facts(line: Line, channel: str) -> list[str]:
    """Key facts of the line's other channels that this channel's history never states."""
    here = norm(" ".join(m.get("content", "") for m in line.channels[channel]))
    facts = {norm(q["answer"]) for q in line.questions if q["channel"] != channel and isinstance(q.get("answer"), str)}
    return sorted(f for f in facts if f and f not in here)


def score_line(line: Line, retrieve: Retrieve, runtime: Runtime | None, k: int, min_cov: float) -> list[dict]:
    """One result per question of the line: reply, retrieved indices, scores and verdicts."""
    results = []
    for q in line.questions:
        channel, gold = q["channel"], [int(i) for i in q.get("sources") or []]
        t0 = time.perf_counter()
        passages = retrieve(channel, q["content"], k)
        t1 = time.perf_counter()
        asker = sanitize_name(str(q.get("name") or "someone"))
        window = [Turn(role="user", name=asker, content=q["content"])]
        reply = answer(runtime, f"eval-{line.number}-{channel}", window, passages, min_cov)
        t2 = time.perf_counter()
        retrieved = [_index(p.message_id) for p in passages]
        cited = _index(reply.source.message_id) if reply.source is not None else None
        key = q.get("answer")
        results.append(
            {
                "line": line.number,
                "channel": channel,
                "question": q["content"],
                "answer": key,
                "reply": reply.text,
                "quoted": reply.quoted,
                "retrieved": retrieved,
                "scores": [p.score for p in passages],
                "coverage": [p.coverage for p in passages],
                "cited": cited,
                "sources": gold,
                "correct": norm(key) in norm(reply.text) if isinstance(key, str) else None,
                "abstained": bool(_ABSTAINS.search(reply.text)),
                "leaked": [f for f in _leak_facts(line, channel) if f in norm(reply.text)],
                "retrieve_ms": round((t1 - t0) * 1000, 2),
                "reply_ms": round((t2 - t1) * 1000, 2),
            }
        )
    return results


def metrics(results: list[dict]) -> dict:
    """The summary figures over every question's result."""
    answerable = [r for r in results if isinstance(r["answer"], str)]
    unanswerable = [r for r in results if not isinstance(r["answer"], str)]
    cited = [r for r in answerable if r["cited"] is not None]

    def share(n: int, d: int) -> float | None:
        return round(n / d, 4) if d else None

    return {
        "questions": len(results),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "recall_at_5": share(
            sum(bool(set(r["sources"]) & set(r["retrieved"][:5])) for r in answerable), len(answerable)
        ),
        "key_fact_accuracy": share(sum(bool(r["correct"]) for r in answerable), len(answerable)),
        # Of the answerable questions whose reply names a source, how many name a message that states the fact.
        "citation_accuracy": share(sum(r["cited"] in r["sources"] for r in cited), len(cited)),
        "cited": len(cited),
        "abstention_rate": share(sum(r["abstained"] for r in unanswerable), len(unanswerable)),
        "false_abstentions": sum(r["abstained"] for r in answerable),
        "cross_channel_leaks": sum(bool(r["leaked"]) for r in results),
        "quoted": sum(r["quoted"] for r in results),
        "retrieve_ms_p50": _percentile([r["retrieve_ms"] for r in results], 50),
        "retrieve_ms_p95": _percentile([r["retrieve_ms"] for r in results], 95),
    }


def _percentile(values: list[float], q: int) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def evaluate(
    path: Path,
    runtime: Runtime | None,
    k: int = 5,
    min_cov: float = DEFAULT_MIN_COVERAGE,
    retrieval: str = "bm25",
    lines: int | None = None,
) -> dict:
    """Answer every question of the file; the metrics plus one result per question."""
    results: list[dict] = []
    embedder = None
    if retrieval != "bm25":
        from model_runtime.embeddings import MiniLM

        embedder = MiniLM()
    for line in read_lines(path):
        if lines is not None and line.number > lines:
            break
        with tempfile.TemporaryDirectory(prefix="chime-eval-") as tmp:
            url = sqlite_url(Path(tmp) / "memory.db")
            upgrade(url)
            store = Store(url)
            try:
                keys = load(store, line, f"{path}:{line.number}")
                memory = Memory(store.engine)
                retrieve: Retrieve = lambda ch, q, n: memory.search(keys[ch], q, n)  # noqa: E731, B023
                if embedder is not None:
                    from chime import memory_variants as v

                    d = v.DenseChannels(embedder, line.channels)
                    retrieve = v.dense(d) if retrieval == "dense" else v.hybrid(d, memory, keys)
                results += score_line(line, retrieve, runtime, k, min_cov)
                print(f"\rchime eval --answers: line {line.number}, {len(results)} questions", end="", file=sys.stderr)
            finally:
                store.close()
    print(file=sys.stderr)
    return {**metrics(results), "retrieval": retrieval, "results": results}


def main(argv: list[str]) -> int:
    """Run the memory evaluation and print its figures (``--json``: one JSON object)."""
    p = argparse.ArgumentParser(prog="chime eval --answers", description="Evaluate memory answers.")
    p.add_argument("--answers", type=Path, required=True, help="JSONL: channels and questions (see README)")
    p.add_argument("--json", action="store_true", help="print one JSON object with every result")
    p.add_argument("--quote-only", action="store_true", help="no model: quote the best passage (retrieval alone)")
    p.add_argument("--k", type=int, default=5, help="passages retrieved per question")
    p.add_argument("--min-coverage", type=float, default=DEFAULT_MIN_COVERAGE)
    p.add_argument("--lines", type=int, help="only the file's first N lines")
    p.add_argument(
        "--retrieval", choices=["bm25", "dense", "hybrid"], default="bm25",
        help="bm25 (shipped); dense or hybrid need the embeddings extra",
    )  # fmt: skip
    p.add_argument("--config", type=Path, help="YAML config whose runtime answers (default: the bundled model)")
    p.add_argument("--runtime", choices=["llama_cpp", "rules", "transformers", "openai"], help="override runtime.kind")
    args = p.parse_args(argv)
    if not args.answers.is_file():
        raise ConfigError(f"eval --answers: no such file: {args.answers}")
    runtime = None
    if not args.quote_only:
        from chime.app import build_runtime
        from chime.cli import _load

        runtime = build_runtime(_load(args))
    try:
        report = evaluate(args.answers, runtime, args.k, args.min_coverage, args.retrieval, args.lines)
    finally:
        if runtime is not None:
            runtime.close()
    report["responder"] = "quote-only" if runtime is None else runtime.model_id
    if args.json:
        json.dump(report, sys.stdout)
        print()
    else:
        for key, value in report.items():
            if key != "results":
                print(f"{key}: {value}")
    return 0
