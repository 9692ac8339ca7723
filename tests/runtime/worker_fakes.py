"""Backends that the worker tests build inside the worker process: they crash it on purpose."""

from __future__ import annotations

import os
import resource
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from model_runtime.interface import Reply, Runtime, RuntimeError_, Score, Timings
from model_runtime.protocol import Turn


def crash(how: str) -> None:
    """End this process the way a native failure would (no core file)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    print(f"fake backend: crashing with {how}", file=sys.stderr, flush=True)
    if how == "abort":
        os.abort()  # libc abort(): SIGABRT, as a failed GGML_ASSERT does
    elif how == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)  # what the out-of-memory killer sends
    elif how == "hang":
        time.sleep(3600)  # a deadlock in native code looks like this from outside
    os._exit(3)


class CrashingRuntime(Runtime):
    """Crashes its process on every call, or only on the first one of all workers (``once``)."""

    name = "crashing"

    def __init__(self, how: str, once: str | None = None) -> None:
        super().__init__()
        self.how = how
        # A file, so that "first" counts across worker processes.
        self.once = Path(once) if once else None
        self.calls = 0

    @property
    def model_id(self) -> str:
        return f"crashing:{self.how}"

    @property
    def base_threshold(self) -> float:
        return 0.4

    def _call(self) -> None:
        self.calls += 1
        if self.once is None or not self.once.exists():
            if self.once is not None:
                self.once.touch()
            crash(self.how)

    def score(self, channel: str, window: Sequence[Turn]) -> Score:
        self._call()
        if window[-1].content == "raise":
            raise RuntimeError_(f"no decision in channel {channel!r}")
        return Score(0.25, Timings(tokens_cached=self.calls))

    def reply(self, channel: str, window: Sequence[Turn]) -> Reply:
        self._call()
        return Reply(f"answer {self.calls} from pid {os.getpid()}")


def crashing(how: str, once: str | None = None) -> CrashingRuntime:
    """Factory for WorkerSpec."""
    return CrashingRuntime(how, once)


def failing_to_start(kind: str) -> Runtime:
    """A factory that fails the way a bad configuration does."""
    if kind == "import":
        raise ImportError("No module named 'llama_cpp'", name="llama_cpp")
    raise RuntimeError_("GGUF file not found: /nowhere/model.gguf")
