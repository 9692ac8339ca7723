"""Asking the responder for a reply, and saying once per outage when it does not answer.

A responder may be another machine (a chat endpoint) that is down, slow past its
timeout, or answering garbage. The service must go on deciding: a failed reply is
``None`` here (a forced turn then gets a short apology, an unforced one stays silent),
and the log says so when the outage starts and when it ends, not at every message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from model_runtime.interface import Runtime, Timings
from model_runtime.protocol import Turn

log = logging.getLogger(__name__)


class Responder:
    """The responder runtime behind a guard that turns failures into ``None`` and logs outages once."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.failures = 0  # failed replies in the current outage
        self._down_since: float | None = None

    @property
    def down(self) -> bool:
        """Whether the last reply failed."""
        return self._down_since is not None

    async def reply(self, channel_key: str, window: Sequence[Turn]) -> tuple[str | None, Timings]:
        """The reply text and its timings; None for the text when the responder failed."""
        try:
            reply = await self.runtime.areply(channel_key, window)
        except Exception as e:
            self._failed(channel_key, e)
            return None, Timings()
        self._answered()
        return reply.text, reply.timings

    def _failed(self, channel_key: str, error: Exception) -> None:
        self.failures += 1
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.error(
                "responder %s failed (in %s): %s; until it answers again, forced turns get a short apology "
                "and others stay silent (logged once per outage)",
                self.runtime.model_id,
                channel_key,
                error,
            )
        else:
            log.debug("responder %s still failing (in %s): %s", self.runtime.model_id, channel_key, error)

    def _answered(self) -> None:
        if self._down_since is None:
            return
        log.warning(
            "responder %s answers again after %d failed replies over %.0f s",
            self.runtime.model_id,
            self.failures,
            time.monotonic() - self._down_since,
        )
        self._down_since = None
        self.failures = 0
