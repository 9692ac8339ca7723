"""The per-channel scheduler: one decision at a time per channel, newest message wins.

A message that arrives while an earlier decision is still waiting replaces it, so a
burst is decided once, on the latest state. A forced request is never lost: the job
that replaces it inherits the force, and its reply still answers the message that asked.
"Latest" is by store order (trigger_pk), not by arrival at the scheduler: concurrent
events can finish storing in either order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.domain import IncomingMessage

log = logging.getLogger(__name__)


@dataclass
class Job:
    """A pending decision on a channel's latest message."""

    trigger: IncomingMessage
    trigger_pk: int
    forced: bool
    superseded_count: int = 0
    # The message a forced reply answers when a newer message took over the decision.
    answers: IncomingMessage | None = None

    @property
    def reply_target(self) -> IncomingMessage:
        """The message the reply is sent in reply to."""
        return self.answers or self.trigger


# Runs one job; the callable it receives tells whether a newer job is waiting.
JobRunner = Callable[[Job, Callable[[], bool]], Awaitable[None]]


class ChannelScheduler:
    """Runs jobs per channel key, one at a time, superseding jobs that have not started."""

    def __init__(self, run: JobRunner) -> None:
        self._run = run
        self._pending: dict[str, Job] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._latest_pk: dict[str, int] = {}
        self._closed = False

    def submit(self, key: str, job: Job) -> None:
        """Queue ``job`` for channel ``key``, replacing a job that has not started yet."""
        if self._closed:
            log.info("scheduler closed: no decision on %s message %s", key, job.trigger.message_id)
            return
        old = self._pending.get(key)
        if old is not None:
            newer, older = (job, old) if job.trigger_pk >= old.trigger_pk else (old, job)
            if older.forced and not newer.forced:
                newer.forced, newer.answers = True, older.reply_target
            newer.superseded_count = old.superseded_count + 1
            job = newer
        elif job.trigger_pk < self._latest_pk.get(key, 0) and not job.forced:
            # A newer message of this channel is already being decided on; it sees this one.
            log.debug("message %s in %s already covered by a newer decision", job.trigger.message_id, key)
            return
        self._latest_pk[key] = max(self._latest_pk.get(key, 0), job.trigger_pk)
        self._pending[key] = job
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._worker(key), name=f"decide:{key}")

    def has_pending(self, key: str) -> bool:
        """True when a newer job waits for channel ``key``."""
        return key in self._pending

    async def _worker(self, key: str) -> None:
        try:
            while not self._closed and (job := self._pending.pop(key, None)) is not None:
                try:
                    await self._run(job, lambda: self.has_pending(key))
                except Exception:
                    # One failed decision must not stop the channel, let alone the bot.
                    log.exception("decision failed in %s", key)
        finally:
            self._workers.pop(key, None)

    async def drain(self) -> None:
        """Wait until every channel has no job running or waiting."""
        while self._workers:
            await asyncio.gather(*list(self._workers.values()), return_exceptions=True)

    async def close(self, timeout_s: float = 30.0) -> None:
        """Accept no new jobs, drop waiting ones, and let running ones finish within ``timeout_s``."""
        self._closed = True
        for key, job in self._pending.items():
            log.info("shutting down: dropped the pending decision on %s message %s", key, job.trigger.message_id)
        self._pending.clear()
        workers = list(self._workers.values())
        if not workers:
            return
        done, still = await asyncio.wait(workers, timeout=timeout_s)
        for task in still:
            log.warning(
                "shutting down: cancelled a decision still running after %.0fs (%s)", timeout_s, task.get_name()
            )
            task.cancel()
        if still:
            await asyncio.gather(*still, return_exceptions=True)
