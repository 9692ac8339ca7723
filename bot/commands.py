"""Platform-neutral admin commands; each adapter supplies the caller's admin status."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from bot import outcomes
from bot.domain import CommandContext
from bot.memory.documents import decode, read_document
from bot.operations import Operations
from bot.store import StoreError
from bot.store.feedback import LoggedDecision

log = logging.getLogger(__name__)

Handler = Callable[[Operations, CommandContext, list[str]], Awaitable[str]]


@dataclass(frozen=True)
class Command:
    """One admin command."""

    usage: str
    help: str
    admin: bool
    handler: Handler


async def _status(ops: Operations, ctx: CommandContext, args: list[str]) -> str:
    st = await ops.status(ctx.channel)
    s = st.settings
    state = "muted" if s.muted else ("disabled" if not s.enabled else "listening")
    last = f", last p_speak {st.last_p_speak:.2f} ({st.last_outcome})" if st.last_p_speak is not None else ""
    return (
        f"{state} in {ctx.channel.key}; talkativeness {s.talkativeness} (threshold {st.threshold:.2f}); "
        f"history {s.history_size} messages; runtime {st.runtime}; "
        f"stored {st.messages} messages, {st.decisions} decisions{last}"
    )


async def _mute(ops: Operations, ctx: CommandContext, args: list[str]) -> str:
    await ops.set_muted(ctx.channel, True)
    return f"Muted: I won't speak in this channel until someone runs {ops.assistant_name} unmute."


async def _unmute(ops: Operations, ctx: CommandContext, args: list[str]) -> str:
    await ops.set_muted(ctx.channel, False)
    return "Unmuted: I'm listening again."


def _int_arg(args: list[str], lo: int, hi: int, what: str) -> int:
    if len(args) != 1 or not args[0].lstrip("-").isdigit():
        raise ValueError(f"{what} takes one whole number from {lo} to {hi}")
    n = int(args[0])
    if not lo <= n <= hi:
        raise ValueError(f"{what} must be from {lo} to {hi}, not {n}")
    return n


async def _talkativeness(ops: Operations, ctx: CommandContext, args: list[str]) -> str:
    n = _int_arg(args, 0, 100, "talkativeness")
    threshold = await ops.set_talkativeness(ctx.channel, n)
    note = " (I'll only speak when addressed)" if threshold > 1 else ""
    return f"Talkativeness set to {n}: I speak when p_speak >= {min(threshold, 1.0):.2f}{note}."


async def _history(ops: Operations, ctx: CommandContext, args: list[str]) -> str:
    n = _int_arg(args, 1, 1000, "history")
    await ops.set_history(ctx.channel, n)
    return f"I'll read the last {n} messages of this channel when deciding."


async def _forget(ops: Operations, ctx: CommandContext, args: list[str]) -> str:
    n = await ops.forget_channel(ctx.channel)
    return f"Forgot this channel's history: {n} messages deleted."


async def _forget_me(ops: Operations, ctx: CommandContext, args: list[str]) -> str:
    n = await ops.forget_author(ctx.channel, ctx.author_id)
    return f"Deleted everything I stored from you on {ctx.channel.platform}: {n} messages."


async def _why(ops: Operations, ctx: CommandContext, args: list[str]) -> str:
    return format_decisions(ctx.channel.key, await ops.recent_decisions(ctx.channel, WHY_DECISIONS))


async def _learn(ops: Operations, ctx: CommandContext, args: list[str]) -> str:
    if ctx.attachment is not None:
        name, text, source = (
            ctx.attachment.name,
            decode(ctx.attachment.data, ctx.attachment.name),
            ctx.attachment.source,
        )
    elif args and ctx.local_files:
        path = Path(" ".join(args)).expanduser()
        name, text, source = path.name, read_document(path), str(path.resolve())
    else:
        raise ValueError(
            "learn needs a Markdown or text file: attach it (Discord), reply to a file or a message (Matrix), "
            "or give its PATH (console)"
        )
    n = await ops.learn(ctx.channel, name, text, source=source, added_by=ctx.author_name)
    return f"Learnt {name} ({n} passages): questions in this channel can now be answered from it."


async def _unlearn(ops: Operations, ctx: CommandContext, args: list[str]) -> str:
    if not args:
        raise ValueError("unlearn takes a document's name (see: documents)")
    name = " ".join(args)
    if not await ops.unlearn(ctx.channel, name):
        return f"No document named {name!r} in this channel."
    return f"Forgot the document {name}."


async def _documents(ops: Operations, ctx: CommandContext, args: list[str]) -> str:
    docs = await ops.documents(ctx.channel)
    if not docs:
        return "This channel has no documents (an admin adds one with: learn)."
    return "\n".join(f"{d.name}: {d.chunks} passages, added by {d.added_by} on {d.added_at:%d %b %Y}" for d in docs)


async def _help(ops: Operations, ctx: CommandContext, args: list[str]) -> str:
    return help_text(ops.assistant_name)


COMMANDS: dict[str, Command] = {
    "status": Command("status", "show this channel's settings and what is stored", False, _status),
    "mute": Command("mute", "stop speaking in this channel", True, _mute),
    "unmute": Command("unmute", "speak again in this channel", True, _unmute),
    "talkativeness": Command(
        "talkativeness N", "0 = only when addressed, 50 = default, 100 = always", True, _talkativeness
    ),
    "history": Command("history N", "how many recent messages to read when deciding", True, _history),
    "why": Command("why", "the last 10 decisions: p_speak against the threshold, and any 👎", True, _why),
    "forget": Command("forget", "delete this channel's stored history", True, _forget),
    "forget-me": Command("forget-me", "delete every message stored from you", False, _forget_me),
    "learn": Command("learn [PATH]", "learn a Markdown or text document for this channel", True, _learn),
    "unlearn": Command("unlearn NAME", "forget one of this channel's documents", True, _unlearn),
    "documents": Command("documents", "list this channel's documents", False, _documents),
    "help": Command("help", "this list", False, _help),
}


def help_text(assistant_name: str) -> str:
    """The short list of commands."""
    lines = [f"{assistant_name} commands:"]
    for c in COMMANDS.values():
        lines.append(f"  {c.usage:<16} {c.help}{' (admin)' if c.admin else ''}")
    return "\n".join(lines)


async def execute(ops: Operations, ctx: CommandContext, text: str) -> str:
    """Parse and run one command line; unknown commands get the help, non-admins a refusal."""
    words = text.split()
    if not words:
        return help_text(ops.assistant_name)
    name, args = words[0].lower(), words[1:]
    cmd = COMMANDS.get(name)
    if cmd is None:
        return f"Unknown command {name!r}.\n{help_text(ops.assistant_name)}"
    if cmd.admin and not ctx.is_admin:
        log.warning("refused admin command %r from %s in %s", name, ctx.author_id, ctx.channel.key)
        return f"Sorry, only channel admins can use {name}."
    try:
        answer = await cmd.handler(ops, ctx, args)
    except ValueError as e:
        return f"{e}. Usage: {cmd.usage}"
    except StoreError as e:
        log.error("command %s in %s failed: %s", name, ctx.channel.key, e)
        return "Sorry, the database is unavailable right now; nothing was changed."
    log.info("command %s by %s in %s", name, ctx.author_id, ctx.channel.key)
    return answer


# How many decisions ``why`` lists.
WHY_DECISIONS = 10
_SNIPPET_CHARS = 48
# Outcomes in the words of ``why`` (the rest as they are: silent, superseded, empty, error).
_VERDICTS = {outcomes.SENT: "spoke", outcomes.SEND_FAILED: "spoke, not delivered"}


def format_decisions(channel_key: str, rows: list[LoggedDecision]) -> str:
    """``why``'s answer: one line per decision, newest first, so an admin sees how close each came."""
    if not rows:
        return f"No decisions yet in {channel_key}."
    lines = [f"Last {len(rows)} decisions in {channel_key}, newest first (UTC; p_speak vs threshold):"]
    for d in rows:
        score = f"p {d.p_speak:.2f} {'≥' if d.p_speak >= d.threshold else '<'} {min(d.threshold, 1.0):.2f}"
        label = f" 👎 false interruption x{d.labels}" if d.labels else ""
        lines.append(f"{d.created_at:%m-%d %H:%M} {_verdict(d)} {score}{label} | {_snippet(d)}")
    return "\n".join(lines)


def _verdict(d: LoggedDecision) -> str:
    """What the bot did, in a word or two: spoke, silent, forced, superseded, ..."""
    if d.forced:
        return "forced" if d.outcome == outcomes.SENT else f"forced, {d.outcome}"
    return _VERDICTS.get(d.outcome, d.outcome)


def _snippet(d: LoggedDecision) -> str:
    """Who said what was decided on, on one short line."""
    text = " ".join(d.text.split())
    if not text:
        return "(deleted)"
    return f"{d.author}: {text[:_SNIPPET_CHARS]}{'…' if len(text) > _SNIPPET_CHARS else ''}"
