"""Reading each channel's ``memory.knowledge`` folder into its documents (at start and by ``chime memory rebuild``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from bot.domain import ChannelRef
from bot.memory.documents import DocumentError, chunk, knowledge_files, read_document
from bot.store import Store, StoreError

log = logging.getLogger(__name__)
ADDED_BY = "knowledge folder"


def learn_text(store: Store, channel: ChannelRef, name: str, text: str, *, source: str, added_by: str) -> int:
    """Store a document for a channel (replacing one of the same name); returns its passages."""
    pk = store.channel(channel).pk
    chunks = chunk(text)
    store.add_document(pk, name, chunks, source=source, added_by=added_by)
    log.info("memory: %s learnt %s (%d passages) from %s", channel.key, name, len(chunks), source)
    return len(chunks)


def load_knowledge(
    store: Store,
    folders: Mapping[str, Path],
    only: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Learn every file of every channel's folder (or only the channel key ``only``); returns the files learnt.

    A folder or file that cannot be read is logged and skipped: the others are still learnt.
    """
    work: list[tuple[str, Path, Path]] = []
    for key, folder in folders.items():
        if only is not None and key != only:
            continue
        try:
            work += [(key, folder, path) for path in knowledge_files(folder)]
        except DocumentError as e:
            log.error("memory.knowledge[%r]: %s", key, e)
    done = 0
    for i, (key, folder, path) in enumerate(work, start=1):
        platform, _, channel_id = key.partition(":")
        try:
            text = read_document(path)
            learn_text(store, ChannelRef(platform, channel_id), str(path.relative_to(folder)), text,
                       source=str(path), added_by=ADDED_BY)  # fmt: skip
            done += 1
        except (DocumentError, StoreError) as e:
            log.error("memory: %s not learnt for %s: %s", path, key, e)
        if progress:
            progress(i, len(work))
    return done
