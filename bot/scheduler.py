"""The per-channel scheduler: one decision at a time per channel, in store order.

Waiting jobs run oldest first (by ``trigger_pk``, the store's order, which deletions
never reuse). A newer message supersedes a waiting unforced one: its decision sees
that message in its window. A forced job is never superseded: each question is
answered on its own, about itself. Every job ends either by running or by being
reported to ``on_superseded``, so its message always gets an outcome; only a close
leaves waiting jobs without one (they are decided again at the next start).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.domain import IncomingMessage

log = logging.getLogger(__name__)


@dataclass(order=True)
class Job:
    """A pending decision on one stored message."""

    trigger_pk: int
    trigger: IncomingMessage = field(compare=False)
    forced: bool = field(default=False, compare=False)

    @property
    def reply_target(self) -> IncomingMessage:
        """The message the reply is sent in reply to (the one decided on)."""
        return self.trigger


# Runs one job; the callable it receives tells whether a newer job waits in the channel.
JobRunner = Callable[[Job, Callable[[], bool]], Awaitable[None]]
# Told about a job that will not run because a newer message's decision covers it.
OnSuperseded = Callable[[Job], None]


class ChannelScheduler:
    """Runs jobs per channel key, one at a time, oldest first; newer messages supersede waiting unforced jobs."""

    def __init__(self, run: JobRunner, on_superseded: OnSuperseded | None = None) -> None:
        self._run = run
        self._on_superseded = on_superseded or (lambda job: None)
        self._pending: dict[str, list[Job]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        # The newest message each channel has a job for (waiting, running or done).
        self._latest_pk: dict[str, int] = {}
        self._closed = False

    def submit(self, key: str, job: Job) -> bool:
        """Queue ``job`` for channel ``key``; False when closed (the job's message stays undecided)."""
        if self._closed:
            log.info("scheduler closed: message %s in %s left for the next start", job.trigger.message_id, key)
            return False
        if not job.forced and job.trigger_pk < self._latest_pk.get(key, 0):
            # A newer message of this channel was stored after this one, so its window holds this one.
            log.debug("message %s in %s superseded by a newer decision", job.trigger.message_id, key)
            self._on_superseded(job)
            return True
        queue = self._pending.setdefault(key, [])
        for old in [j for j in queue if not j.forced and j.trigger_pk < job.trigger_pk]:
            queue.remove(old)
            self._on_superseded(old)
        bisect.insort(queue, job)
        self._latest_pk[key] = max(self._latest_pk.get(key, 0), job.trigger_pk)
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._worker(key), name=f"decide:{key}")
        return True

    def has_newer(self, key: str, pk: int) -> bool:
        """True when a job on a message newer than ``pk`` waits in channel ``key``."""
        return any(j.trigger_pk > pk for j in self._pending.get(key, ()))

    def waiting(self) -> int:
        """How many jobs wait (not counting running ones)."""
        return sum(len(q) for q in self._pending.values())

    async def _worker(self, key: str) -> None:
        try:
            while not self._closed and (queue := self._pending.get(key)):
                job = queue.pop(0)
                try:
                    await self._run(job, lambda job=job: self.has_newer(key, job.trigger_pk))
                except Exception:
                    # One failed decision must not stop the channel, let alone the bot.
                    log.exception("decision failed in %s", key)
        finally:
            self._workers.pop(key, None)
            if not self._pending.get(key):
                self._pending.pop(key, None)

    async def drain(self) -> None:
        """Wait until every channel has no job running or waiting."""
        while self._workers:
            await asyncio.gather(*list(self._workers.values()), return_exceptions=True)

    async def close(self, timeout_s: float = 30.0) -> None:
        """Accept no new jobs, leave waiting ones undecided, and let running ones finish within ``timeout_s``."""
        self._closed = True
        for key, queue in self._pending.items():
            for job in queue:
                what = "question" if job.forced else "message"
                log.info("shutting down: %s %s in %s left for the next start", what, job.trigger.message_id, key)
        self._pending.clear()
        workers = list(self._workers.values())
        if not workers:
            return
        done, still = await asyncio.wait(workers, timeout=timeout_s)
        for task in still:
            log.warning(
                "shutting down: cancelled a decision still running after %.0fs (%s); it is taken again at the next start",
                timeout_s,
                task.get_name(),
            )
            task.cancel()
        if still:
            await asyncio.gather(*still, return_exceptions=True)
