"""The chime command line, run as a user would: a subprocess with stdin and no terminal."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def chime(*args: str, stdin: str = "", env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "chime", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=full_env,
    )


CONVERSATION = """Alice: hi Bob, did you book the train?
Bob: yes, the 9:40 one
Alice: great, see you there
/as Carol
@assistant how long is a marathon?
/assistant status
/assistant frobnicate
"""

DEFAULT_CHAT = """Alice: are we still on for the hike on saturday?
Bob: yes! meet at the trailhead at 8
Alice: perfect, I'll bring snacks
Bob: @assistant how long does it take to walk 10 km?
"""


def test_console_chat_with_rules_runtime(tmp_path: Path) -> None:
    r = chime("run", "--runtime", "rules", "--data-dir", str(tmp_path), stdin=CONVERSATION)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:3] == ["[silent p=0.05]"] * 3
    assert "(now speaking as Carol)" in lines
    i = next(n for n, line in enumerate(lines) if line.startswith("assistant: "))
    assert "rule-based runtime" in lines[i]
    assert lines[i + 1] == "[forced p=0.90]"
    assert any(line.startswith("listening in console:main") for line in lines)
    assert any("Unknown command 'frobnicate'" in line for line in lines)
    assert (tmp_path / "chime.db").is_file()
    log = (tmp_path / "chime.log").read_text()
    assert "decision channel=console:main p_speak=0.900" in log


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="needs the cpu extra")
def test_console_chat_with_the_default_runtime(tmp_path: Path) -> None:
    """No config and no flags: the bundled SmolLM2 with the shipped adapter decides."""
    r = chime("run", "--data-dir", str(tmp_path), stdin=DEFAULT_CHAT, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    statuses = [line for line in lines if line.startswith("[")]
    assert len(statuses) == 4, lines
    assert all(re.fullmatch(r"\[(silent|spoke|forced) p=[01]\.\d\d\]", line) for line in statuses), statuses
    assert statuses[-1].startswith("[forced p=")
    replies = [line for line in lines if line.startswith("assistant: ")]
    assert replies and len(replies[-1]) > len("assistant: ")
    log = (tmp_path / "chime.log").read_text()
    assert "runtime llama_cpp (llama_cpp:SmolLM2-135M-Instruct.Q4_1.gguf+default_adapter/adapter.gguf)" in log


def test_history_survives_restart_and_exports_in_seed_format(tmp_path: Path) -> None:
    chime("run", "--runtime", "rules", "--data-dir", str(tmp_path), stdin="Ann: first run\n")
    chime("run", "--runtime", "rules", "--data-dir", str(tmp_path), stdin="Ben: @assistant second run\n")
    out = tmp_path / "export.jsonl"
    r = chime("export", "console:main", "--out", str(out), "--data-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    [conv] = [json.loads(line) for line in out.read_text().splitlines()]
    assert [m["role"] for m in conv] == ["user", "user", "assistant"]
    assert conv[0] == {"role": "user", "name": "Ann", "content": "first run"}
    r = chime("export", "console:nope", "--out", str(out), "--data-dir", str(tmp_path))
    assert r.returncode == 2 and "no channel 'console:nope'" in r.stderr


def test_forget_me_in_the_console_deletes_the_speakers_messages(tmp_path: Path) -> None:
    chat = "Ann: my number is 555-0100\nBen: noted\n/as Ann\n/assistant forget-me\n"
    r = chime("run", "--runtime", "rules", "--data-dir", str(tmp_path), stdin=chat)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "export.jsonl"
    assert chime("export", "console:main", "--out", str(out), "--data-dir", str(tmp_path)).returncode == 0
    [conv] = [json.loads(line) for line in out.read_text().splitlines()]
    assert conv == [{"role": "user", "name": "Ben", "content": "noted"}]


def test_config_check(tmp_path: Path) -> None:
    r = chime("config", "check", str(ROOT / "config.example.yaml"))
    assert r.returncode == 0 and "OK" in r.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("adapters:\n  discord:\n    tokn_env: X\n")
    r = chime("config", "check", str(bad))
    assert r.returncode == 2
    assert f"{bad}: invalid configuration" in r.stderr
    assert "adapters.discord.tokn_env: unknown key" in r.stderr


def test_an_unusable_database_is_a_clear_start_up_error(tmp_path: Path) -> None:
    (tmp_path / "a-directory").mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"store:\n  url: sqlite:///{tmp_path / 'a-directory'}\nruntime:\n  kind: rules\n")
    r = chime("run", "--config", str(cfg), "--data-dir", str(tmp_path), stdin="Ann: hi\n")
    assert r.returncode == 2
    assert "migrations failed after 3 attempts" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="needs the cpu extra")
def test_a_broken_model_file_is_a_clear_start_up_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"runtime:\n  kind: llama_cpp\n  model_path: {broken}\n  adapter_path: null\n")
    r = chime("run", "--config", str(cfg), "--data-dir", str(tmp_path), stdin="Ann: hi\n")
    assert r.returncode == 2
    assert str(broken) in r.stderr and "Traceback" not in r.stderr


def test_db_commands(tmp_path: Path) -> None:
    r = chime("db", "upgrade", "--data-dir", str(tmp_path))
    assert r.returncode == 0 and "store at revision 0013" in r.stdout
    r = chime("db", "current", "--data-dir", str(tmp_path))
    assert r.returncode == 0 and "current 0013, head 0013" in r.stdout
    r = chime("db", "downgrade", "base", "--data-dir", str(tmp_path))
    assert r.returncode == 0 and "store at revision base" in r.stdout
    r = chime("db", "current", "--data-dir", str(tmp_path))
    assert r.returncode == 0 and "current base, head 0013" in r.stdout


def test_replay_prints_each_human_turn_with_its_decision(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    conv = [
        {"role": "user", "name": "Ann", "content": "hi"},
        {"role": "user", "name": "Ben", "content": "@assistant what's 2+2?"},
        {"role": "assistant", "content": "4."},
    ]
    data.write_text(json.dumps(conv) + "\n")
    r = chime("replay", str(data), "--runtime", "rules")
    assert r.returncode == 0, r.stderr
    assert "Ann: hi    [silent p=0.05 gold=silent]" in r.stdout
    assert "Ben: @assistant what's 2+2?    [speak  p=0.90 gold=speak]" in r.stdout
    data.write_text("[oops\n")
    r = chime("replay", str(data), "--runtime", "rules")
    assert r.returncode == 2 and f"{data}:1: bad JSON" in r.stderr


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_bot_cleanly(tmp_path: Path, signame: str) -> None:
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "chime", "run", "--runtime", "rules", "--data-dir", str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    proc.stdin.write("Ann: @assistant hello\n")
    proc.stdin.flush()
    log = tmp_path / "chime.log"
    deadline = time.time() + 60
    while time.time() < deadline and not (log.exists() and "decision channel" in log.read_text(errors="ignore")):
        time.sleep(0.2)
    proc.send_signal(getattr(signal, signame))  # SIGINT is Ctrl-C
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "assistant: " in out
    assert "stop requested" in log.read_text()
    # Nothing cancelled on the way out is reported as an error.
    assert err == "" and "Traceback" not in log.read_text() and "ERROR" not in log.read_text()


@pytest.mark.parametrize("delay", [0.2, 0.4, 0.7, 1.0, 1.5])
def test_ctrl_c_while_the_program_loads_ends_it_without_a_traceback(tmp_path: Path, delay: float) -> None:
    import signal
    import time

    # The model and the libraries take a second or more to load; Ctrl-C in that time is
    # a user changing their mind, not an error.
    proc = subprocess.Popen(
        [sys.executable, "-m", "chime", "run", "--data-dir", str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    if "init_import_site" in err:  # the interpreter's own start-up, before any chime code ran
        return
    assert "Traceback" not in err, err
    # 130 once Python runs our code; killed by the signal (-2) if it arrived before that.
    assert proc.returncode in (130, 0, -signal.SIGINT), (proc.returncode, err)


def _rows(db: Path, sql: str) -> list[tuple]:
    import sqlite3

    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=15)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:  # the schema is still being created
        return []
    finally:
        conn.close()


def test_kill_9_mid_decision_then_restart_answers_the_question_exactly_once(tmp_path: Path) -> None:
    import signal
    import time

    slow = tmp_path / "slow.yaml"
    slow.write_text("runtime:\n  kind: rules\n  delay_s: 3\n")
    db = tmp_path / "chime.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "chime", "run", "--config", str(slow), "--data-dir", str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    proc.stdin.write("Ann: lunch at noon?\nBob: @assistant what is 12 times 12?\nAnn: and the weather?\n")
    proc.stdin.flush()
    question = "SELECT platform_message_id, outcome FROM messages WHERE text LIKE '%12 times 12%'"
    deadline = time.time() + 60
    while time.time() < deadline and not _rows(db, question):
        time.sleep(0.1)
    [(question_id, outcome)] = _rows(db, question)
    assert outcome is None, "killed while the question is being decided"
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)
    assert "assistant: " not in out

    # The next start answers it first, about itself, once; the one after that has nothing to do.
    for run in range(2):
        r = chime("run", "--runtime", "rules", "--data-dir", str(tmp_path), stdin="")
        assert r.returncode == 0, r.stderr
        replies = [line for line in r.stdout.splitlines() if line.startswith("assistant: ")]
        assert len(replies) == (1 if run == 0 else 0), r.stdout
    answers = _rows(db, "SELECT reply_to FROM messages WHERE from_assistant = 1")
    assert answers == [(question_id,)]
    assert _rows(db, question) == [(question_id, "sent")]
    assert _rows(db, "SELECT count(*) FROM messages WHERE outcome IS NULL") == [(0,)]
