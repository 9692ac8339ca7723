"""The threads a runtime's calls run in: urgent calls (forced questions, replies) go first."""

from __future__ import annotations

import concurrent.futures
import heapq
import itertools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# Queue order: urgent before the rest, then first come, first served.
_URGENT, _NORMAL = 0, 1


class PriorityPool:
    """A fixed number of threads taking calls from one queue, urgent calls first.

    With one thread a local model still runs one call at a time, but a forced question
    no longer waits behind the scores of every other busy channel.
    """

    def __init__(self, workers: int, name: str) -> None:
        if workers < 1:
            raise ValueError(f"a pool needs at least one thread, not {workers}")
        self._queue: list[tuple[int, int, Callable[[], Any], concurrent.futures.Future[Any]]] = []
        self._ready = threading.Condition()
        self._order = itertools.count()
        self._closed = False
        # Daemon threads: a runtime that is never closed must not keep the process alive.
        self._threads = [threading.Thread(target=self._serve, name=f"{name}-{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., T], *args: Any, urgent: bool = False) -> concurrent.futures.Future[T]:
        """Queue ``fn(*args)``; its future resolves when a thread has run it."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._ready:
            if self._closed:
                raise RuntimeError("the runtime's pool is shut down")
            heapq.heappush(self._queue, (_URGENT if urgent else _NORMAL, next(self._order), lambda: fn(*args), future))
            self._ready.notify()
        return future

    def waiting(self) -> int:
        """Calls queued and not started yet."""
        with self._ready:
            return len(self._queue)

    def shutdown(self, wait: bool = True) -> None:
        """Run what is queued, then stop the threads (and wait for them if ``wait``)."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        if wait:
            for thread in self._threads:
                if thread is not threading.current_thread():
                    thread.join()

    def _serve(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._closed:
                    self._ready.wait()
                if not self._queue:
                    return  # closed and drained
                _, _, call, future = heapq.heappop(self._queue)
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = call()
            except BaseException as exc:  # noqa: BLE001 - the caller gets it through the future
                future.set_exception(exc)
            else:
                future.set_result(result)
