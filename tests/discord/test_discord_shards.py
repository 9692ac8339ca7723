"""Discord shards in several ``chime run`` processes on one PostgreSQL store, against the fake gateway.

Each process runs one of two shards; each shard serves one guild. Every message must be
stored once and every question to the bot answered once, also when one process is killed
(SIGKILL) and started again while the other goes on.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.store.models import Channel, Message
from bot.store.store import make_engine
from tests.core.test_cli import ROOT
from tests.discord.conftest import TOKEN_ENV, wait_until
from tests.discord.fake_discord import FakeDiscord, Person

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(300)]

SHARDS = 2
# Each decision takes this long, so that a kill lands in the middle of some.
DELAY_S = 0.2


@dataclass
class ChimeProcess:
    """One ``chime run`` serving ``shard_ids``, started as an operator would, with its own data directory."""

    name: str
    config: Path
    data_dir: Path
    proc: asyncio.subprocess.Process | None = None
    starts: int = 0

    @property
    def log(self) -> str:
        path = self.data_dir / "chime.log"
        return path.read_text() if path.exists() else ""

    async def start(self) -> None:
        """Start it and wait until its shards are connected."""
        await self.spawn()
        await self.connected()

    async def spawn(self) -> None:
        """Start the process."""
        self.starts += 1
        out = (self.data_dir.parent / f"{self.name}-{self.starts}.out").open("w")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chime",
            "run",
            "--config",
            str(self.config),
            "--data-dir",
            str(self.data_dir),
            cwd=ROOT,
            env={**os.environ, TOKEN_ENV: "test-token"},
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
        out.close()

    async def connected(self) -> None:
        """Wait until this start's shards are connected."""
        await wait_until(lambda: self.log.count("discord: connected as") >= self.starts, 60, f"{self.name} to connect")

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as after a crash or an out-of-memory kill."""
        assert self.proc is not None
        self.proc.kill()

    async def stop(self) -> int:
        """SIGTERM, as a service manager stops it; returns the exit status."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 60)

    def decided_in(self) -> set[str]:
        """The channel keys this process logged decisions in."""
        return {
            line.split("decision channel=")[1].split()[0]
            for line in self.log.splitlines()
            if "decision channel=" in line
        }


@dataclass
class Guild:
    """A guild on one shard, its channel, and what was said there."""

    id: int
    channel: int
    said: list[int] = field(default_factory=list)
    questions: list[int] = field(default_factory=list)


def write_config(path: Path, store_url: str, api_base_url: str, shard_ids: list[int], delay_s: float) -> Path:
    discord = {
        "enabled": True,
        "token_env": TOKEN_ENV,
        "api_base_url": api_base_url,
        "shard_count": SHARDS,
        "shard_ids": shard_ids,
    }
    config = {
        "store": {"url": store_url},
        "runtime": {"kind": "rules", "delay_s": delay_s},
        "adapters": {"console": {"enabled": False}, "discord": discord},
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
async def shards(postgres_url: str, tmp_path: Path):
    """A fake Discord with one guild per shard, and one (not yet started) chime process per shard."""
    fake = FakeDiscord()
    guilds = []
    for shard in range(SHARDS):
        gid = fake.add_guild(f"guild {shard}", shard=(shard, SHARDS))
        guilds.append(Guild(gid, fake.add_channel(f"general-{shard}", guild_id=gid)))
    await fake.start()
    processes = [
        ChimeProcess(
            f"shard{shard}",
            write_config(tmp_path / f"shard{shard}.yaml", postgres_url, fake.api_base_url, [shard], DELAY_S),
            tmp_path / f"data{shard}",
        )
        for shard in range(SHARDS)
    ]
    engine = make_engine(postgres_url)
    yield fake, guilds, processes, engine
    engine.dispose()
    for p in processes:
        if p.proc is not None and p.proc.returncode is None:
            p.proc.kill()
            await p.proc.wait()
    await fake.stop()


async def say(fake: FakeDiscord, guild: Guild, people: list[Person], n: int, tag: str) -> None:
    """``n`` messages in the guild's channel; every third one a question to the bot."""
    for i in range(n):
        question = i % 3 == 2
        text = f"@assistant what is {tag}-{i}?" if question else f"{tag} message {i}"
        msg = await fake.post(guild.channel, people[i % len(people)], text)
        guild.said.append(int(msg["id"]))
        if question:
            guild.questions.append(int(msg["id"]))


def stored(engine: Engine) -> list[tuple[str, str, str | None, bool]]:
    """(channel id, platform message id, outcome, from the bot) of every stored message."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Channel.channel_id, Message.platform_message_id, Message.outcome, Message.from_assistant).join(
                Channel, Channel.id == Message.channel_pk
            )
        )
        return [tuple(r) for r in rows]


def answers(fake: FakeDiscord) -> dict[int, list[int]]:
    """Each message the bot replied to, with the ids of the bot's messages replying to it."""
    replies: dict[int, list[int]] = {}
    for msg in fake.messages.values():
        ref = msg.get("message_reference")
        if int(msg["author"]["id"]) == fake.bot.id and ref:
            replies.setdefault(int(ref["message_id"]), []).append(int(msg["id"]))
    return replies


def all_done(engine: Engine, fake: FakeDiscord, guilds: list[Guild]) -> bool:
    said = {str(m) for g in guilds for m in g.said}
    decided = {mid for _, mid, outcome, _ in stored(engine) if outcome is not None and mid in said}
    questions = {q for g in guilds for q in g.questions}
    return decided == said and questions <= set(answers(fake))


def check_once(engine: Engine, fake: FakeDiscord, guilds: list[Guild]) -> None:
    """Every message stored once with an outcome, every question answered by one reply, nothing else answered."""
    rows = stored(engine)
    ids = [mid for _, mid, _, _ in rows]
    assert len(ids) == len(set(ids)), "a message was stored twice"
    for g in guilds:
        people = sorted(mid for cid, mid, _, own in rows if cid == str(g.channel) and not own)
        assert people == sorted(str(m) for m in g.said)
        assert all(outcome is not None for _, _, outcome, _ in rows)
    replies = answers(fake)
    assert sorted(replies) == sorted(q for g in guilds for q in g.questions), "an answer missing or unasked"
    assert all(len(r) == 1 for r in replies.values()), f"answered twice: {replies}"
    # The bot's replies are stored once each, as its own messages.
    own = sorted(mid for _, mid, _, is_own in rows if is_own)
    assert own == sorted(str(r[0]) for r in replies.values())


async def test_two_processes_on_one_store_store_and_answer_everything_once(shards) -> None:
    fake, guilds, processes, engine = shards
    people = [fake.add_person("ann"), fake.add_person("ben")]
    # Both start together: their migrations of the new database must not collide.
    await asyncio.gather(*(p.start() for p in processes))
    assert sorted(tuple(i["shard"]) for i in fake.identifies) == [(0, SHARDS), (1, SHARDS)]
    await asyncio.gather(*(say(fake, g, people, 9, f"g{n}") for n, g in enumerate(guilds)))
    await wait_until(lambda: all_done(engine, fake, guilds), 60, "every message decided and question answered")
    await asyncio.sleep(0.5)  # anything doubled would show up now
    check_once(engine, fake, guilds)
    # Each process decided in its own guild's channel only.
    for p, g in zip(processes, guilds, strict=True):
        assert p.decided_in() == {f"discord:{g.channel}"}
    assert [await p.stop() for p in processes] == [0, 0]


async def test_a_process_killed_and_restarted_while_the_other_runs(shards) -> None:
    fake, guilds, processes, engine = shards
    people = [fake.add_person("ann"), fake.add_person("ben")]
    victim = processes[0]
    await asyncio.gather(*(p.start() for p in processes))
    await asyncio.gather(*(say(fake, g, people, 12, f"before{n}") for n, g in enumerate(guilds)))
    # Killed in the middle of its guild's decisions.
    await wait_until(lambda: victim.log.count("decision channel=") >= 2, 30, "the first decisions")
    victim.kill()
    await victim.proc.wait()
    await wait_until(lambda: fake.connected_shards == {1}, 10, "the fake to see shard 0's connection gone")
    # While it is down its guild's events reach nobody; the other guild goes on.
    await asyncio.gather(*(say(fake, g, people, 6, f"during{n}") for n, g in enumerate(guilds)))
    await wait_until(lambda: all_done(engine, fake, guilds[1:]), 60, "the other guild's decisions")
    # It comes back while the other is busy with a queue of questions: it must leave
    # those alone (they are the other's, undecided yet), and decide its own.
    await victim.spawn()
    await wait_until(lambda: len(fake.identifies) == 3, 60, "the restarted process to identify")
    await say(fake, guilds[1], people, 45, "busy")
    await victim.connected()
    await wait_until(lambda: all_done(engine, fake, guilds), 60, "every message decided and question answered")
    await asyncio.sleep(0.5)
    check_once(engine, fake, guilds)
    assert "read back" in victim.log
    for p, g in zip(processes, guilds, strict=True):
        assert p.decided_in() == {f"discord:{g.channel}"}
    assert [await p.stop() for p in processes] == [0, 0]
