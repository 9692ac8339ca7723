"""People (real nio clients) and a bot harness (real adapter, scripted runtime) for the Matrix tests."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nio import AsyncClient, AsyncClientConfig, RoomCreateResponse, RoomSendResponse, SyncResponse, TypingNoticeEvent

from adapters.matrix import create_adapter
from adapters.matrix.adapter import MatrixAdapter
from bot.config import MatrixConfig, parse_config
from bot.service import ConversationService, DecisionEvent
from bot.store import Store, sqlite_url
from bot.store.migrate import upgrade
from tests.fakes import ScriptedRuntime

Source = dict[str, Any]
_bot_ids = itertools.count(1)


async def wait_until(pred: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    """Poll ``pred`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Person:
    """A human in the test, on a real nio client, recording every event and typing notice it syncs."""

    def __init__(self, homeserver: str, user_id: str, token: str) -> None:
        self.user_id = user_id
        self.client = AsyncClient(homeserver, user_id, config=AsyncClientConfig(max_timeouts=1, backoff_factor=0.1))
        self.client.access_token = token
        self.client.user_id = user_id
        self.events: dict[str, list[Source]] = {}
        self.typing: list[tuple[str, tuple[str, ...]]] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Catch up once, then keep syncing in the background."""
        resp = await self.client.sync(timeout=0)
        assert isinstance(resp, SyncResponse), resp
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            try:
                resp = await self.client.sync(timeout=500)
            except Exception:
                # The homeserver may be restarting under us: try again shortly.
                await asyncio.sleep(0.3)
                continue
            if not isinstance(resp, SyncResponse):
                await asyncio.sleep(0.3)
                continue
            for room_id, info in resp.rooms.join.items():
                self.events.setdefault(room_id, []).extend(e.source for e in info.timeline.events)
                for e in info.ephemeral:
                    if isinstance(e, TypingNoticeEvent):
                        self.typing.append((room_id, tuple(e.users)))

    async def close(self) -> None:
        """Stop syncing and close the connection."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.client.close()

    async def create_room(self, invite: list[str] = (), initial_state: list[Source] = ()) -> str:
        """A private room with the given invitees; returns its id."""
        resp = await self.client.room_create(invite=list(invite), initial_state=list(initial_state))
        assert isinstance(resp, RoomCreateResponse), resp
        return resp.room_id

    async def join(self, room_id: str) -> None:
        """Join a room we were invited to."""
        resp = await self.client.join(room_id)
        assert getattr(resp, "room_id", None) == room_id, resp

    async def send(self, room_id: str, body: str, **extra: Any) -> str:
        """Send an m.text message (``extra`` adds content keys); returns its event id."""
        return await self.send_event(room_id, "m.room.message", {"msgtype": "m.text", "body": body, **extra})

    async def send_event(self, room_id: str, event_type: str, content: Source) -> str:
        """Send any room event; returns its event id."""
        resp = await self.client.room_send(room_id, event_type, content)
        assert isinstance(resp, RoomSendResponse), resp
        return resp.event_id

    def from_user(self, room_id: str, user_id: str) -> list[Source]:
        """Every message event ``user_id`` sent in the room that this person has seen."""
        return [
            e for e in self.events.get(room_id, []) if e.get("sender") == user_id and e.get("type") == "m.room.message"
        ]

    async def wait_for(self, room_id: str, pred: Callable[[Source], bool], timeout: float = 30) -> Source:
        """The first event in the room that matches ``pred``."""

        def find() -> Source | None:
            return next((e for e in self.events.get(room_id, []) if pred(e)), None)

        return await wait_until(find, timeout, f"an event in {room_id} seen by {self.user_id}")


def replying_to(event_id: str) -> Callable[[Source], bool]:
    """Matches an event whose m.in_reply_to points at ``event_id``."""

    def pred(e: Source) -> bool:
        rel = e.get("content", {}).get("m.relates_to")
        return isinstance(rel, dict) and rel.get("m.in_reply_to", {}).get("event_id") == event_id

    return pred


class Bot:
    """The real Matrix adapter on a real service and SQLite store, with a scripted runtime."""

    def __init__(self, homeserver: str, db_path: Path, user_id: str, token_env: str, **cfg: Any) -> None:
        self.url = sqlite_url(db_path)
        self.user_id = user_id
        settings = {"access_token_env": token_env, "sync_timeout_ms": 1000, "reconnect_max_delay_s": 2, **cfg}
        self.cfg = MatrixConfig(enabled=True, homeserver=homeserver, user_id=user_id, **settings)
        self.runtime = ScriptedRuntime(0.0)
        self.decisions: list[DecisionEvent] = []
        self.service: ConversationService | None = None
        self.adapter: MatrixAdapter | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the store and run the adapter in the background."""
        await asyncio.to_thread(upgrade, self.url)
        self.service = ConversationService(Store(self.url), self.runtime, parse_config({}))
        self.service.add_listener(self.decisions.append)
        self.adapter = create_adapter(self.service, self.cfg)
        self._task = asyncio.create_task(self.adapter.run())

    async def stop(self) -> None:
        """Close the adapter and the service, as chime's app does at shutdown."""
        if self.adapter is None or self.service is None:
            return
        await asyncio.wait_for(self.adapter.close(), 20)
        await asyncio.wait_for(self._task, 20)
        await self.service.close()
        self.adapter = None

    def decided_on(self, event_id: str) -> list[DecisionEvent]:
        """The decisions taken with ``event_id`` as trigger."""
        return [d for d in self.decisions if d.trigger.message_id == event_id]

    async def stored(self, event_id: str) -> Any:
        """The stored message with this event id, or None."""
        assert self.service is not None
        return await self.service.db(self.service.store.get_message, "matrix", event_id)


def new_bot_localpart() -> str:
    """A fresh bot account name per test, so no test sees another's rooms or sync token."""
    return f"chimebot{next(_bot_ids)}"
