"""Decision latency of LlamaCppRuntime on the bundled model: naive, cached, raw floor, interleaved channels.

For a channel whose history renders to about 256, 1024 and 2048 tokens, each trial adds a
new ~30-token message to that history and times the decision (no reply: the threshold is
above 1). Variants:

  naive        the runtime with its cache emptied before every decision: the whole window
               is evaluated, as a bot calling a stateless API does
  cached       the runtime as shipped: only what the channel's state lacks is evaluated
  floor        llama-cpp-python alone, no project code in the timed region: a warm context
               holding the same prefix, decoding exactly the tokens the cached runtime
               evaluated for that trial (the new message plus the decision tokens)
  interleaved  20 channels with their own histories, messages round-robin so that every
               decision switches channel (state saved and restored)

Each (length, variant) runs in its own process so that rss_mb is that variant's peak.
Prints one JSON object per line, then one "summary" line per length with the ratios.

    .venv/bin/python benchmarks/decision_latency.py              # everything, ~10-20 min on 2 cores
    .venv/bin/python benchmarks/decision_latency.py --lengths 256 --messages 30 --variants cached,floor
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model_runtime import LlamaCppOptions, Turn, create_runtime  # noqa: E402

NAMES = ["Alice", "Bob", "Carol", "Dan", "Erin"]
WORDS = (
    "train station ticket tomorrow morning coffee weather rain sunny lunch meeting project deadline "
    "football match score holiday beach mountain recipe soup bread garden flowers movie cinema book "
    "library museum concert guitar piano phone battery laptop screen market bakery bicycle bus"
).split()


def message(rng: random.Random, i: int) -> Turn:
    """A human turn of about 30 tokens ("Name: " plus ~24 words)."""
    words = [rng.choice(WORDS) for _ in range(22)]
    return Turn(role="user", name=NAMES[i % len(NAMES)], content=f"{i}: " + " ".join(words) + ".")


def history(rt, target_tokens: int, seed: int) -> list[Turn]:
    """Turns whose decision prompt is about ``target_tokens`` long."""
    rng = random.Random(seed)
    turns: list[Turn] = []
    while True:
        turns.append(message(rng, len(turns)))
        if len(rt._builder.build("probe", turns).tokens) >= target_tokens:
            return turns


def trials(hist: list[Turn], n: int, seed: int) -> list[list[Turn]]:
    """``n`` windows: the history plus one new message each."""
    rng = random.Random(seed + 1)
    return [hist + [message(rng, 10_000 + k)] for k in range(n)]


def percentiles(samples_ms: list[float]) -> tuple[float, float]:
    ordered = sorted(samples_ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


def make_runtime(args: argparse.Namespace, budget_mb: int):
    opts = LlamaCppOptions(
        adapter_path=None, n_ctx=args.n_ctx, n_threads=args.threads, n_batch=512, cache_budget_mb=budget_mb
    )
    return create_runtime(opts)


def run_runtime(args: argparse.Namespace, length: int, variant: str) -> dict:
    rt = make_runtime(args, args.budget_mb if variant == "interleaved" else 512)
    channels = args.channels if variant == "interleaved" else 1
    windows = {c: trials(history(rt, length, seed=c), args.messages, seed=c) for c in range(channels)}
    order = [(c, k) for k in range(args.messages) for c in range(channels)]
    if variant == "interleaved":
        order = order[: max(args.messages, 2 * channels)]
    # Warm-up, not timed: each channel's history is evaluated once (and the model paged in).
    for c in range(channels):
        rt.score(f"ch{c}", windows[c][0][:-1] + [message(random.Random(99), 99)])
    times, evaluated = [], []
    for c, k in order:
        if variant == "naive":
            rt.forget(f"ch{c}")
        start = time.perf_counter()
        d = rt.score(f"ch{c}", windows[c][k])
        times.append((time.perf_counter() - start) * 1000)
        evaluated.append(d.timings.tokens_evaluated)
    rt.close()
    return _result(length, variant, times, evaluated, args, channels=channels)


def run_floor(args: argparse.Namespace, length: int) -> dict:
    """Raw llama-cpp-python: decode exactly the tokens the cached runtime evaluated, on a warm context."""
    import llama_cpp

    from model_runtime.llama_load import load_llama

    # Token lists come from the runtime (untimed); the timed region below is llama.cpp only.
    rt = make_runtime(args, 512)
    hist = history(rt, length, seed=0)
    plan = []
    rt.score("ch0", hist + [message(random.Random(99), 99)])
    for window in trials(hist, args.messages, seed=0):
        d = rt.score("ch0", window)
        target = list(rt._seq.tokens)  # prompt + "(sil": what the context holds after the decision
        plan.append((target, d.timings.tokens_evaluated))
    model_path = str(rt.model_path)
    rt.close()

    llm = load_llama(
        model_path, n_ctx=args.n_ctx, n_batch=512, n_ubatch=512, n_threads=args.threads,
        n_threads_batch=args.threads,
    )  # fmt: skip
    ctx, mem = llm.ctx, llama_cpp.llama_get_memory(llm.ctx)
    batch = llama_cpp.llama_batch_init(512, 0, 1)

    def decode(tokens: list[int], start: int, logits_from: int) -> None:
        for pos in range(start, len(tokens), 512):
            chunk = tokens[pos : pos + 512]
            batch.n_tokens = len(chunk)
            for j, tok in enumerate(chunk):
                batch.token[j], batch.pos[j], batch.n_seq_id[j] = tok, pos + j, 1
                batch.seq_id[j][0] = 0
                batch.logits[j] = pos + j >= logits_from
            if llama_cpp.llama_decode(ctx, batch) != 0:
                raise RuntimeError("llama_decode failed")

    times, evaluated = [], []
    for target, n_new in plan:
        prefix = len(target) - n_new
        llama_cpp.llama_memory_clear(mem, False)
        decode(target[:prefix], 0, prefix)  # warm context, untimed
        start = time.perf_counter()
        decode(target, prefix, len(target) - 2)  # the new tokens; logits for the two decision positions
        llama_cpp.llama_get_logits_ith(ctx, -1)
        times.append((time.perf_counter() - start) * 1000)
        evaluated.append(n_new)
    llama_cpp.llama_batch_free(batch)
    llm.close()
    return _result(length, "floor", times, evaluated, args)


def _result(length: int, variant: str, times: list[float], evaluated: list[int], args, channels: int = 1) -> dict:
    p50, p95 = percentiles(times)
    return {
        "history_tokens": length,
        "variant": variant,
        "p50_ms": round(p50, 2),
        "p95_ms": round(p95, 2),
        "mean_ms": round(statistics.fmean(times), 2),
        "n": len(times),
        "tokens_evaluated_mean": round(statistics.fmean(evaluated), 1),
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": args.threads,
        "channels": channels,
        "cache_budget_mb": args.budget_mb if variant == "interleaved" else 512,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", default="256,1024,2048")
    parser.add_argument("--variants", default="naive,cached,floor,interleaved")
    parser.add_argument("--messages", type=int, default=30, help="timed messages per variant (>= 30)")
    parser.add_argument("--channels", type=int, default=20)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--budget-mb", type=int, default=2048, help="cache_budget_mb for the interleaved run")
    parser.add_argument("--one", nargs=2, metavar=("LENGTH", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        length, variant = int(args.one[0]), args.one[1]
        result = run_floor(args, length) if variant == "floor" else run_runtime(args, length, variant)
        print(json.dumps(result), flush=True)
        return
    for length in [int(x) for x in args.lengths.split(",")]:
        results = {}
        for variant in args.variants.split(","):
            cmd = [sys.executable, __file__, "--one", str(length), variant] + _passthrough(args)
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            results[variant] = json.loads(out)
            print(out, flush=True)
        print(json.dumps(_summary(length, results)), flush=True)


def _passthrough(args: argparse.Namespace) -> list[str]:
    return [
        f"--messages={args.messages}", f"--channels={args.channels}", f"--threads={args.threads}",
        f"--n-ctx={args.n_ctx}", f"--budget-mb={args.budget_mb}",
    ]  # fmt: skip


def _summary(length: int, r: dict[str, dict]) -> dict:
    def ratio(a: str, b: str) -> float | None:
        return round(r[a]["p50_ms"] / r[b]["p50_ms"], 2) if a in r and b in r else None

    return {
        "history_tokens": length,
        "variant": "summary",
        "cached_over_floor": ratio("cached", "floor"),  # target <= 1.5
        "naive_over_cached": ratio("naive", "cached"),  # target >= 20 at 2048
        "interleaved_over_cached": ratio("interleaved", "cached"),  # target <= 2
    }


if __name__ == "__main__":
    main()
