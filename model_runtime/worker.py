"""ProcessRuntime: the model runs in a worker process, restarted with backoff when it dies.

A native crash in the model (a segfault or an abort in llama.cpp, an out-of-memory kill)
ends only the worker. The bot keeps its platform connections; the call that was in
flight is retried once on a new worker, which starts cold (the per-channel cache lived in
the dead one). Between calls the worker keeps its backend, so the cache works as in
process. Calls are forwarded by method name, so the proxy knows little of their
signatures; ``count_tokens`` (many calls per decision, from the event loop) is answered
in this process by a tokenizer, never by the worker.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from model_runtime.interface import Reply, Runtime, RuntimeError_, Score
from model_runtime.options import LlamaCppOptions, RuntimeOptions
from model_runtime.protocol import DEFAULT_ASSISTANT_NAME, Turn

log = logging.getLogger(__name__)
# The worker's stdout and stderr (native library output) are logged here.
output_log = logging.getLogger("model_runtime.worker.output")

_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


@dataclass(frozen=True)
class WorkerSpec:
    """How the worker builds its backend: a ``module:function`` factory and picklable arguments."""

    factory: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


class WorkerDied(Exception):
    """The worker process ended (or could not start); says how."""


class WorkerHung(WorkerDied):
    """The worker did not answer a call in time and was killed."""


class WorkerUnavailable(RuntimeError_):
    """A call failed because the worker died, also on the retry, or is waiting out its backoff."""


def _how_it_ended(returncode: int | None) -> str:
    if returncode is None:
        return "closed its connection"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return name + (" (killed: out of memory?)" if returncode == -signal.SIGKILL else "")
    return f"exit code {returncode}"


class _Worker:
    """One child process, its connection, and a thread that logs its output."""

    def __init__(self, spec: WorkerSpec) -> None:
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        # The child imports this very package, wherever it was imported from here.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "model_runtime.worker_child", str(theirs.fileno()), str(os.getpid())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(theirs.fileno(),),
                env=env,
                start_new_session=True,  # Ctrl-C and terminal signals are the parent's to handle
            )
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        self.started = time.monotonic()
        self.output: deque[str] = deque(maxlen=20)
        self._reader = threading.Thread(target=self._log_output, name="chime-worker-output", daemon=True)
        self._reader.start()
        try:
            self.info: dict[str, Any] = self.request(("start", spec, list(sys.path), logging.getLogger().level))
        except WorkerDied:
            raise
        except BaseException:
            self.stop()  # the backend could not be built: the child is exiting
            raise

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.proc.pid

    def _log_output(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip()
            if line:
                self.output.append(line)
                output_log.info("worker %d: %s", self.proc.pid, line)

    def request(self, message: tuple, timeout_s: float | None = None) -> Any:
        """Send one request and return its result (or raise the worker's exception, or WorkerDied).

        With ``timeout_s``, a worker that sends nothing for that long is killed (WorkerHung):
        a native deadlock or a runaway generation must not hold every channel forever.
        """
        try:
            self.conn.send(message)
            while True:
                if timeout_s is not None and not self.conn.poll(timeout_s):
                    raise self._hung(message, timeout_s)
                reply = self.conn.recv()
                if reply[0] == "log":
                    _, level, name, text = reply
                    logging.getLogger(name).log(level, "%s", text)
                    continue
                break
        except (EOFError, OSError) as exc:
            raise self._died() from exc
        kind, value = reply
        if kind == "raise":
            raise value
        return value

    def _died(self) -> WorkerDied:
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # alive but deaf: it cannot be trusted any more
            self.proc.wait()
        self._reader.join(timeout=2)  # its last words (an assertion, an abort message)
        self.conn.close()
        lived = time.monotonic() - self.started
        last = " | ".join(list(self.output)[-5:])
        return WorkerDied(
            f"model worker (pid {self.proc.pid}) died: {_how_it_ended(self.proc.returncode)} after {lived:.1f} s"
            + (f"; last output: {last}" if last else "")
        )

    def _hung(self, message: tuple, timeout_s: float) -> WorkerHung:
        self.proc.kill()
        self.proc.wait()
        self._reader.join(timeout=2)
        self.conn.close()
        what = message[1] if message[0] == "call" else message[0]
        return WorkerHung(f"model worker (pid {self.proc.pid}) did not answer {what} within {timeout_s:g} s: killed")

    @property
    def lived_s(self) -> float:
        """Seconds since it was started."""
        return time.monotonic() - self.started

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the worker to close its backend and exit; kill it if it does not."""
        try:
            self.request(("close",))
        except Exception as exc:  # noqa: BLE001 - closing goes on whatever the worker says
            log.debug("model worker %d did not close cleanly: %s", self.pid, exc)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.conn.close()
        self._reader.join(timeout=2)


class ProcessRuntime(Runtime):
    """A backend built and run in a worker process; the calls are forwarded to it.

    A dead worker is restarted after a backoff (``backoff_s`` doubling to
    ``max_backoff_s``, reset once a worker lived ``healthy_s``); a call waits for a
    restart at most ``max_wait_s``, else fails at once with ``WorkerUnavailable``. A call
    that gets no answer within ``call_timeout_s`` kills the worker and is not retried (the
    same input would likely hang again). The service then answers a forced turn with its
    short fallback and leaves others silent.
    """

    def __init__(
        self,
        spec: WorkerSpec,
        *,
        assistant_name: str = DEFAULT_ASSISTANT_NAME,
        count_tokens: Callable[[str], int] | None = None,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        healthy_s: float = 60.0,
        max_wait_s: float = 5.0,
        call_timeout_s: float | None = 120.0,
    ) -> None:
        super().__init__(assistant_name)
        self.spec = spec
        self.call_timeout_s = call_timeout_s
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.healthy_s, self.max_wait_s = healthy_s, max_wait_s
        self._counter = count_tokens
        self._lock = threading.Lock()  # one call at a time on the worker
        # forget() comes from the event loop while a call may hold self._lock for seconds.
        self._forgets_lock = threading.Lock()
        self._pending_forgets: set[str] = set()
        self._failures = 0  # deaths in a row (reset by a healthy run)
        self._not_before = 0.0  # no worker starts before this monotonic time
        self.starts = 0
        self.deaths = 0
        try:
            self._worker: _Worker | None = self._start()
        except WorkerDied as died:
            raise RuntimeError_(str(died)) from None
        info = self._worker.info
        self.name = info["name"]
        self._model_id: str = info["model_id"]
        self._base_threshold: float = info["base_threshold"]

    @property
    def model_id(self) -> str:
        """The worker's backend's model id (read once at start)."""
        return self._model_id

    @property
    def base_threshold(self) -> float:
        """The worker's backend's base threshold (read once at start)."""
        return self._base_threshold

    @property
    def pid(self) -> int | None:
        """The running worker's process id (None while it is down)."""
        worker = self._worker
        return worker.pid if worker is not None else None

    def score(self, channel: str, window: Sequence[Turn]) -> Score:
        """The worker's score (``WorkerUnavailable`` if the worker died, also on the retry)."""
        return self.call("score", channel, list(window))

    def reply(self, channel: str, window: Sequence[Turn]) -> Reply:
        """The worker's reply (``WorkerUnavailable`` if the worker died, also on the retry)."""
        return self.call("reply", channel, list(window))

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes, counted in this process (the worker is never asked)."""
        if self._counter is not None:
            return self._counter(text)
        return super().count_tokens(text)

    def forget(self, channel: str) -> None:
        """Drop the channel's state in the worker before its next call (never blocks)."""
        with self._forgets_lock:
            self._pending_forgets.add(channel)

    def close(self) -> None:
        """Finish the call in flight, stop the worker and release the tokenizer."""
        super().close()
        with self._lock:
            if self._worker is not None:
                self._worker.stop()
                self._worker = None
        close_counter = getattr(self._counter, "close", None)
        if close_counter is not None:
            close_counter()

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Run ``method`` on the worker's backend; retried once on a new worker if the worker dies."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    worker = self._running_worker()
                    self._send_forgets(worker)
                    return worker.request(("call", method, args, kwargs), self.call_timeout_s)
                except WorkerDied as died:
                    delay = self._bury()
                    retry = attempt == 1 and delay <= self.max_wait_s and not isinstance(died, WorkerHung)
                    then = "retrying the call on a new worker" if retry else "the call fails; a new worker starts"
                    log.error("%s; %s in %.1f s", died, then, delay)
                    if not retry:
                        raise WorkerUnavailable(f"{method} failed: {died}") from None
            raise AssertionError("unreachable: the second attempt returns or raises")

    def _send_forgets(self, worker: _Worker) -> None:
        with self._forgets_lock:
            channels, self._pending_forgets = self._pending_forgets, set()
        for channel in sorted(channels):
            worker.request(("call", "forget", (channel,), {}), self.call_timeout_s)

    def _running_worker(self) -> _Worker:
        if self._worker is not None:
            return self._worker
        wait = self._not_before - time.monotonic()
        if wait > self.max_wait_s:
            raise WorkerUnavailable(
                f"the model worker died {self._failures} times in a row; next start in {wait:.0f} s"
            )
        if wait > 0:
            time.sleep(wait)
        self._worker = self._start()
        return self._worker

    def _start(self) -> _Worker:
        self.starts += 1
        try:
            worker = _Worker(self.spec)
        except WorkerDied:
            raise
        except Exception as exc:  # raised by the backend's constructor in the worker
            if self.starts == 1:
                raise  # the first start: a configuration error, reported as the backend raised it
            raise WorkerDied(f"the model worker could not start again: {exc}") from exc
        log.info("model worker started (pid %d)", worker.pid)
        return worker

    def _bury(self) -> float:
        """Forget the dead worker and schedule the next start; returns the delay before it."""
        worker, self._worker = self._worker, None
        if worker is not None and worker.lived_s >= self.healthy_s:
            self._failures = 0
        self._failures += 1
        self.deaths += 1
        # Cached channel states died with it; forgetting them is moot.
        with self._forgets_lock:
            self._pending_forgets.clear()
        delay = min(self.max_backoff_s, self.backoff_s * 2 ** (self._failures - 1))
        self._not_before = time.monotonic() + delay
        return delay


def create_isolated_runtime(options: RuntimeOptions, assistant_name: str = DEFAULT_ASSISTANT_NAME) -> ProcessRuntime:
    """The backend ``options`` name, in a worker process; llama.cpp's tokenizer stays here for counting."""
    counter = None
    if isinstance(options, LlamaCppOptions):
        from model_runtime.llama_cpp_backend import VocabCounter
        from model_runtime.preflight import resolve_model_path

        counter = VocabCounter(resolve_model_path(options))
    spec = WorkerSpec("model_runtime:create_runtime", (options, assistant_name))
    try:
        return ProcessRuntime(
            spec,
            assistant_name=assistant_name,
            count_tokens=counter,
            call_timeout_s=getattr(options, "worker_timeout_s", None),
        )
    except BaseException:
        if counter is not None:
            counter.close()
        raise
