"""Load run: N channels, R messages/s in all, for T seconds, through the real service, store and model.

The runtime is built as ``chime run`` builds it (``chime.app.build_runtime``: the bundled
model in a worker process, unless ``--runtime rules``), the store is SQLite in a fresh
temporary data directory (or ``--store-url``, e.g. PostgreSQL), and a recording sender
stands in for a platform. Several fake people write in the channels: a share
``--forced`` of the messages are "@assistant ..." questions, about a tenth are factual
questions, the rest is chit-chat. Messages arrive at a steady R per second in all (each
in a channel picked at random), each handed to the service in its own task, as an
adapter does; after the last one the run waits until every decision is done. Prints
one JSON object:

  messages   sent, stored (people's messages in the store), not stored
  outcomes   stored messages by outcome, and how many have none
  forced     asked, answered once, answered twice (or more), lost; p50/p95/max seconds
             from a question's arrival to its reply being sent
  replies    all replies sent, and those to messages nobody forced
  decisions  decision rows recorded, per second of the whole run (sending and draining)
  rss_mb     peak RSS of the bot's process and of the model's worker process
  targets    the issue's targets: no forced question lost or answered twice, and every
             stored message with an outcome

    .venv/bin/python benchmarks/load.py                     # 10 channels, 10 msg/s, 60 s, 5% forced
    .venv/bin/python benchmarks/load.py --quick             # 3 channels, 5 msg/s, 10 s
    .venv/bin/python benchmarks/load.py --store-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import random
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot import outcomes  # noqa: E402
from bot.config import parse_config  # noqa: E402
from bot.domain import ChannelRef, IncomingMessage, SentMessage  # noqa: E402
from bot.service import ConversationService  # noqa: E402
from bot.store import Store  # noqa: E402
from chime.app import build_runtime, prepare_store  # noqa: E402

log = logging.getLogger("load")
PLATFORM = "load"
PEOPLE = ["Alice", "Bob", "Carol", "Dan", "Erin", "Farid"]
CHAT = [
    "morning all",
    "lol that's great",
    "anyone up for lunch later?",
    "I think we should take the train, it's faster",
    "my cat knocked the plant over again",
    "haha same here",
    "ugh, this rain won't stop",
    "I'll bring the snacks on Saturday",
    "did you see the match last night?",
    "ok sounds good to me",
    "brb, coffee",
    "that movie was way too long",
]
FACTUAL = [
    "what year did the Berlin wall fall?",
    "how many moons does Mars have?",
    "what's the capital of Australia again?",
    "who wrote Pride and Prejudice?",
    "how tall is Mount Everest?",
]
FORCED = [
    "@assistant what is 12 times 12?",
    "@assistant what is the boiling point of water?",
    "@assistant what time zone is Lisbon in?",
    "@assistant who painted the Mona Lisa?",
    "@assistant how many legs does a spider have?",
]


@dataclass
class Planned:
    """One message of the run: where, who, what, and whether it forces a reply."""

    channel: ChannelRef
    message_id: str
    name: str
    text: str
    forced: bool


@dataclass
class RecordingSender:
    """A platform that records every reply: the message it answers and when it was sent."""

    replies: list[tuple[str, float]] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    async def send_reply(self, channel: ChannelRef, text: str, reply_to: IncomingMessage) -> SentMessage:
        self.replies.append((reply_to.message_id, time.monotonic()))
        return SentMessage(message_id=f"{reply_to.message_id}-reply-{next(self._ids)}")

    @contextlib.asynccontextmanager
    async def typing(self, channel: ChannelRef):
        yield


def plan(channels: list[ChannelRef], total: int, forced_share: float, seed: int) -> list[Planned]:
    """``total`` messages in random channels; exactly ``round(forced_share * total)`` of them forced."""
    rng = random.Random(seed)
    forced_at = set(rng.sample(range(total), round(forced_share * total)))
    run = channels[0].channel_id.split("-c")[0]
    out = []
    for k in range(total):
        if k in forced_at:
            text = rng.choice(FORCED)
        elif rng.random() < 0.1:
            text = rng.choice(FACTUAL)
        else:
            text = rng.choice(CHAT)
        out.append(Planned(rng.choice(channels), f"{run}-m{k}", rng.choice(PEOPLE), text, k in forced_at))
    return out


async def send_all(service: ConversationService, messages: list[Planned], rate: float) -> tuple[dict, int]:
    """Hand each message to the service at its time, each in its own task; returns arrival times and stored count."""
    arrived: dict[str, float] = {}
    tasks = []
    start = time.monotonic()
    for k, p in enumerate(messages):
        delay = start + k / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        msg = IncomingMessage(
            channel=p.channel, message_id=p.message_id, author_id=p.name.lower(), display_name=p.name, text=p.text
        )
        arrived[p.message_id] = time.monotonic()
        tasks.append(asyncio.create_task(service.handle_message(msg)))
    stored = await asyncio.gather(*tasks)
    return arrived, sum(1 for ok in stored if ok)


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (nearest rank) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 3)


def forced_report(messages: list[Planned], arrived: dict, replies: list[tuple[str, float]], ended: dict) -> dict:
    """Forced questions asked, answered once, twice or more, pending or lost; and the time to their reply.

    An unanswered question is pending while its message has no outcome (the next start
    decides it: only a run cut short by --max-drain-s leaves any), lost once it has one.
    """
    by_target: dict[str, list[float]] = {}
    for target, at in replies:
        by_target.setdefault(target, []).append(at)
    asked = [p.message_id for p in messages if p.forced]
    counts = Counter(len(by_target.get(mid, ())) for mid in asked)
    unanswered = [mid for mid in asked if mid not in by_target]
    latency = [min(by_target[mid]) - arrived[mid] for mid in asked if mid in by_target]
    return {
        "asked": len(asked),
        "answered_once": counts[1],
        "answered_twice": sum(n for k, n in counts.items() if k >= 2),
        "lost": sum(1 for mid in unanswered if ended.get(mid) is not None),
        "pending": sum(1 for mid in unanswered if ended.get(mid) is None),
        "reply_latency_s": {
            "p50": percentile(latency, 0.5),
            "p95": percentile(latency, 0.95),
            "max": percentile(latency, 1.0),
            "mean": round(statistics.mean(latency), 3) if latency else None,
        },
    }


def store_report(store: Store, channels: list[ChannelRef]) -> dict:
    """People's messages stored in the run's channels, by outcome; decision rows recorded."""
    by_outcome: Counter[str] = Counter()
    ended: dict[str, str | None] = {}
    decisions = 0
    for ref in channels:
        pk = store.channel(ref).pk
        for mid, outcome in store.message_outcomes(pk):
            by_outcome[outcome or "none"] += 1
            ended[mid] = outcome
        decisions += store.counts(pk)[1]
    own = by_outcome.pop(outcomes.OWN, 0)
    return {
        "stored": sum(by_outcome.values()),
        "replies_stored": own,
        "by_outcome": dict(sorted(by_outcome.items())),
        "without_outcome": by_outcome.get("none", 0),
        "decisions": decisions,
        "ended": ended,
    }


def peak_rss_mb(pid: int | None) -> float | None:
    """A process's peak RSS (VmHWM) from /proc; None when unknown."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


async def run(args: argparse.Namespace, data_dir: Path) -> dict:
    """The whole load run; returns the report."""
    data: dict = {"data_dir": str(data_dir), "adapters": {"console": {"enabled": False}}}
    if args.store_url:
        data["store"] = {"url": args.store_url}
    if args.runtime == "rules":
        data["runtime"] = {"kind": "rules"}
    elif args.threads:
        data["runtime"] = {"n_threads": args.threads}
    config = parse_config(data)
    url = prepare_store(config)
    runtime = build_runtime(config)
    service = ConversationService(Store(url), runtime, config)
    sender = RecordingSender()
    service.register(PLATFORM, sender)
    run_id = uuid.uuid4().hex[:8]
    channels = [ChannelRef(PLATFORM, f"{run_id}-c{i}", f"room {i}") for i in range(args.channels)]
    messages = plan(channels, round(args.rate * args.seconds), args.forced, args.seed)
    load_start = os.getloadavg()[0]

    start = time.monotonic()
    arrived, accepted = await send_all(service, messages, args.rate)
    sent_s = time.monotonic() - start
    # asyncio.wait, not wait_for: a timeout must not cancel the decisions that are running.
    draining = asyncio.ensure_future(service.drain())
    await asyncio.wait([draining], timeout=args.max_drain_s)
    drained = draining.done()
    if not drained:
        log.warning("still deciding after --max-drain-s %s: the waiting messages are left undecided", args.max_drain_s)
    await service.finish()  # also waits for the "superseded" outcomes still being written
    total_s = time.monotonic() - start

    stored = await service.db(store_report, service.store, channels)
    worker_pid = getattr(runtime, "pid", None)
    forced_ids = {p.message_id for p in messages if p.forced}
    report = {
        "run": {
            "channels": args.channels,
            "rate_per_s": args.rate,
            "seconds": args.seconds,
            "forced_share": args.forced,
            "runtime": runtime.name,
            "model_id": runtime.model_id,
            "n_threads": getattr(config.runtime.decider, "n_threads", None),
            "worker_process": worker_pid is not None,
            "store": url.split(":", 1)[0],
            "cpus": os.cpu_count(),
            "load_average_1min": {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)},
        },
        "messages": {"sent": len(messages), "accepted": accepted, "stored": stored["stored"]},
        "outcomes": {"by_outcome": stored["by_outcome"], "without_outcome": stored["without_outcome"]},
        "forced": forced_report(messages, arrived, sender.replies, stored["ended"]),
        "replies": {
            "sent": len(sender.replies),
            "stored": stored["replies_stored"],
            "to_unforced": sum(1 for mid, _ in sender.replies if mid not in forced_ids),
        },
        "decisions": {"count": stored["decisions"], "per_s": round(stored["decisions"] / total_s, 2)},
        "duration_s": {
            "sending": round(sent_s, 1),
            "draining": round(total_s - sent_s, 1),
            "total": round(total_s, 1),
            "drained": drained,
        },
        "rss_mb": {
            "bot_peak": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "worker_peak": peak_rss_mb(worker_pid),
        },
        "worker": {"starts": getattr(runtime, "starts", None), "deaths": getattr(runtime, "deaths", None)},
    }
    await service.close()
    runtime.close()
    forced = report["forced"]
    report["targets"] = {
        "no_forced_lost_or_answered_twice": forced["lost"] == 0 and forced["answered_twice"] == 0,
        "every_stored_message_has_an_outcome": stored["without_outcome"] == 0,
    }
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--channels", type=int, default=10)
    ap.add_argument("--rate", type=float, default=10.0, help="messages per second, all channels together")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--forced", type=float, default=0.05, help="share of messages that are '@assistant' questions")
    ap.add_argument("--quick", action="store_true", help="3 channels, 5 messages/s, 10 s")
    ap.add_argument("--store-url", help="a store URL (e.g. PostgreSQL) instead of SQLite in a temporary data dir")
    ap.add_argument("--runtime", choices=["default", "rules"], default="default", help="rules: no model")
    ap.add_argument("--threads", type=int, help="runtime.n_threads for the model (default: as chime run, every core)")
    ap.add_argument("--max-drain-s", type=float, help="stop deciding this long after the last message (default: never)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-level", default="WARNING", help="the bot's log level (logged to stderr)")
    args = ap.parse_args()
    if args.quick:
        args.channels, args.rate, args.seconds = 3, 5.0, 10.0
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="chime-load-") as tmp:
        report = asyncio.run(run(args, Path(tmp)))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
