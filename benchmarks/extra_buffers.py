"""What turning off llama.cpp's extra buffer types costs: decisions with them on and off.

chime loads every model with ``use_extra_bufts = False`` (``model_runtime/llama_load.py``)
because the AMX buffer type crashes on Intel CPUs that have it. This replays the first
conversations of the dev split through the runtime as shipped (bundled model + default
adapter), once per setting, each in its own process, and prints one JSON object per
setting: p50 / p95 decision time, decisions per second, and the weight buffers llama.cpp
reported at load (``CPU`` only, or also ``CPU_REPACK`` / ``AMX`` where they apply).

    .venv/bin/python benchmarks/extra_buffers.py               # ~2 min on 2 cores

Do not run the ``on`` setting on a CPU with AMX: it crashes there, which is the point.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class _BufferLines(logging.Handler):
    """Collects the "model buffer size" lines llama.cpp logs while loading."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "model buffer size" in text:
            self.lines.append(text.split(":", 1)[-1].strip())


def run_one(setting: str, conversations: int, threads: int) -> dict:
    """Decide on every human turn of the first dev conversations with extra buffer types on or off."""
    from model_runtime import LlamaCppOptions, Turn, create_runtime, llama_cpp_backend, llama_load
    from model_runtime.seed_format import read_seed_file

    handler = _BufferLines()
    logging.getLogger("chime.llama_cpp").addHandler(handler)
    logging.getLogger("chime.llama_cpp").setLevel(logging.DEBUG)
    if setting == "on":
        llama_cpp_backend.load_llama = functools.partial(llama_load.load_llama, extra_buffer_types=True)
    rt = create_runtime(LlamaCppOptions(n_threads=threads))
    times: list[float] = []
    convs = read_seed_file(ROOT / "training/data/dev.jsonl").conversations[:conversations]
    for c, conv in enumerate(convs):
        window: list[Turn] = []
        for msg in conv:
            window.append(Turn(role=msg["role"], name=msg.get("name", ""), content=msg["content"]))
            if msg["role"] != "user":
                continue
            start = time.perf_counter()
            rt.score(f"c{c}", window)
            times.append((time.perf_counter() - start) * 1000)
    rt.close()
    ordered = sorted(times)
    return {
        "extra_buffer_types": setting,
        "decisions": len(times),
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(ordered[round(0.95 * (len(ordered) - 1))], 1),
        "decisions_per_s": round(len(times) / (sum(times) / 1000), 2),
        "weight_buffers": handler.lines,
        "threads": threads,
    }


def main() -> None:
    """Run each setting in its own process and print its JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conversations", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--settings", default="off,on")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child, args.conversations, args.threads)))
        return
    for setting in args.settings.split(","):
        cmd = [sys.executable, __file__, "--child", setting, "--conversations", str(args.conversations)]
        out = subprocess.run(cmd + ["--threads", str(args.threads)], capture_output=True, text=True)
        if out.returncode != 0:
            print(
                json.dumps(
                    {"extra_buffer_types": setting, "error": f"exit {out.returncode}", "stderr": out.stderr[-500:]}
                )
            )
            continue
        print(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
