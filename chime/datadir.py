"""The data directory: checked writable before anything starts, and locked by the ``chime run`` using it."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from bot.config import ConfigError

LOCK_FILE = "chime.lock"


def check_writable(data_dir: Path) -> None:
    """A ConfigError unless ``data_dir`` exists as a writable directory or can be created."""
    existing = data_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"data_dir {data_dir}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"data_dir {data_dir}: not writable (choose another with --data-dir or data_dir)")


@contextlib.contextmanager
def hold(data_dir: Path, *, lock: bool) -> Iterator[None]:
    """Create ``data_dir``; with ``lock``, hold ``chime.lock`` in it exclusively until the block ends.

    Two bots writing one SQLite store would each decide and answer the same messages; the
    second one stops here instead. The lock goes with the process, however it ends.
    """
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644) if lock else None
    except OSError as e:
        raise ConfigError(f"data_dir {data_dir}: not writable ({e.strerror})") from None
    if fd is None:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            raise ConfigError(
                f"data_dir {data_dir}: another chime run (pid {holder}) is using it; "
                "stop that one first, or give this one another --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race a bot starting)
