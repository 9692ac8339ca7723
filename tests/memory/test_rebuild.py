"""`chime memory rebuild [CHANNEL]`: the index filled again from the stored messages, with a progress bar."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.domain import ChannelRef, IncomingMessage
from bot.memory import Memory
from bot.store import Store, sqlite_url
from bot.store.migrate import upgrade
from chime.cli import main

CH = ChannelRef("console", "console", "console")


def test_rebuild_refills_an_emptied_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = sqlite_url(tmp_path / "chime.db")
    upgrade(url)
    store = Store(url)
    pk = store.channel(CH).pk
    at = datetime(2026, 11, 12, tzinfo=UTC)
    batch = [IncomingMessage(CH, f"m{i}", "ann", "Ann", f"note {i} about lunch", created_at=at) for i in range(50)]
    store.add_messages([*batch, IncomingMessage(CH, "w", "jo", "Jo", "wifi password is kiwi-4", created_at=at)],
                       channel_pk=pk)  # fmt: skip
    with store.engine.begin() as conn:  # as after restoring the table from a backup without its index
        conn.execute(text("INSERT INTO memory_messages_fts(memory_messages_fts) VALUES ('delete-all')"))
    assert Memory(store.engine).search(pk, "wifi password") == []
    store.close()
    assert main(["memory", "rebuild", "--data-dir", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "51 messages indexed" in out and "messages [" in err and "100% 51/51" in err
    store = Store(url)
    assert Memory(store.engine).search(pk, "wifi password")[0].message_id == "w"
    store.close()
    # One channel: the same rows, taken out and put back (nothing doubles).
    assert main(["memory", "rebuild", "console:console", "--data-dir", str(tmp_path)]) == 0
    store = Store(url)
    with store.engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM memory_messages_fts WHERE memory_messages_fts MATCH 'lunch'"))
        assert n.scalar() == 50
    store.close()
    assert main(["memory", "rebuild", "discord:nope", "--data-dir", str(tmp_path)]) == 2
    assert "no channel 'discord:nope'" in capsys.readouterr().err
