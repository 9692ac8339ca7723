"""Fixtures for the Matrix end-to-end tests: one Synapse per session, people, and bots."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("nio")
pytest.importorskip("synapse")

from tests.matrix.helpers import Bot, Person, new_bot_localpart  # noqa: E402
from tests.matrix.synapse_server import SynapseServer  # noqa: E402

PASSWORD = "pw-test-123"


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    """Synapse on 127.0.0.1 (SQLite, temp dir), with an admin, Alice and Bob registered; always stopped."""
    server = SynapseServer(tmp_path_factory.mktemp("synapse"))
    server.start()
    try:
        _, server.admin_token = server.register("admin", PASSWORD, admin=True)
        server.people = {name: server.register(name, PASSWORD) for name in ("alice", "bob")}
        yield server
    finally:
        server.stop()


@pytest.fixture
async def alice(synapse: SynapseServer) -> AsyncIterator[Person]:
    """Alice creates the rooms, so she is their admin."""
    person = Person(synapse.url, *synapse.people["alice"])
    await person.start()
    yield person
    await person.close()


@pytest.fixture
async def bob(synapse: SynapseServer) -> AsyncIterator[Person]:
    """Bob is an ordinary member."""
    person = Person(synapse.url, *synapse.people["bob"])
    await person.start()
    yield person
    await person.close()


@pytest.fixture
async def make_bot(
    synapse: SynapseServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[..., Bot]]:
    """Build bots on fresh accounts (token in the environment, as in production); all are stopped at the end."""
    bots: list[Bot] = []

    def make(*, db_name: str = "chime.db", user: tuple[str, str] | None = None, **cfg: object) -> Bot:
        user_id, token = user or synapse.register(new_bot_localpart(), PASSWORD)
        env = f"CHIME_TEST_MATRIX_TOKEN_{len(bots)}"
        monkeypatch.setenv(env, token)
        cfg.setdefault("allowed_inviters", ["localhost"])
        bot = Bot(synapse.url, tmp_path / db_name, user_id, env, **cfg)
        bot.token = token
        bots.append(bot)
        return bot

    yield make
    for bot in bots:
        await bot.stop()
