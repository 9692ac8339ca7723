"""The model worker process: builds a backend and serves method calls from ProcessRuntime.

Started by ``model_runtime.worker`` as ``python -m model_runtime.worker_child FD PARENT_PID``,
where FD is its end of a socket pair. Messages are pickled tuples:

    parent -> child  ("start", spec, sys_path, log_level)    once, first
                     ("call", method, args, kwargs)          any number
                     ("close",)                              last
    child -> parent  ("ok", result) or ("raise", exception)  one per request
                     ("log", levelno, logger_name, text)     any number, before the reply

stdout and stderr (native library output included) go to a pipe the parent logs from,
never to the terminal. The child ignores SIGINT and SIGTERM (Ctrl-C or a service
manager's stop is for the parent, which then closes the worker itself). It exits when the
parent's end of the socket closes, and on Linux the kernel kills it when the parent dies,
so a ``kill -9`` of the bot does not leave it running a long call to its end.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import os
import pickle
import signal
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any

from model_runtime.interface import RuntimeError_


class _Link:
    """The child's end of the socket; one message at a time, whichever thread sends."""

    def __init__(self, fd: int) -> None:
        self.conn = Connection(fd)
        self._lock = threading.Lock()

    def send(self, message: tuple) -> None:
        with self._lock:
            self.conn.send(message)

    def reply(self, kind: str, value: Any) -> None:
        """Send a reply; a value that cannot be pickled becomes an error naming its type."""
        try:
            payload = pickle.dumps((kind, value), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - any pickling failure is reported the same way
            error = RuntimeError_(f"the worker could not send back a {type(value).__name__}: {exc}")
            payload = pickle.dumps(("raise", error))
        with self._lock:
            self.conn.send_bytes(payload)


class _ForwardLogs(logging.Handler):
    """Sends each log record to the parent, which logs it under the same logger name."""

    def __init__(self, link: _Link) -> None:
        super().__init__()
        self.link = link

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.link.send(("log", record.levelno, record.name, self.format(record)))
        except Exception:  # noqa: BLE001 - a log line must never break a call
            self.handleError(record)


def _portable(exc: BaseException) -> BaseException:
    """The exception itself if it survives pickling, else a RuntimeError_ with its text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001
        return RuntimeError_(f"{type(exc).__name__}: {exc}")


def _build(spec: Any) -> Any:
    """Call the spec's ``module:function`` factory with its arguments."""
    module_name, _, function = spec.factory.partition(":")
    factory = getattr(importlib.import_module(module_name), function)
    return factory(*spec.args, **spec.kwargs)


def _describe(runtime: Any) -> dict[str, Any]:
    return {
        "name": runtime.name,
        "model_id": runtime.model_id,
        "base_threshold": runtime.base_threshold,
        "pid": os.getpid(),
    }


def serve(link: _Link, runtime: Any) -> None:
    """Answer calls until "close" or until the parent goes away."""
    while True:
        try:
            message = link.conn.recv()
        except (EOFError, OSError):
            break  # the parent is gone: nobody to answer
        if message[0] == "close":
            runtime.close()
            link.reply("ok", None)
            break
        _, method, args, kwargs = message
        if method.startswith("_") or not callable(getattr(runtime, method, None)):
            link.reply("raise", RuntimeError_(f"the worker's runtime has no method {method!r}"))
            continue
        try:
            result = getattr(runtime, method)(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the parent re-raises it
            link.reply("raise", _portable(exc))
        else:
            link.reply("ok", result)


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel kill this process when its parent dies (Linux); exit now if it already has."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # no prctl: the closed socket still ends the worker
            pass
    # The parent may have died before the request took effect.
    if parent_pid and os.getppid() != parent_pid:
        os._exit(1)


def main(argv: list[str]) -> int:
    """Start: read the spec, build the runtime, serve."""
    # Linux sends the signal when the *thread* that started us ends. The parent starts
    # workers from its main thread or from the runtime's worker thread, which both live
    # as long as the runtime; if one ended early, the next call would restart the worker.
    die_with_parent(int(argv[2]) if len(argv) > 2 else 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    link = _Link(int(argv[1]))
    try:
        _, spec, sys_path, log_level = link.conn.recv()
    except (EOFError, OSError):
        return 1
    # The parent's path first, so that the same code (and test factories) are imported.
    sys.path[:] = list(dict.fromkeys([*sys_path, *sys.path]))
    root = logging.getLogger()
    root.handlers[:] = [_ForwardLogs(link)]
    root.setLevel(log_level)
    try:
        runtime = _build(spec)
    except BaseException as exc:  # noqa: BLE001 - ImportError, RuntimeError_, ...: all go to the parent
        link.reply("raise", _portable(exc))
        return 1
    link.reply("ok", _describe(runtime))
    serve(link, runtime)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
