"""Everyday mistakes, run as a user would: one clear line naming what is wrong, no traceback, a non-zero exit."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import pty
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.core.test_cli import ROOT, chime


def chime_bytes(*args: str, stdin: bytes, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "chime", *args], input=stdin, capture_output=True, timeout=timeout, cwd=ROOT
    )


def one_error(r: subprocess.CompletedProcess) -> str:
    """The single line a failed command printed on stderr (and that it failed cleanly)."""
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("chime: ")
    return lines[0]


def exported(data_dir: Path) -> list[dict]:
    out = data_dir / "export.jsonl"
    r = chime("export", "console:main", "--out", str(out), "--data-dir", str(data_dir))
    assert r.returncode == 0, r.stderr
    return [m for line in out.read_text().splitlines() for m in json.loads(line)]


def start_chat(data_dir: Path) -> subprocess.Popen:
    """A console chat left running (its stdin open), started like a user would."""
    return subprocess.Popen(
        [sys.executable, "-m", "chime", "run", "--runtime", "rules", "--data-dir", str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def wait_for_log(data_dir: Path, needle: str, timeout: float = 60) -> None:
    log = data_dir / "chime.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and needle in log.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise AssertionError(f"{needle!r} never appeared in {log}")


# --- console input -------------------------------------------------------------


def test_invalid_utf8_on_stdin_does_not_end_the_chat(tmp_path: Path) -> None:
    chat = b"Ann: caf\xe9 au lait?\n\xff\xfe\nBen: @assistant are you still there?\n"
    r = chime_bytes("run", "--runtime", "rules", "--data-dir", str(tmp_path), stdin=chat)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[:2] == ["[silent p=0.05]"] * 2 and lines[-1] == "[forced p=0.90]", lines
    err = r.stderr.decode()
    assert "input line 1 is not valid UTF-8" in err and "input line 2 is not valid UTF-8" in err
    said = [(m["name"], m["content"]) for m in exported(tmp_path) if m["role"] == "user"]
    assert said == [("Ann", "caf\ufffd au lait?"), ("Ann", "\ufffd\ufffd"), ("Ben", "@assistant are you still there?")]


def test_input_that_fails_mid_chat_is_a_failure_not_an_end(tmp_path: Path) -> None:
    # A terminal that goes away answers reads with EIO: the exit status says so.
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "chime", "run", "--runtime", "rules", "--data-dir", str(tmp_path)],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    os.close(slave)
    try:
        os.write(master, b"Ann: @assistant hello\n")
        wait_for_log(tmp_path, "decision channel=console:main")
    finally:
        os.close(master)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "console: reading the input failed after line 1: [Errno 5]" in err
    assert "Traceback" not in err and "[forced p=0.90]" in out


def test_blank_lines_are_not_messages(tmp_path: Path) -> None:
    r = chime("run", "--runtime", "rules", "--data-dir", str(tmp_path), stdin="Ann: hi\n\n   \n\t\nBen: \nBen: hello\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["[silent p=0.05]", "[silent p=0.05]"]
    assert [(m["name"], m["content"]) for m in exported(tmp_path)] == [("Ann", "hi"), ("Ben", "hello")]


# --- the data directory and the store ------------------------------------------


def test_a_second_run_on_the_same_data_dir_stops_with_a_clear_error(tmp_path: Path) -> None:
    first = start_chat(tmp_path)
    try:
        first.stdin.write("Ann: @assistant are you there?\n")
        first.stdin.flush()
        wait_for_log(tmp_path, "decision channel=console:main")
        line = one_error(chime("run", "--runtime", "rules", "--data-dir", str(tmp_path), stdin="Ben: me too\n"))
        assert f"data_dir {tmp_path}: another chime run (pid {first.pid}) is using it" in line
    finally:
        out, err = first.communicate("Ann: bye\n", timeout=60)
    assert first.returncode == 0, err
    # The lock went with the first run: the next one starts, and nothing the second tried was stored.
    r = chime("run", "--runtime", "rules", "--data-dir", str(tmp_path), stdin="Ben: my turn\n")
    assert r.returncode == 0, r.stderr
    assert [m["content"] for m in exported(tmp_path) if m["role"] == "user"] == [
        "@assistant are you there?",
        "bye",
        "my turn",
    ]


@contextlib.contextmanager
def read_only_dir(path: Path) -> Iterator[Path]:
    """A directory nobody may write in; root ignores permissions, so it gets the immutable flag."""
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("running as root without chattr +i: cannot make a read-only directory")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_read_only_data_dir_is_one_clear_error(tmp_path: Path) -> None:
    with read_only_dir(tmp_path / "ro") as ro:
        line = one_error(chime("run", "--runtime", "rules", "--data-dir", str(ro), stdin="Ann: hi\n"))
        assert f"data_dir {ro}: not writable" in line
        line = one_error(chime("run", "--runtime", "rules", "--data-dir", str(ro / "sub"), stdin="Ann: hi\n"))
        assert f"data_dir {ro / 'sub'}: not writable" in line
        assert list(ro.iterdir()) == []


def test_db_commands_before_the_first_run(tmp_path: Path) -> None:
    for action in (["current"], ["downgrade", "base"]):
        line = one_error(chime("db", *action, "--data-dir", str(tmp_path)))
        assert f"no database yet at {tmp_path / 'chime.db'}" in line
        assert "'chime run' or 'chime db upgrade' creates it" in line
    assert not (tmp_path / "chime.db").exists()


def test_db_downgrade_to_an_unknown_revision(tmp_path: Path) -> None:
    assert chime("db", "upgrade", "--data-dir", str(tmp_path)).returncode == 0
    line = one_error(chime("db", "downgrade", "9999", "--data-dir", str(tmp_path)))
    assert "cannot migrate to revision '9999'" in line
    assert "(revisions: base, 0001, 0002, 0003, 0004, 0007, 0008, 0009, 0010, 0011, 0012, 0013;" in line
    r = chime("db", "current", "--data-dir", str(tmp_path))
    assert r.returncode == 0 and "current 0013" in r.stdout


def test_unsupported_store_urls(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("store:\n  url: mysql://chime:secret@db.example.org/chime\nruntime:\n  kind: rules\n")
    for args in (["run", "--config", str(cfg), "--data-dir", str(tmp_path)], ["config", "check", str(cfg)]):
        line = one_error(chime(*args, stdin="Ann: hi\n"))
        assert line == "chime: store.url: unsupported database 'mysql'; use sqlite:///PATH or postgresql://USER@HOST/DB"
    line = one_error(chime("db", "current", "--url", "mysql://chime@db.example.org/chime"))
    assert "unsupported database 'mysql'" in line


def test_postgresql_without_its_driver_names_the_extra(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("store:\n  url: postgresql://chime@127.0.0.1:1/chime\nruntime:\n  kind: rules\n")
    # As on an install without the postgres extra: importing psycopg fails.
    no_driver = "import sys, runpy; sys.modules['psycopg'] = None; runpy.run_module('chime', run_name='__main__')"
    for args in (["run", "--config", str(cfg), "--data-dir", str(tmp_path)], ["config", "check", str(cfg)]):
        r = subprocess.run(
            [sys.executable, "-c", no_driver, *args], input="Ann: hi\n", capture_output=True, text=True, cwd=ROOT
        )
        line = one_error(r)
        assert "store.url: PostgreSQL needs its driver (psycopg 3)" in line
        assert "pip install 'chime-bot[postgres]'" in line


# --- configuration: `config check` says what `run` would say --------------------


def test_a_runtime_section_without_kind_configures_the_default_runtime(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("runtime:\n  n_ctx: 4096\n")
    r = chime("config", "check", str(cfg))
    assert r.returncode == 0 and "OK (runtime llama_cpp;" in r.stdout, r.stderr
    # Its other errors are reported, each by its key, not one error about a missing tag.
    cfg.write_text("runtime:\n  n_ctx: lots\n  gpu_layers: 3\nstore:\n  retention_days: 0\n")
    r = chime("config", "check", str(cfg))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "discriminator" not in r.stderr
    for key in ("runtime.n_ctx:", "runtime.gpu_layers: unknown key", "store.retention_days:"):
        assert key in r.stderr, r.stderr


def test_empty_sections_take_their_defaults(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("store:\nruntime:\nadapters:\n  console:\n")
    r = chime("config", "check", str(cfg))
    assert r.returncode == 0 and "OK (runtime llama_cpp; adapters console;" in r.stdout, r.stderr


BAD_CONFIGS = {
    "no adapter": "runtime:\n  kind: rules\nadapters:\n  console:\n    enabled: false\n",
    "discord token unset": (
        "runtime:\n  kind: rules\nadapters:\n  discord:\n    enabled: true\n    token_env: CHIME_TEST_UNSET_TOKEN\n"
    ),
    "missing model file": "runtime:\n  model_path: /nonexistent/model.gguf\n",
    "missing adapter file": "runtime:\n  adapter_path: /nonexistent/adapter.gguf\n",
    "context too small": "runtime:\n  n_ctx: 256\n  max_tokens: 200\n",
    "server key unset": (
        "runtime:\n  kind: openai\n  base_url: http://127.0.0.1:1/v1\n  model: m\n  api_key_env: CHIME_TEST_UNSET_KEY\n"
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_config_check_rejects_what_run_rejects_with_the_same_message(tmp_path: Path, case: str) -> None:
    if "model" in case or "adapter" in case or "context" in case:
        if importlib.util.find_spec("llama_cpp") is None:
            pytest.skip("needs the cpu extra")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(BAD_CONFIGS[case])
    env = {"CHIME_TEST_UNSET_TOKEN": "", "CHIME_TEST_UNSET_KEY": ""}
    checked = one_error(chime("config", "check", str(cfg), env=env))
    ran = one_error(chime("run", "--config", str(cfg), "--data-dir", str(tmp_path / "d"), stdin="Ann: hi\n", env=env))
    assert checked == ran
    assert not (tmp_path / "d").exists(), "run started before finding the problem"


def test_config_check_lists_every_problem_at_once(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "store:\n  url: mysql://db/chime\nruntime:\n  kind: rules\n"
        "adapters:\n  console:\n    enabled: false\n  discord:\n    enabled: true\n    token_env: CHIME_TEST_UNSET_TOKEN\n"
    )
    r = chime("config", "check", str(cfg), env={"CHIME_TEST_UNSET_TOKEN": ""})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[0] == "chime: cannot start:"
    assert "  store.url: unsupported database 'mysql'" in r.stderr
    assert "  adapters.discord.token_env: environment variable CHIME_TEST_UNSET_TOKEN is not set" in r.stderr
