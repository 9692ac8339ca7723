"""The conversation service: every platform's messages flow through here.

normalise -> store -> gates -> forced? -> per-channel scheduler -> window ->
runtime.decide -> reply -> record (DESIGN.md, "Data flow").
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TypeVar

from bot.config import Config
from bot.domain import ChannelRef, CommandContext, IncomingMessage, ReplySender, utcnow
from bot.scheduler import ChannelScheduler, Job
from bot.store import ChannelSettings, DecisionRow, Store, StoreError
from bot.window import WindowPlanner
from model_runtime.interface import Decision, Runtime, Timings
from model_runtime.protocol import threshold_for

log = logging.getLogger(__name__)
T = TypeVar("T")

# Sent when a forced decision generated nothing usable (e.g. only protocol markers).
FORCED_FALLBACK = "Sorry, I don't have an answer to that."
# A threshold above any probability: the runtime scores the turn and writes nothing.
_SCORE_ONLY = 1.01
_CODE_RE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)


@dataclass(frozen=True)
class DecisionEvent:
    """What listeners (the console, tests) hear after each decision."""

    channel: ChannelRef
    trigger: IncomingMessage
    decision: Decision | None
    outcome: str
    reply_text: str | None = None


class ConversationService:
    """The platform-neutral core shared by all adapters."""

    def __init__(self, store: Store, runtime: Runtime, config: Config) -> None:
        self.store = store
        self.runtime = runtime
        self.config = config
        self.assistant_name = config.assistant.name
        conv = config.conversation
        self.planner = WindowPlanner(
            assistant_name=self.assistant_name,
            token_budget=conv.window_tokens,
            trim_to=conv.trim_to,
            max_message_chars=conv.max_message_chars,
            max_name_chars=conv.max_name_chars,
            count_tokens=runtime.count_tokens,
        )
        self.scheduler = ChannelScheduler(self._run_job)
        self._senders: dict[str, ReplySender] = {}
        self._listeners: list[Callable[[DecisionEvent], None]] = []
        # One thread for the store keeps writes in arrival order and off the event loop.
        self._db_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="chime-store")
        self._purge_task: asyncio.Task[None] | None = None
        self._closed = False
        self._store_closed = False
        name = re.escape(self.assistant_name)
        self._at_name = re.compile(rf"(?<![\w@])@{name}\b", re.IGNORECASE)

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
        """Start background work (the retention purge)."""
        if self.config.store.retention_days and self._purge_task is None:
            self._purge_task = asyncio.create_task(self._purge_loop(), name="retention-purge")

    async def channel_settings(self, channel: ChannelRef) -> ChannelSettings:
        """The channel's settings, creating it with the configured defaults."""
        conv = self.config.conversation
        return await self.db(
            self.store.channel, channel, talkativeness=conv.talkativeness, history_size=conv.history_messages
        )

    # --- events from adapters ---------------------------------------------------

    async def handle_message(self, msg: IncomingMessage) -> None:
        """Store a message and, unless a gate stops it, schedule a decision on it."""
        if self._closed:
            log.info("shutting down: message %s in %s not handled", msg.message_id, msg.channel.key)
            return
        if not msg.text.strip():
            # Nothing was said (attachments arrive as placeholder text): nothing to store or decide.
            log.debug("empty message %s in %s not stored", msg.message_id, msg.channel.key)
            return
        try:
            settings = await self.channel_settings(msg.channel)
            pk = await self.db(self.store.add_message, msg, channel_pk=settings.pk)
        except StoreError as e:
            log.error("message %s in %s not stored, no decision: %s", msg.message_id, msg.channel.key, e)
            return
        if pk is None:
            log.debug("re-delivered message %s in %s ignored", msg.message_id, msg.channel.key)
            return
        gate = self._gate(msg, settings)
        if gate:
            log.debug("no decision on %s in %s: %s", msg.message_id, msg.channel.key, gate)
            return
        forced = await self.is_forced(msg)
        self.scheduler.submit(msg.channel.key, Job(trigger=msg, trigger_pk=pk, forced=forced))

    def _gate(self, msg: IncomingMessage, settings: ChannelSettings) -> str | None:
        if self._closed:
            return "shutting down"
        if not settings.enabled:
            return "channel disabled"
        if settings.muted:
            return "channel muted"
        if msg.is_bot and self.config.conversation.ignore_bots:
            return "author is a bot"
        return None

    async def is_forced(self, msg: IncomingMessage) -> bool:
        """A reply is owed: the platform says so, "@name" is written outside code, or it replies to us."""
        if msg.addressed:
            return True
        if self._at_name.search(_CODE_RE.sub(" ", msg.text)):
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
            return await self.db(self.store.edit_message, channel.platform, message_id, text, edited_at or utcnow())
        except StoreError as e:
            log.error("edit of %s in %s not applied: %s", message_id, channel.key, e)
            return False

    async def handle_delete(self, channel: ChannelRef, message_id: str) -> bool:
        """Delete a stored message for real; the channel's cached model state goes too."""
        try:
            deleted = await self.db(self.store.delete_message, channel.platform, message_id)
        except StoreError as e:
            log.error("deletion of %s in %s not applied: %s", message_id, channel.key, e)
            return False
        if deleted:
            self.runtime.forget(channel.key)
        return deleted

    async def run_command(self, ctx: CommandContext, text: str) -> str:
        """Run an admin command (the words after the platform's command prefix); returns the answer."""
        from bot.commands import execute

        return await execute(self, ctx, text)

    # --- deciding ---------------------------------------------------------------

    async def _run_job(self, job: Job, superseded: Callable[[], bool]) -> None:
        msg = job.trigger
        ref = msg.channel
        settings = await self.channel_settings(ref)
        if settings.muted or not settings.enabled:
            return
        messages = await self.db(
            self.store.recent_messages, settings.pk, settings.history_size, min_pk=self.planner.start_pk(settings.pk)
        )
        window = self.planner.build(settings.pk, messages, settings.history_size, job.trigger_pk)
        if not window or window[-1].role != "user":
            log.info("no decision in %s: message %s is no longer stored", ref.key, msg.message_id)
            return
        threshold = threshold_for(settings.talkativeness, self.runtime.base_threshold)
        sender = self._senders.get(ref.platform)
        started = time.perf_counter()
        try:
            decision = await self._decide(ref, window, job.forced, threshold, superseded, sender)
        except Exception:
            log.exception("decision failed in %s on message %s; no reply", ref.key, msg.message_id)
            self._notify(DecisionEvent(ref, msg, None, "error"))
            return
        latency_ms = (time.perf_counter() - started) * 1000
        outcome, reply = await self._act(job, decision, superseded, sender)
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
            spoke=outcome == "sent",
            forced=job.forced,
            runtime=self.runtime.name,
            model_id=self.runtime.model_id[:512],
            latency_ms=latency_ms,
            outcome=outcome,
        )
        try:
            await self.db(self.store.record_decision, settings.pk, row)
        except StoreError as e:
            log.error("decision in %s not recorded: %s", ref.key, e)
        self._notify(DecisionEvent(ref, msg, decision, outcome, reply))

    async def _decide(
        self,
        ref: ChannelRef,
        window: list,
        forced: bool,
        threshold: float,
        superseded: Callable[[], bool],
        sender: ReplySender | None,
    ) -> Decision:
        """Score the turn, then write the reply under a typing indicator if it is to be spoken."""
        if not forced:
            # Scoring first (a threshold nothing reaches) lets "typing" show only while a
            # reply is really written, and skips writing one that newer messages made stale.
            scored = await self.runtime.adecide(ref.key, window, False, _SCORE_ONLY)
            if scored.p_speak < threshold or superseded():
                return replace(scored, speak=scored.p_speak >= threshold, threshold=threshold)
        typing = sender.typing(ref) if sender is not None else contextlib.nullcontext()
        async with typing:
            reply = await self.runtime.adecide(ref.key, window, True, threshold)
        if forced:
            return reply
        # The model's own choice to speak: its p_speak, and the time of both calls.
        timings = Timings(**{k: v + getattr(reply.timings, k) for k, v in vars(scored.timings).items()})
        return replace(reply, p_speak=scored.p_speak, speak=True, forced=False, threshold=threshold, timings=timings)

    async def _act(
        self, job: Job, decision: Decision, superseded: Callable[[], bool], sender: ReplySender | None
    ) -> tuple[str, str | None]:
        """Send the reply if the decision says so; returns (outcome, text sent)."""
        if not decision.speak:
            return "silent", None
        if not job.forced and superseded():
            # Newer messages arrived while deciding: the next decision sees them all.
            return "superseded", None
        text = (decision.text or "").strip()
        if not text and job.forced:
            # Someone addressed the bot: silence would look like a crash, so say so instead.
            text = FORCED_FALLBACK
        if not text:
            return "empty", None
        if sender is None:
            log.error("no adapter registered for %s: reply dropped", job.trigger.channel.platform)
            return "send_failed", None
        target = job.reply_target
        try:
            sent = await sender.send_reply(target.channel, text, target)
        except Exception:
            log.exception("sending the reply in %s failed", job.trigger.channel.key)
            sent = None
        if sent is None:
            return "send_failed", None
        own = IncomingMessage(
            channel=job.trigger.channel,
            message_id=sent.message_id,
            author_id="@assistant",
            display_name=self.assistant_name,
            text=text,
            created_at=sent.created_at,
            reply_to=target.message_id,
            is_bot=True,
        )
        settings = await self.channel_settings(job.trigger.channel)
        try:
            await self.db(self.store.add_message, own, channel_pk=settings.pk, from_assistant=True)
        except StoreError as e:
            log.error("sent reply in %s not stored: %s", job.trigger.channel.key, e)
        return "sent", text

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
        """Take no new messages; running decisions finish (their replies still go out), waiting ones are dropped."""
        self._closed = True
        await self.scheduler.close(timeout_s)

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
