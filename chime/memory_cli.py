"""``chime memory rebuild [CHANNEL]``: index the stored history again and re-read the knowledge folders."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from bot.config import ConfigError
from bot.memory.knowledge import load_knowledge
from bot.store import Store
from bot.store.reindex import chunk_count, rebuild_index


def progress_bar(label: str, width: int = 30) -> Callable[[int, int], None]:
    """A progress bar on stderr: ``label [#####.....] 50% 5000/10000``."""

    def show(done: int, total: int) -> None:
        filled = width * done // total if total else width
        pct = 100 * done // total if total else 100
        end = "\n" if done >= total else ""
        print(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {pct:3d}% {done}/{total}", end=end, file=sys.stderr)

    return show


def cmd_memory(args: argparse.Namespace) -> int:
    """Rebuild the memory index of one channel (platform:channel_id) or of all, with a progress bar."""
    from chime.app import prepare_store
    from chime.cli import _load

    config = _load(args)
    store = Store(prepare_store(config))
    try:
        channel_pk, only = None, None
        if args.channel:
            channel = store.find_channel(args.channel)
            if channel is None:
                raise ConfigError(f"memory rebuild: no channel {args.channel!r} in the store (use platform:channel_id)")
            channel_pk, only = channel.pk, f"{channel.platform}:{channel.channel_id}"
        messages = rebuild_index(store.engine, channel_pk, progress_bar("messages"))
        files = load_knowledge(store, config.memory.knowledge, only, progress_bar("knowledge"))
        chunks = chunk_count(store.engine, channel_pk)
    finally:
        store.close()
    where = args.channel or "every channel"
    print(f"memory of {where}: {messages} messages indexed, {files} knowledge files read, {chunks} document passages")
    return 0


def add_parser(sub: argparse._SubParsersAction, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``memory`` subcommand's arguments."""
    mem = sub.add_parser("memory", help="the group's memory: rebuild its index")
    mem.add_argument("action", choices=["rebuild"])
    mem.add_argument("channel", nargs="?", help="platform:channel_id (default: every channel)")
    common(mem)
