"""A throwaway Synapse homeserver on 127.0.0.1 for the Matrix tests (SQLite, temp dir)."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

_GENEROUS = {"per_second": 1000, "burst_count": 1000}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SynapseServer:
    """Start, stop and restart Synapse; register users with the shared secret."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server_name = "localhost"
        self._secret = secrets.token_hex(16)
        self.proc: subprocess.Popen[bytes] | None = None
        self.config_path = self.dir / "homeserver.yaml"
        self._write_config()
        self.admin_token = ""

    def _write_config(self) -> None:
        from signedjson.key import generate_signing_key, write_signing_keys

        with open(self.dir / "signing.key", "w") as f:
            write_signing_keys(f, [generate_signing_key("a_test")])
        log_config = {
            "version": 1,
            "formatters": {"f": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
            "handlers": {
                "file": {"class": "logging.FileHandler", "filename": str(self.dir / "synapse.log"), "formatter": "f"}
            },
            "root": {"level": "WARNING", "handlers": ["file"]},
            "disable_existing_loggers": False,
        }
        (self.dir / "log.yaml").write_text(yaml.safe_dump(log_config))
        config = {
            "server_name": self.server_name,
            "pid_file": str(self.dir / "homeserver.pid"),
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": {"name": "sqlite3", "args": {"database": str(self.dir / "homeserver.db")}},
            "log_config": str(self.dir / "log.yaml"),
            "media_store_path": str(self.dir / "media"),
            "signing_key_path": str(self.dir / "signing.key"),
            "registration_shared_secret": self._secret,
            "macaroon_secret_key": secrets.token_hex(16),
            "form_secret": secrets.token_hex(16),
            "report_stats": False,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "enable_registration": False,
            "presence": {"enabled": False},
            "url_preview_enabled": False,
            # Fast tests: limits far above what they need (one test tightens the bot's own).
            "rc_message": _GENEROUS,
            "rc_registration": _GENEROUS,
            "rc_login": {"address": _GENEROUS, "account": _GENEROUS, "failed_attempts": _GENEROUS},
            "rc_joins": {"local": _GENEROUS, "remote": _GENEROUS},
            "rc_joins_per_room": _GENEROUS,
            "rc_invites": {"per_room": _GENEROUS, "per_user": _GENEROUS, "per_issuer": _GENEROUS},
            "rc_room_creation": _GENEROUS,
            "rc_profile": _GENEROUS,
            "rc_admin_redaction": _GENEROUS,
        }
        self.config_path.write_text(yaml.safe_dump(config))

    # --- process ------------------------------------------------------------------

    def start(self, timeout_s: float = 90) -> None:
        """Start Synapse and wait until its client API answers."""
        log = open(self.dir / "stdout.log", "ab")  # noqa: SIM115 (closed with the process)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "synapse.app.homeserver", "-c", str(self.config_path)],
            cwd=self.dir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"synapse exited with {self.proc.returncode}; see {self.dir}/stdout.log")
            try:
                self._get("/_matrix/client/versions")
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"synapse did not answer within {timeout_s} s; see {self.dir}")

    def stop(self) -> None:
        """Stop Synapse (SIGTERM, then SIGKILL)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        """Stop and start again on the same port and database."""
        self.stop()
        self.start()

    # --- HTTP ---------------------------------------------------------------------

    def _request(self, method: str, path: str, body: object = None, token: str = "") -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"{}")

    def _get(self, path: str) -> dict:
        return self._request("GET", path)

    def register(self, localpart: str, password: str = "pw-test-123", admin: bool = False) -> tuple[str, str]:
        """Register a user through the shared-secret admin API; returns (user_id, access_token)."""
        nonce = self._get("/_synapse/admin/v1/register")["nonce"]
        mac = hmac.new(self._secret.encode(), digestmod=hashlib.sha1)
        mac.update(
            b"\x00".join([nonce.encode(), localpart.encode(), password.encode(), b"admin" if admin else b"notadmin"])
        )
        body = {"nonce": nonce, "username": localpart, "password": password, "admin": admin, "mac": mac.hexdigest()}
        resp = self._request("POST", "/_synapse/admin/v1/register", body)
        return resp["user_id"], resp["access_token"]

    def override_ratelimit(self, user_id: str, per_second: float, burst_count: int) -> None:
        """Give one user their own message rate limit (admin API)."""
        path = f"/_synapse/admin/v1/users/{urllib.parse.quote(user_id)}/override_ratelimit"
        self._request("POST", path, {"messages_per_second": per_second, "burst_count": burst_count}, self.admin_token)
