"""``chime run`` with Matrix on, started as an operator would: its log file, and INFO at one line per decision."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.core.test_cli import ROOT
from tests.matrix.conftest import PASSWORD
from tests.matrix.helpers import Person, new_bot_localpart, wait_until
from tests.matrix.synapse_server import SynapseServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


async def test_the_log_goes_to_the_data_dir_with_one_info_line_per_decision(
    alice: Person, synapse: SynapseServer, tmp_path: Path
) -> None:
    user_id, token = synapse.register(new_bot_localpart(), PASSWORD)
    matrix = {
        "enabled": True,
        "homeserver": synapse.url,
        "user_id": user_id,
        "access_token_env": "CHIME_TEST_MATRIX_TOKEN",
        "allowed_inviters": ["localhost"],
        "sync_timeout_ms": 1000,
    }
    config = {"runtime": {"kind": "rules"}, "adapters": {"console": {"enabled": False}, "matrix": matrix}}
    cfg = tmp_path / "chime.yaml"
    cfg.write_text(yaml.safe_dump(config))
    data = tmp_path / "data"
    log = data / "chime.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "chime", "run", "--config", str(cfg), "--data-dir", str(data)],
        env={**os.environ, "CHIME_TEST_MATRIX_TOKEN": token},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )

    def decisions() -> int:
        return log.read_text().count("decision channel=matrix:") if log.exists() else 0

    said = 10
    try:
        room = await alice.create_room(invite=[user_id])
        await alice.wait_for(room, lambda e: e.get("state_key") == user_id and e["content"].get("membership") == "join")
        for i in range(said):
            await alice.send(room, f"message {i}")
            await wait_until(lambda n=i: decisions() > n, what=f"the decision on message {i}")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    info = [line for line in log.read_text().splitlines() if " INFO " in line]
    per_decision = [line for line in info if "decision channel=matrix:" in line]
    # Migrations log one line per revision on a new store, once: start-up, not events.
    others = [line for line in info if line not in per_decision and "alembic.runtime.migration" not in line]
    assert len(per_decision) == said
    # The rest is start-up and shutdown (login, the join): fewer lines than the room had events.
    assert len(others) < said, "\n".join(others)
    assert not any("handling event" in line for line in log.read_text().splitlines())
    # Without the console chat, the terminal gets the log too.
    assert err.count("decision channel=matrix:") == said
