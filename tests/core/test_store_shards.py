"""One store shared by several processes: migrations started together, and each process's own channels."""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from bot.domain import ChannelRef, IncomingMessage
from bot.store import Store
from bot.store.migrate import current_revision, head_revision, upgrade

GUILD_A = ChannelRef("discord", "a1", "guild a #general", "100")
GUILD_B = ChannelRef("discord", "b1", "guild b #general", "200")
DM = ChannelRef("discord", "dm1", "DM ann")


def msg(channel: ChannelRef, mid: str) -> IncomingMessage:
    return IncomingMessage(channel, mid, "u1", "Ann", "hello", datetime.now(UTC))


def test_pending_and_read_back_cover_only_the_servers_served(store: Store) -> None:
    for ref in (GUILD_A, GUILD_B, DM):
        store.add_message(msg(ref, f"{ref.channel_id}-m"), channel_pk=store.channel(ref).pk)

    def keys(pending: list) -> set[str]:
        return {p.message.channel.key for p in pending}

    assert keys(store.pending_messages("discord")) == {"discord:a1", "discord:b1", "discord:dm1"}
    # The process with guild A and direct messages (shard 0), and the one with guild B.
    shard0 = store.pending_messages("discord", servers=lambda server: server in (None, "100"))
    shard1 = store.pending_messages("discord", servers=lambda server: server == "200")
    assert keys(shard0) == {"discord:a1", "discord:dm1"} and keys(shard1) == {"discord:b1"}
    assert {p.message.channel.server for p in shard0} == {"100", None}
    assert set(store.last_message_ids("discord", servers=lambda server: server == "200")) == {"b1"}
    assert set(store.last_message_ids("discord")) == {"a1", "b1", "dm1"}


def test_a_channel_stored_before_servers_were_recorded_gets_its_server_when_seen(store: Store) -> None:
    old = ChannelRef("discord", "c1", "old")
    store.add_message(msg(old, "m1"), channel_pk=store.channel(old).pk)
    only_b = lambda server: server == "200"  # noqa: E731
    assert store.pending_messages("discord", servers=only_b) == []
    store.channel(ChannelRef("discord", "c1", "old", "200"))
    assert [p.message.message_id for p in store.pending_messages("discord", servers=only_b)] == ["m1"]


def _upgrade_when_all_are_ready(url: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    barrier.wait(60)
    upgrade(url)


@pytest.mark.postgres
def test_processes_migrating_one_database_together_all_succeed(postgres_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_upgrade_when_all_are_ready, args=(postgres_url, barrier)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert current_revision(postgres_url) == head_revision()


def test_a_new_channel_seen_on_several_threads_at_once_is_created_once(store: Store) -> None:
    # PostgreSQL's store calls run on several threads: a command and a message may both be
    # the first sight of a channel.
    ref = ChannelRef("discord", "n1", "guild a #new", "100")
    barrier = threading.Barrier(8)

    def first_sight(_: int) -> int:
        barrier.wait(10)
        return store.channel(ref).pk

    with ThreadPoolExecutor(8) as pool:
        pks = list(pool.map(first_sight, range(8)))
    assert len(set(pks)) == 1
