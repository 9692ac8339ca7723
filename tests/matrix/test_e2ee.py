"""With E2EE on (matrix-nio[e2e] installed), the bot reads and answers in an encrypted room."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from nio import AsyncClient, AsyncClientConfig, LoginResponse, RoomMessageText, SyncResponse
from nio.crypto import ENCRYPTION_ENABLED

from tests.matrix.conftest import PASSWORD
from tests.matrix.helpers import Person, wait_until
from tests.matrix.synapse_server import SynapseServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(120),
    pytest.mark.skipif(not ENCRYPTION_ENABLED, reason="needs matrix-nio[e2e]"),
]


class EncryptedPerson(Person):
    """A person whose client encrypts, shares keys between syncs, and decrypts what it syncs."""

    def __init__(self, homeserver: str, user_id: str, store: Path) -> None:
        super().__init__(homeserver, user_id, "")
        store.mkdir(parents=True, exist_ok=True)
        config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False, max_timeouts=1)
        self.client = AsyncClient(homeserver, user_id, store_path=str(store), config=config)
        self.texts: list[tuple[str, str]] = []

    async def start(self) -> None:
        resp = await self.client.login(PASSWORD, device_name="test")
        assert isinstance(resp, LoginResponse), resp
        await super().start()

    async def _loop(self) -> None:
        while True:
            try:
                resp = await self.client.sync(timeout=500)
                if isinstance(resp, SyncResponse):
                    for info in resp.rooms.join.values():
                        for e in info.timeline.events:
                            self.events.setdefault(e.source.get("room_id", ""), []).append(e.source)
                            if isinstance(e, RoomMessageText):
                                self.texts.append((e.sender, e.body))
                await self.client.send_to_device_messages()
                if self.client.should_upload_keys:
                    await self.client.keys_upload()
                if self.client.should_query_keys:
                    await self.client.keys_query()
                if self.client.should_claim_keys:
                    await self.client.keys_claim(self.client.get_users_for_key_claiming())
            except Exception:
                await asyncio.sleep(0.3)

    async def send_encrypted(self, room_id: str, body: str) -> None:
        await self.client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": body}, ignore_unverified_devices=True
        )


async def test_encrypted_room_with_e2ee(synapse: SynapseServer, tmp_path: Path, make_bot) -> None:
    user_id, _ = synapse.register("carol", PASSWORD)
    carol = EncryptedPerson(synapse.url, user_id, tmp_path / "carol-keys")
    await carol.start()
    try:
        bot = make_bot(e2ee=True, store_dir=tmp_path / "bot-keys")
        await bot.start()
        encryption = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
        room = await carol.create_room(invite=[bot.user_id], initial_state=[encryption])
        await wait_until(
            lambda: bot.user_id in carol.client.rooms.get(room).users if room in carol.client.rooms else False,
            what="the bot to join",
        )
        await asyncio.sleep(1)  # let the bot upload its device keys
        await carol.send_encrypted(room, "@assistant can you read this?")
        await wait_until(lambda: (bot.user_id, "scripted reply") in carol.texts, timeout=60, what="the encrypted reply")
        assert any("can you read this" in t.content for t in bot.runtime.calls[-1].window)
    finally:
        await carol.close()
