"""Scale run: 50 channels, messages at a set rate, decided through an OpenAI-compatible server.

One bot process (the real service, store and OpenAI-compatible runtime, built as
``chime run`` builds them) follows ``--channels`` channels; messages arrive at a steady
``--rate`` per second in all, round-robin over the channels, each handed to the service
in its own task as an adapter does. The server is either

- ``fake``: ``benchmarks/fake_openai_server.py``, which answers like vLLM's
  ``/v1/completions`` after ``--delay-ms`` per request, to measure chime rather than a
  model (run at each ``--concurrency``), or
- ``llama``: the real ``python -m model_runtime.llama_server`` with the bundled model and
  its shipped adapter (prompt cache on), at the first ``--concurrency``.

Prints one JSON object per run:

  server, concurrency, delay_ms, channels, rate_per_s
  decisions_per_s   decisions recorded per second, from the first message to the last decision
  p50_ms, p95_ms    time from a message's arrival to its decision being recorded
  p95_added_ms      p95 of that time less the server's own time on the message (first
                    request about it in, last one answered; fake server only)
  messages, decided, superseded (a newer message in the channel was decided instead)
  max_in_flight     the most requests the server held at once (fake server only)
  bot_cpu_ms_per_decision   CPU time of the bot process (all threads) per decision; with
                    load_average_1min (before, after), it tells a busy machine's figures apart

    .venv/bin/python benchmarks/scale.py                 # fake server at 1, 4 and 16; then llama
    .venv/bin/python benchmarks/scale.py --quick         # fake server, 100 ms, concurrency 16 (< 2 min)
    .venv/bin/python benchmarks/scale.py --server llama --concurrency 4 --rate 4
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.config import parse_config  # noqa: E402
from bot.domain import ChannelRef, IncomingMessage, SentMessage  # noqa: E402
from bot.service import ConversationService, DecisionEvent  # noqa: E402
from bot.store import Store  # noqa: E402
from chime.app import build_runtime, prepare_store, tune_interpreter  # noqa: E402
from model_runtime.bundled import bundled_model_path, resolve_adapter  # noqa: E402

PLATFORM = "scale"
PEOPLE = ["Alice", "Bob", "Carol", "Dan", "Erin", "Farid"]
CHAT = [
    "morning all",
    "lol that's great",
    "anyone up for lunch later?",
    "I think we should take the train, it's faster",
    "my cat knocked the plant over again",
    "ugh, this rain won't stop",
    "I'll bring the snacks on Saturday",
    "ok sounds good to me",
]


class NoReplies:
    """A platform that takes no replies (the fake server's turns are all silent)."""

    async def send_reply(self, channel: ChannelRef, text: str, reply_to: IncomingMessage) -> SentMessage:
        return SentMessage(message_id=f"{reply_to.message_id}-reply")

    @contextlib.asynccontextmanager
    async def typing(self, channel: ChannelRef):
        yield


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (nearest rank) of ``values``, rounded to 0.1; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 1)


def start_server(cmd: list[str], url_of: str | None, log_path: Path) -> tuple[subprocess.Popen, str]:
    """Start a server process; its URL from its "port N" line (``url_of`` None) or the given one once it answers."""
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE if url_of is None else log, stderr=log, text=True)
    if url_of is None:
        assert proc.stdout is not None
        url = f"http://127.0.0.1:{proc.stdout.readline().split()[1]}"
    else:
        url = url_of
    deadline = time.monotonic() + 180
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[1:3]} exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                return proc, url
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{cmd[1:3]} did not start: {log_path.read_text()[-2000:]}")
        time.sleep(0.3)


def fake_server(delay_ms: float, tmp: Path) -> tuple[subprocess.Popen, str]:
    """``benchmarks/fake_openai_server.py`` holding each request ``delay_ms``."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "fake_openai_server.py"), "--delay-ms", str(delay_ms)]
    return start_server(cmd, None, tmp / "fake-server.log")


def llama_server(threads: int | None, tmp: Path) -> tuple[subprocess.Popen, str]:
    """The real llama-cpp-python server with the bundled model and the shipped adapter, prompt cache on."""
    with contextlib.closing(__import__("socket").socket()) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    threads = threads or os.cpu_count() or 1
    cmd = [sys.executable, "-m", "model_runtime.llama_server", "--model", str(bundled_model_path())]
    adapter = resolve_adapter("default").path
    if adapter is not None:
        cmd += ["--lora_path", str(adapter)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--cache", "true"]
    cmd += ["--n_threads", str(threads), "--n_threads_batch", str(threads), "--model_alias", "chime"]
    return start_server(cmd, f"http://127.0.0.1:{port}", tmp / "llama-server.log")


async def send_all(service: ConversationService, channels: list[ChannelRef], rate: float, seconds: float) -> dict:
    """Messages at ``rate`` per second for ``seconds``, round-robin over ``channels``; returns their arrival times.

    Message k says "[k] ..." (how the fake server tells which message a prompt ends with)
    and has the id "<run>-k" (a store used before holds other runs' messages).
    """
    run_id = channels[0].channel_id.split("-")[0]
    arrived: dict[str, float] = {}
    tasks = []
    start = time.perf_counter()
    for k in range(round(rate * seconds)):
        delay = start + k / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        name = PEOPLE[k % len(PEOPLE)]
        text = f"[{k}] {CHAT[k % len(CHAT)]}"
        msg = IncomingMessage(channels[k % len(channels)], f"{run_id}-{k}", name.lower(), name, text)
        arrived[str(k)] = time.perf_counter()
        tasks.append(asyncio.create_task(service.handle_message(msg)))
    await asyncio.gather(*tasks)
    return arrived


async def run_case(args: argparse.Namespace, server: str, url: str, concurrency: int, delay_ms: float | None) -> dict:
    """One run against the server at ``url``; returns its JSON object."""
    with tempfile.TemporaryDirectory(prefix="chime-scale-") as tmp:
        runtime_cfg = {"kind": "openai", "base_url": url, "model": "chime", "max_concurrency": concurrency}
        if server == "llama":
            runtime_cfg["threshold"] = resolve_adapter("default").threshold
        data: dict = {"data_dir": tmp, "runtime": runtime_cfg, "adapters": {"console": {"enabled": False}}}
        if args.store_url:
            data["store"] = {"url": args.store_url}
        config = parse_config(data)
        runtime = build_runtime(config)
        service = ConversationService(Store(prepare_store(config)), runtime, config)
        service.register(PLATFORM, NoReplies())
        decided: dict[str, float] = {}

        def on_decision(event: DecisionEvent) -> None:
            if event.decision is not None:
                decided[event.trigger.message_id.split("-")[1]] = time.perf_counter()

        service.add_listener(on_decision)
        run_id = os.urandom(4).hex()
        channels = [ChannelRef(PLATFORM, f"{run_id}-c{i}", f"room {i}") for i in range(args.channels)]
        cpu_before, load_before = _cpu_s(), os.getloadavg()[0]
        arrived = await send_all(service, channels, args.rate, args.seconds)
        await service.drain()
        cpu_s, load_after = _cpu_s() - cpu_before, os.getloadavg()[0]
        await service.close()
        runtime.close()
    stats = _stats(url) if server == "fake" else None
    latencies = {mid: (at - arrived[mid]) * 1000 for mid, at in decided.items()}
    spans = stats["spans_ms"] if stats else {}
    added = [ms - spans[mid] for mid, ms in latencies.items() if mid in spans]
    elapsed = max(decided.values()) - min(arrived.values()) if decided else float("nan")
    return {
        "server": server,
        "concurrency": concurrency,
        "delay_ms": delay_ms,
        "channels": args.channels,
        "rate_per_s": args.rate,
        "decisions_per_s": round(len(decided) / elapsed, 1),
        "p50_ms": percentile(list(latencies.values()), 0.5),
        "p95_ms": percentile(list(latencies.values()), 0.95),
        "p95_added_ms": percentile(added, 0.95) if stats else None,
        "messages": len(arrived),
        "decided": len(decided),
        "superseded": len(arrived) - len(decided),
        "max_in_flight": stats["max_in_flight"] if stats else None,
        "bot_cpu_ms_per_decision": round(cpu_s * 1000 / len(decided), 2) if decided else None,
        "cpus": os.cpu_count(),
        "load_average_1min": [round(load_before, 1), round(load_after, 1)],
        "store": (args.store_url or "sqlite").split(":", 1)[0],
    }


def _cpu_s() -> float:
    """CPU seconds this process (all its threads) has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _stats(url: str) -> dict:
    return httpx.get(f"{url}/stats", timeout=10).json()


def cases(args: argparse.Namespace) -> list[tuple[str, int, float | None]]:
    """(server, concurrency, delay_ms) of every run asked for."""
    out: list[tuple[str, int, float | None]] = []
    if args.server in ("fake", "both"):
        out += [("fake", c, d) for d in args.delay_ms for c in args.concurrency]
    if args.server in ("llama", "both"):
        out.append(("llama", args.concurrency[0] if args.server == "llama" else 4, None))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", choices=["fake", "llama", "both"], default="both")
    ap.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16])
    ap.add_argument("--delay-ms", type=lambda s: [float(x) for x in s.split(",")], default=[100.0])
    ap.add_argument("--channels", type=int, default=50)
    ap.add_argument("--rate", type=float, default=150.0, help="messages per second, all channels together")
    ap.add_argument("--llama-rate", type=float, default=4.0, help="--rate of the llama server's run (with both)")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--threads", type=int, help="the llama server's threads (default: every core)")
    ap.add_argument("--store-url", help="a store URL (e.g. PostgreSQL) instead of SQLite in a temporary data dir")
    ap.add_argument("--quick", action="store_true", help="only the fake server at 100 ms and concurrency 16, 20 s")
    args = ap.parse_args()
    if args.quick:
        args.server, args.concurrency, args.delay_ms, args.seconds = "fake", [16], [100.0], 20.0
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tune_interpreter()  # as ``chime run`` does
    with tempfile.TemporaryDirectory(prefix="chime-scale-servers-") as tmp:
        for server, concurrency, delay_ms in cases(args):
            if server == "fake":
                proc, url = fake_server(delay_ms or 0.0, Path(tmp))
            else:
                proc, url = llama_server(args.threads, Path(tmp))
                if args.server == "both":
                    args.rate = args.llama_rate
            try:
                print(json.dumps(asyncio.run(run_case(args, server, url, concurrency, delay_ms))), flush=True)
            finally:
                proc.terminate()
                proc.wait(30)


if __name__ == "__main__":
    main()
