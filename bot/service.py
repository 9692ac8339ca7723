"""The conversation service: every platform's messages flow through here.

forced? -> store -> gates -> per-channel scheduler -> window (up to the message) ->
decider.score -> force, mute and threshold (here alone) -> responder.reply when speaking
-> record the decision and the message's outcome (DESIGN.md, "Data flow"). A message
stored without an outcome is decided again by ``resume_pending`` at the next start.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from bot import outcomes
from bot.commands import execute
from bot.config import Config
from bot.domain import (
    ChannelRef,
    CommandContext,
    Decision,
    IncomingMessage,
    ReplySender,
    SentMessage,
    ServerFilter,
    utcnow,
)
from bot.memory import Memory
from bot.memory.answer import relevant
from bot.memory.intent import RECALL, past_question
from bot.memory.knowledge import load_knowledge
from bot.memory.respond import aanswer
from bot.operations import Operations
from bot.responding import Remembered, Responder
from bot.scheduler import ChannelScheduler, Job
from bot.store import ChannelSettings, DecisionRow, Store, StoreError
from bot.window import WindowPlanner
from model_runtime.addressing import addresses_assistant, last_put_to_other
from model_runtime.interface import Runtime, Score

log = logging.getLogger(__name__)
T = TypeVar("T")

# Store threads on PostgreSQL (its connection pool holds 5, and 10 more when busy).
POSTGRES_STORE_THREADS = 8
# Sent when a forced turn's reply came out empty (e.g. only protocol markers).
FORCED_FALLBACK = "Sorry, I don't have an answer to that."
# Sent when a forced turn got no reply at all: the model that writes replies failed
# (down, too slow, or answering garbage).
UNAVAILABLE_FALLBACK = "Sorry, I can't answer right now; please ask again in a little while."


@dataclass(frozen=True)
class DecisionEvent:
    """What listeners (the console, tests) hear after each decision."""

    channel: ChannelRef
    trigger: IncomingMessage
    decision: Decision | None
    outcome: str
    reply_text: str | None = None


class ConversationService:
    """The platform-neutral core shared by all adapters.

    ``decider`` scores every message; ``responder`` (by default the decider itself) writes
    the replies. Adapters and commands use ``ops``, the named operations, not the store.
    """

    def __init__(self, store: Store, decider: Runtime, config: Config, responder: Runtime | None = None) -> None:
        self.store = store
        self.decider = decider
        self.responder = responder or decider
        self._responder = Responder(self.responder, config.conversation.stream_interval_s)
        self.config = config
        self.assistant_name = config.assistant.name
        conv = config.conversation
        self.planner = WindowPlanner(
            assistant_name=self.assistant_name,
            token_budget=conv.window_tokens,
            trim_to=conv.trim_to,
            max_message_chars=conv.max_message_chars,
            max_name_chars=conv.max_name_chars,
            count_tokens=decider.count_tokens,
        )
        self.scheduler = ChannelScheduler(self._run_job, self._superseded)
        mem = config.memory
        self.memory = Memory(store.engine, assistant_name=self.assistant_name) if mem.enabled else None
        # Messages handed to the scheduler whose outcome is not recorded yet.
        self._in_flight: set[int] = set()
        # Adapter events the store could not take (a platform that can, asks for them again).
        self.unstored = 0
        self._senders: dict[str, ReplySender] = {}
        self._listeners: list[Callable[[DecisionEvent], None]] = []
        # Store calls run off the event loop: on one thread for SQLite (one writer at a time
        # anyway), on several for PostgreSQL, so that decisions of different channels do not
        # queue behind each other's round trips. A channel's events still reach the store one
        # at a time, in arrival order (``_in_order``): its message ids follow that order.
        threads = 1 if store.url.startswith("sqlite") else POSTGRES_STORE_THREADS
        self._db_pool = concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="chime-store")
        self._intake: dict[str, asyncio.Lock] = {}
        self.ops = Operations(store, self.db, self.planner, self.decider, self.responder, config)
        self._purge_task: asyncio.Task[None] | None = None
        self._bookkeeping: set[asyncio.Task[None]] = set()
        self._closed = False
        self._store_closed = False

    # --- wiring -----------------------------------------------------------------

    def register(self, platform: str, sender: ReplySender) -> None:
        """Make ``sender`` the way replies reach ``platform``."""
        self._senders[platform] = sender

    def add_listener(self, fn: Callable[[DecisionEvent], None]) -> None:
        """Call ``fn`` after every decision (the console prints status lines with it)."""
        self._listeners.append(fn)

    async def db(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Run a store call on the store's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db_pool, lambda: fn(*args, **kwargs))

    async def start(self) -> None:
        """Start background work (the retention purge).

        Messages left undecided by the last run are decided when each adapter can reply
        again: it calls ``resume_pending`` once connected.
        """
        if self.config.memory.knowledge:
            await self.load_knowledge()
        if self.config.store.retention_days and self._purge_task is None:
            self._purge_task = asyncio.create_task(self._purge_loop(), name="retention-purge")

    async def load_knowledge(self) -> int:
        """Read every channel's ``memory.knowledge`` folder into its documents; returns the files read."""
        return await self.db(load_knowledge, self.store, self.config.memory.knowledge)

    def _in_order(self, channel: ChannelRef) -> asyncio.Lock:
        """The lock that hands a channel's events to the store one at a time, first come first served."""
        return self._intake.setdefault(channel.key, asyncio.Lock())

    async def channel_settings(self, channel: ChannelRef) -> ChannelSettings:
        """The channel's settings, creating it with the configured defaults."""
        return await self.ops.channel_settings(channel)

    # --- events from adapters ---------------------------------------------------

    async def handle_message(self, msg: IncomingMessage) -> bool:
        """Store a message and, unless a gate stops it, schedule a decision on it.

        False when it could not be stored (the adapter may offer it again); True when it
        is stored, was stored before, or was deleted before (never stored again).
        """
        async with self._in_order(msg.channel):
            return await self._take_message(msg)

    async def _take_message(self, msg: IncomingMessage) -> bool:
        if self._store_closed:
            self.unstored += 1
            log.warning("shut down: message %s in %s not stored", msg.message_id, msg.channel.key)
            return False
        if not msg.text.strip():
            # Nothing was said (attachments arrive as placeholder text): nothing to store or decide.
            log.debug("empty message %s in %s not stored", msg.message_id, msg.channel.key)
            return True
        try:
            settings = await self.channel_settings(msg.channel)
            if self._expired(msg):
                log.debug("message %s in %s is older than the retention: not stored", msg.message_id, msg.channel.key)
                return True
            forced = await self.is_forced(msg)
            pk = await self.db(self.store.add_message, msg, channel_pk=settings.pk, forced=forced)
        except StoreError as e:
            self.unstored += 1
            log.error("message %s in %s not stored, no decision: %s", msg.message_id, msg.channel.key, e)
            return False
        if pk is None:
            log.debug("message %s in %s stored or forgotten before: ignored", msg.message_id, msg.channel.key)
            return True
        await self._schedule(pk, msg, forced, settings)
        return True

    async def store_history(self, msg: IncomingMessage) -> bool:
        """Store a message from before the bot joined, as context only (no decision is owed on it)."""
        try:
            async with self._in_order(msg.channel):
                settings = await self.channel_settings(msg.channel)
                await self.db(self.store.add_message, msg, channel_pk=settings.pk, outcome=outcomes.HISTORY)
        except StoreError as e:
            self.unstored += 1
            log.error("history message %s in %s not stored: %s", msg.message_id, msg.channel.key, e)
            return False
        return True

    async def _schedule(self, pk: int, msg: IncomingMessage, forced: bool, settings: ChannelSettings) -> None:
        """Submit a decision on a stored message, or record the gate that stops it."""
        if self._closed:
            log.info("shutting down: message %s in %s left for the next start", msg.message_id, msg.channel.key)
            return
        gate = self._gate(msg, settings, forced)
        if gate is not None:
            log.debug("no decision on %s in %s: %s", msg.message_id, msg.channel.key, gate)
            await self._record_outcome(pk, gate)
            return
        self._in_flight.add(pk)
        if not self.scheduler.submit(msg.channel.key, Job(trigger=msg, trigger_pk=pk, forced=forced)):
            self._in_flight.discard(pk)

    def _gate(self, msg: IncomingMessage, settings: ChannelSettings, forced: bool) -> str | None:
        """The outcome that stops a decision on ``msg``, or None."""
        if not settings.enabled:
            return outcomes.DISABLED
        if settings.muted:
            return outcomes.MUTED
        if msg.is_bot and self.config.conversation.ignore_bots:
            return outcomes.BOT
        if not msg.text.strip():
            return outcomes.BLANK
        age_s = (utcnow() - msg.created_at).total_seconds()
        if forced and age_s > self.config.conversation.forced_freshness_s:
            log.warning(
                "question %s in %s is %.0f s old (conversation.forced_freshness_s=%d): not answered",
                msg.message_id,
                msg.channel.key,
                age_s,
                self.config.conversation.forced_freshness_s,
            )
            return outcomes.STALE
        return None

    def _expired(self, msg: IncomingMessage) -> bool:
        """Older than the retention: it would be purged at once (a read-back must not bring it back)."""
        days = self.config.store.retention_days
        return bool(days) and msg.created_at < utcnow() - timedelta(days=days)

    async def _record_outcome(self, pk: int, outcome: str) -> None:
        try:
            await self.db(self.store.set_outcome, pk, outcome)
        except StoreError as e:
            log.error("outcome %s of message %d not recorded (decided again at the next start): %s", outcome, pk, e)
        finally:
            self._in_flight.discard(pk)

    def _superseded(self, job: Job) -> None:
        """The scheduler dropped ``job``: a newer message's decision covers it."""
        task = asyncio.get_running_loop().create_task(self._record_outcome(job.trigger_pk, outcomes.SUPERSEDED))
        self._bookkeeping.add(task)
        task.add_done_callback(self._bookkeeping.discard)

    async def resume_pending(self, platform: str | None = None, servers: ServerFilter | None = None) -> int:
        """Decide the stored messages that never reached an outcome (call once the platform can reply).

        ``servers``: only those of the servers this process serves (other processes, e.g.
        other Discord shards on the same store, decide theirs).
        """
        try:
            pending = await self.db(self.store.pending_messages, platform, servers=servers)
        except StoreError as e:
            log.error("messages left undecided by the last run not read: %s", e)
            return 0
        n = 0
        for p in pending:
            if p.pk in self._in_flight or self._closed:
                continue
            settings = await self.channel_settings(p.message.channel)
            await self._schedule(p.pk, p.message, p.forced, settings)
            n += 1
        if n:
            log.info("deciding %d messages%s left undecided by the last run", n, f" on {platform}" if platform else "")
        return n

    async def known_message(self, platform: str, message_id: str) -> bool:
        """Whether a message was stored or deleted before (a read-back stops at the first known one)."""
        return await self.db(self.store.is_known, platform, message_id)

    async def last_message_ids(self, platform: str, servers: ServerFilter | None = None) -> dict[str, str]:
        """Each channel of ``platform`` (in ``servers``) with the id of its newest stored message (where a read-back starts)."""
        try:
            return await self.db(self.store.last_message_ids, platform, servers=servers)
        except StoreError as e:
            log.error("%s: nothing read back, the store is unavailable: %s", platform, e)
            return {}

    async def is_forced(self, msg: IncomingMessage) -> bool:
        """A reply is owed: the platform says so, the name addresses us ("@name", "hey name, ..."), or it replies to us."""
        if msg.addressed:
            return True
        if addresses_assistant(msg.text, self.assistant_name):
            return True
        if msg.reply_to:
            try:
                target = await self.db(self.store.get_message, msg.channel.platform, msg.reply_to)
            except StoreError:
                return False
            return target is not None and target.from_assistant
        return False

    async def handle_edit(
        self, channel: ChannelRef, message_id: str, text: str, edited_at: datetime | None = None
    ) -> bool:
        """Apply an edit to a stored message (no new decision)."""
        try:
            async with self._in_order(channel):
                return await self.db(self.store.edit_message, channel.platform, message_id, text, edited_at or utcnow())
        except StoreError as e:
            self.unstored += 1
            log.error("edit of %s in %s not applied: %s", message_id, channel.key, e)
            return False

    async def handle_delete(self, channel: ChannelRef, message_id: str) -> bool:
        """Delete a stored message for real (its id is tombstoned); the channel's cached model state goes too."""
        try:
            async with self._in_order(channel):
                deleted = await self.db(self.store.delete_message, channel.platform, message_id)
        except StoreError as e:
            self.unstored += 1
            log.error("deletion of %s in %s not applied: %s", message_id, channel.key, e)
            return False
        if deleted:
            self.ops.drop_model_state(channel.key)
        return deleted

    async def run_command(self, ctx: CommandContext, text: str) -> str:
        """Run an admin command (the words after the platform's command prefix); returns the answer."""
        return await execute(self.ops, ctx, text)

    # --- deciding ---------------------------------------------------------------

    async def _run_job(self, job: Job, superseded: Callable[[], bool]) -> None:
        try:
            await self._decide_on(job, superseded)
        finally:
            self._in_flight.discard(job.trigger_pk)

    async def _decide_on(self, job: Job, superseded: Callable[[], bool]) -> None:
        """Decide on one message, answer it if so decided, and record the decision with its outcome."""
        msg = job.trigger
        ref = msg.channel
        settings = await self.channel_settings(ref)
        if settings.muted or not settings.enabled:
            await self._record_outcome(job.trigger_pk, outcomes.MUTED if settings.muted else outcomes.DISABLED)
            return
        window = await self._window(settings, job.trigger_pk)
        if not window or window[-1].role != "user":
            log.info("no decision in %s: message %s is no longer stored", ref.key, msg.message_id)
            return
        threshold = self.ops.threshold(settings.talkativeness)
        sender = self._senders.get(ref.platform)
        started = time.perf_counter()
        # A question put to another person in the room ("Priya, ...", "nick: ...") is theirs to answer.
        to_other = not job.forced and last_put_to_other(window, self.assistant_name)
        try:
            recall = (settings.pk, job.trigger_pk)
            decision = await self._decide(
                ref, window, job.forced, threshold, superseded, sender, to_other, recall, job.reply_target
            )
        except Exception:
            log.exception("decision failed in %s on message %s; no reply", ref.key, msg.message_id)
            await self._record_outcome(job.trigger_pk, outcomes.ERROR)
            self._notify(DecisionEvent(ref, msg, None, outcomes.ERROR))
            return
        latency_ms = (time.perf_counter() - started) * 1000
        outcome, own = await self._act(job, decision, superseded, sender)
        log.info(
            "decision channel=%s p_speak=%.3f threshold=%.3f forced=%s outcome=%s latency_ms=%.0f",
            ref.key,
            decision.p_speak,
            threshold,
            job.forced,
            outcome,
            latency_ms,
        )
        row = DecisionRow(
            message_pk=job.trigger_pk,
            p_speak=decision.p_speak,
            threshold=threshold,
            spoke=outcome == outcomes.SENT,
            forced=job.forced,
            runtime=self.decider.name,
            model_id=self.decider.model_id[:512],
            latency_ms=latency_ms,
            outcome=outcome,
        )
        try:
            # The reply and the outcome in one transaction: a restart sees both or neither.
            await self.db(self.store.record_decision, settings.pk, row, own, decision.sources if own else ())
        except StoreError as e:
            log.error("decision in %s not recorded: %s", ref.key, e)
        self._notify(DecisionEvent(ref, msg, decision, outcome, own.text if own else None))

    async def _window(self, settings: ChannelSettings, trigger_pk: int) -> list:
        """The turns up to and including the trigger: what was said after it is left out."""
        start = self.planner.start_pk(settings.pk)
        # A question older than the window's start (answered late) gets a window of its own.
        min_pk = start if trigger_pk >= start else 0
        messages = await self.db(
            self.store.recent_messages, settings.pk, settings.history_size, min_pk=min_pk, max_pk=trigger_pk
        )
        return self.planner.build(settings.pk, messages, settings.history_size, trigger_pk)

    async def _decide(
        self,
        ref: ChannelRef,
        window: list,
        forced: bool,
        threshold: float,
        superseded: Callable[[], bool],
        sender: ReplySender | None,
        to_other: bool = False,
        recall: tuple[int, int] | None = None,
        target: IncomingMessage | None = None,
    ) -> Decision:
        """Score the turn, apply force and the threshold, then write the reply under a typing indicator.

        ``recall`` (channel key, message key): a question about the channel's past is
        answered from memory (bot/memory), grounded in the passage it names.
        """
        scored = await self._score(ref, window, forced)
        if scored is None:
            # Scoring failed on a forced turn: it is answered all the same, unless the
            # runtime that just failed is the one that would write the answer.
            if self.responder is self.decider:
                return Decision(0.0, True, None, forced, threshold)
            scored = Score(0.0)
        speak = forced or (scored.p_speak >= threshold and not to_other)
        if not speak or (not forced and superseded()):
            # Newer messages made a reply stale: none is written ("typing" shows only for real replies).
            return Decision(scored.p_speak, speak, None, forced, threshold, scored.timings)
        remember = (lambda: self._remember(ref, window, recall)) if recall is not None else None
        w = await self._responder.write(ref, window, sender, target, lambda: forced or not superseded(), remember)
        timings = scored.timings + w.timings
        return Decision(scored.p_speak, True, w.text, forced, threshold, timings, w.sent, w.send_failed, w.sources)

    async def _score(self, ref: ChannelRef, window: list, forced: bool) -> Score | None:
        """The decider's score; None when it failed on a forced turn (an unforced one raises)."""
        try:
            return await self.decider.ascore(ref.key, window, urgent=forced)
        except Exception as e:
            if not forced:
                raise
            log.error("scoring in %s failed (%s); the forced turn is answered anyway", ref.key, e)
            return None

    def _about_past(self, window: list) -> str | None:
        """Whether the window's last turn asks about the channel's past (bot/memory/intent.py)."""
        if self.memory is None:
            return None
        members = tuple({t.name for t in window if t.role == "user"})
        return past_question(window[-1].content, members)

    async def _remember(self, ref: ChannelRef, window: list, recall: tuple[int, int]) -> Remembered | None:
        """The grounded reply to a question about the channel's past; None when the model alone answers."""
        kind = self._about_past(window)
        if self.memory is None or kind is None:
            return None
        channel_pk, trigger_pk = recall
        question = window[-1].content
        try:
            passages = await self.db(self.memory.search, channel_pk, question, 5, before_pk=trigger_pk)
        except Exception as e:  # the model alone still answers
            log.error("memory search failed in %s: %s", ref.key, e)
            return None
        min_coverage = self.config.memory.min_coverage
        if kind == RECALL and not relevant(passages, min_coverage):
            return None  # "what's the capital of Peru again?" is not about the group
        grounded = await aanswer(self.responder, ref.key, window, passages, min_coverage)
        log.info("memory in %s: %s", ref.key, "found" if grounded.found else "nothing found")
        source = grounded.source.message_pk if grounded.source is not None else None
        # Kept with the reply: deleting the message it repeats deletes the reply too.
        return Remembered(grounded.text, (source,) if source is not None else ())

    async def _act(
        self, job: Job, decision: Decision, superseded: Callable[[], bool], sender: ReplySender | None
    ) -> tuple[str, IncomingMessage | None]:
        """Send the reply if the decision says so; returns (outcome, the reply as it is to be stored)."""
        if not decision.speak:
            return outcomes.SILENT, None
        if decision.sent is not None:
            # Streamed: posted while it was written, and edited to its final text.
            return outcomes.SENT, self._own(job, decision.sent, decision.text or "")
        if decision.send_failed:
            return outcomes.SEND_FAILED, None  # the adapter logged why
        if not job.forced and superseded():
            # Newer messages arrived while deciding: the next decision sees them all.
            return outcomes.SUPERSEDED, None
        if decision.text is None and not job.forced:
            return outcomes.ERROR, None  # the responder failed: an unforced turn stays silent
        text = (decision.text or "").strip()
        if not text and job.forced:
            # Someone addressed the bot: silence would look like a crash, so say so instead.
            text = UNAVAILABLE_FALLBACK if decision.text is None else FORCED_FALLBACK
        if not text:
            return outcomes.EMPTY, None
        if sender is None:
            log.error("no adapter registered for %s: reply dropped", job.trigger.channel.platform)
            return outcomes.SEND_FAILED, None
        target = job.reply_target
        try:
            sent = await sender.send_reply(target.channel, text, target)
        except Exception:
            log.exception("sending the reply in %s failed", job.trigger.channel.key)
            sent = None
        if sent is None:
            return outcomes.SEND_FAILED, None
        return outcomes.SENT, self._own(job, sent, text)

    def _own(self, job: Job, sent: SentMessage, text: str) -> IncomingMessage:
        """The assistant's reply as the store keeps it."""
        return IncomingMessage(
            channel=job.trigger.channel,
            message_id=sent.message_id,
            author_id="@assistant",
            display_name=self.assistant_name,
            text=text,
            created_at=sent.created_at,
            reply_to=job.reply_target.message_id,
            is_bot=True,
        )

    def _notify(self, event: DecisionEvent) -> None:
        for fn in self._listeners:
            try:
                fn(event)
            except Exception:
                log.exception("decision listener failed")

    # --- upkeep -----------------------------------------------------------------

    async def purge_expired(self) -> tuple[int, int]:
        """Delete messages and decisions older than ``retention_days``; returns the counts."""
        days = self.config.store.retention_days
        if not days:
            return 0, 0
        counts = await self.db(self.store.purge_before, utcnow() - timedelta(days=days))
        if counts[0]:
            self.planner.forget_texts()  # remembered by text: a purged message's count must not linger
        if counts != (0, 0):
            log.info("retention: purged %d messages and %d decisions older than %d days", *counts, days)
        return counts

    async def _purge_loop(self) -> None:
        while True:
            try:
                await self.purge_expired()
            except StoreError as e:
                log.error("retention purge failed: %s", e)
            await asyncio.sleep(3600)

    async def drain(self) -> None:
        """Wait for every scheduled decision to finish (the console does this at end of input)."""
        await self.scheduler.drain()

    async def finish(self, timeout_s: float = 30.0) -> None:
        """Decide nothing new; running decisions finish (their replies still go out).

        Messages that arrive from now on are still stored, and those waiting for a decision
        stay without an outcome: the next start decides them (``resume_pending``).
        """
        self._closed = True
        await self.scheduler.close(timeout_s)
        if self._bookkeeping:
            await asyncio.gather(*list(self._bookkeeping), return_exceptions=True)

    async def close(self, timeout_s: float = 30.0) -> None:
        """Stop deciding, finish or drop pending replies, and close the store."""
        if self._store_closed:
            return
        self._store_closed = True
        await self.finish(timeout_s)
        if self._purge_task is not None:
            self._purge_task.cancel()
        self._db_pool.shutdown(wait=True)
        self.store.close()
