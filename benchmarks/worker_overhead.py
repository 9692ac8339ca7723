"""What running the model in a worker process costs per decision, on the bundled model.

The same conversation is decided in process (LlamaCppRuntime) and through the worker
(ProcessRuntime, as ``runtime.isolate: true`` runs it), one new short message per
decision in one channel, so both use their channel cache. The two runtimes alternate
message by message, so that load from other processes hits both alike. No reply is
generated (the threshold is above 1). Prints one JSON object per line:

  in_process / worker   p50 and p95 of the decision time seen by the caller, and of the
                        part of it spent outside the model (caller's time minus the
                        backend's own timings.total_ms)
  overhead              p50 and p95 of (worker - in process) for the same message, in
                        total and outside the model (the latter is what the worker
                        itself costs, free of the model's run-to-run noise); the round
                        trip of a call that does almost no work; count_tokens in this
                        process (the worker is never asked); the worker's start time

    .venv/bin/python benchmarks/worker_overhead.py                 # ~2 min on 2 cores
    .venv/bin/python benchmarks/worker_overhead.py --decisions 200
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model_runtime import LlamaCppOptions, Turn, create_runtime  # noqa: E402
from model_runtime.worker import create_isolated_runtime  # noqa: E402

NAMES = ["Alice", "Bob", "Carol"]
WORDS = "train ticket coffee rain lunch meeting match beach soup garden movie book phone bus market".split()


def conversation(n: int, seed: int = 0) -> list[Turn]:
    """``n`` short human turns (about 12 tokens each)."""
    rng = random.Random(seed)
    return [
        Turn(role="user", name=NAMES[i % 3], content=f"{i}: " + " ".join(rng.choice(WORDS) for _ in range(6)))
        for i in range(n)
    ]


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(ordered), 3), "p95_ms": round(p95, 3), "n": len(ordered)}


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - start) * 1000


class Samples:
    """Per decision: the time the caller waited, and how much of it was outside the model."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.outside: list[float] = []
        self.evaluated: list[int] = []

    def decide(self, rt, window: list[Turn]) -> None:
        start = time.perf_counter()
        d = rt.score("bench", window)
        wall = (time.perf_counter() - start) * 1000
        self.wall.append(wall)
        # timings.total_ms is measured inside the backend, in whichever process runs it.
        self.outside.append(wall - d.timings.total_ms)
        self.evaluated.append(d.timings.tokens_evaluated)


def paired(a: list[float], b: list[float]) -> dict[str, float]:
    return percentiles([x - y for x, y in zip(a, b, strict=True)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--decisions", type=int, default=50)
    ap.add_argument("--history", type=int, default=6, help="messages before the first timed decision")
    # One thread each: two runtimes with two threads each on two cores spin against each other.
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    opts = LlamaCppOptions(adapter_path=None, n_threads=args.threads, n_ctx=2048)
    local = create_runtime(opts)
    start = time.perf_counter()
    worker = create_isolated_runtime(opts)
    start_s = time.perf_counter() - start
    conv = conversation(args.history + args.decisions + 1)
    # Warm-up, not timed: the history is evaluated once by each.
    for rt in (local, worker):
        rt.score("bench", conv[: args.history])
    runs = {"in_process": Samples(), "worker": Samples()}
    for k in range(args.history + 1, args.history + args.decisions + 1):
        order = [(runs["in_process"], local), (runs["worker"], worker)]
        for samples, rt in order if k % 2 else order[::-1]:
            samples.decide(rt, conv[:k])
    # A call that does almost no work: what the socket and pickling cost alone.
    round_trip = [timed(worker.call, "count_tokens", "Alice: hello") for _ in range(200)]
    counts = [timed(worker.count_tokens, f"{t.name}: {t.content}") for t in conv for _ in range(5)]
    local.close()
    worker.close()

    for name, samples in runs.items():
        row = {"variant": name, "threads": args.threads, "tokens_evaluated": statistics.mean(samples.evaluated)}
        print(json.dumps({**row, **percentiles(samples.wall), "outside_model": percentiles(samples.outside)}))
    ours, theirs = runs["worker"], runs["in_process"]
    overhead = {
        "variant": "overhead",
        "per_decision": paired(ours.wall, theirs.wall),
        "per_decision_outside_model": paired(ours.outside, theirs.outside),
        "round_trip": percentiles(round_trip),
        "count_tokens_in_parent": percentiles(counts),
        "worker_start_s": round(start_s, 2),
    }
    print(json.dumps(overhead))


if __name__ == "__main__":
    main()
