"""The console adapter: a group chat in the terminal, one speaker at a time.

Type ``Alice: hello`` to speak as Alice, a plain line to speak as the current speaker,
``/as Bob`` to switch speaker, ``/assistant ...`` for admin commands, ``/quit`` (or end
of input, Ctrl-D, Ctrl-C) to leave.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import logging
import re
import sys
import threading
from typing import TextIO

from bot.domain import ChannelRef, CommandContext, IncomingMessage, SentMessage, utcnow
from bot.service import ConversationService, DecisionEvent

log = logging.getLogger(__name__)

PLATFORM = "console"
_SPEAKER_RE = re.compile(r"^\s*([^:\n]{1,40}?)\s*:\s+(.*)$")


class ConsoleAdapter:
    """Reads chat lines from a stream and prints replies and decisions."""

    def __init__(
        self,
        service: ConversationService,
        *,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        speaker: str = "you",
        channel_id: str = "main",
    ) -> None:
        self.service = service
        self.stdin = stdin or sys.stdin
        if isinstance(self.stdin, io.TextIOWrapper):
            # Bytes that are not UTF-8 (a pasted Latin-1 line) become U+FFFD instead of a
            # UnicodeDecodeError that would end the chat.
            self.stdin.reconfigure(errors="replace")
        self.stdout = stdout or sys.stdout
        self.speaker = speaker
        self.channel = ChannelRef(PLATFORM, channel_id, "console")
        self._ids = itertools.count(1)
        self._run_id = utcnow().strftime("%Y%m%dT%H%M%S%f")
        self._interactive = self.stdin.isatty()
        # Set when reading the input failed (not at its end): run() then raises.
        self.read_error: OSError | None = None
        service.register(PLATFORM, self)
        service.add_listener(self._on_decision)

    # --- ReplySender -------------------------------------------------------------

    async def send_reply(self, channel: ChannelRef, text: str, reply_to: IncomingMessage) -> SentMessage:
        """Print the reply as ``assistant: text``."""
        self._print(f"{self.service.assistant_name}: {text}")
        return SentMessage(message_id=self._next_id("a"))

    def typing(self, channel: ChannelRef) -> contextlib.AbstractAsyncContextManager[None]:
        """The console shows nothing while the reply is written."""
        return contextlib.nullcontext()

    # --- input --------------------------------------------------------------------

    def _on_decision(self, event: DecisionEvent) -> None:
        if event.channel != self.channel:
            return
        d = event.decision
        if d is None:
            self._print("[error: no decision, see the log]")
        elif event.outcome == "sent":
            self._print(f"[{'forced' if d.forced else 'spoke'} p={d.p_speak:.2f}]")
        elif event.outcome == "silent":
            self._print(f"[silent p={d.p_speak:.2f}]")
        else:
            self._print(f"[{event.outcome} p={d.p_speak:.2f}]")

    def _print(self, line: str) -> None:
        print(line, file=self.stdout, flush=True)

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}-{self._run_id}-{next(self._ids)}"

    async def run(self) -> None:
        """Read lines until end of input or /quit, then wait for pending decisions."""
        if self._interactive:
            self._print(
                f"chime console: type 'Name: message' (or a plain line as {self.speaker}), "
                f"'/as Name' to switch speaker, '@{self.service.assistant_name}' to ask, "
                f"'/{self.service.assistant_name} help' for commands, Ctrl-D to quit."
            )
        # Questions left unanswered by a crash or a stop are answered first.
        await self.service.resume_pending(PLATFORM)
        await self.service.drain()
        lines = self._start_reader()
        number = 0
        while (line := await lines.get()) is not None:
            number += 1
            if "\ufffd" in line:
                log.warning("console: input line %d is not valid UTF-8; its undecodable bytes read as U+FFFD", number)
            if not await self.handle_line(line.rstrip("\n")):
                break
            # Let this line's decision go first so that replies keep the typed order.
            await self.service.drain()
        await self.service.drain()
        if self.read_error is not None:
            raise OSError(f"console: reading the input failed after line {number}: {self.read_error}")

    def _start_reader(self) -> asyncio.Queue[str | None]:
        # A daemon thread, not asyncio.to_thread: a blocked readline must not keep the
        # process alive after SIGTERM or Ctrl-C.
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        def put(item: str | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop may already be closed
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def read() -> None:
            try:
                for line in iter(self.stdin.readline, ""):
                    put(line)
            except OSError as e:
                self.read_error = e
            except ValueError:
                pass  # the stream was closed under us: the end of input
            put(None)

        threading.Thread(target=read, name="console-stdin", daemon=True).start()
        return queue

    async def close(self) -> None:
        """Nothing to release: the reader thread is a daemon."""

    async def handle_line(self, line: str) -> bool:
        """Handle one typed line; False means quit."""
        stripped = line.strip()
        if not stripped:
            return True  # a blank line says nothing: not a message
        if stripped in ("/quit", "/exit"):
            return False
        if stripped == "/as" or stripped.startswith("/as "):
            name = stripped[3:].strip()
            if name:
                self.speaker = name
                self._print(f"(now speaking as {name})")
            else:
                self._print("usage: /as Name")
            return True
        prefix = "/" + self.service.assistant_name
        if stripped == prefix or stripped.startswith(prefix + " "):
            # The same author id as the speaker's messages (below), or forget-me finds nothing.
            ctx = CommandContext(
                self.channel,
                author_id=self.speaker.casefold(),
                author_name=self.speaker,
                is_admin=True,
                local_files=True,
            )
            self._print(await self.service.run_command(ctx, stripped[len(prefix) :]))
            return True
        if stripped.startswith("/"):
            self._print(f"unknown console command; try /as Name, {prefix} help, or /quit")
            return True
        m = _SPEAKER_RE.match(line)
        if m and not m.group(1).lower().startswith("http"):
            if not m.group(2).strip():
                return True  # "Name: " with nothing after it
            self.speaker, text = m.group(1).strip(), m.group(2)
        else:
            text = line
        await self.service.handle_message(
            IncomingMessage(
                channel=self.channel,
                message_id=self._next_id("m"),
                author_id=self.speaker.casefold(),
                display_name=self.speaker,
                text=text,
            )
        )
        return True
