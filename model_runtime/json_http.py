"""JsonHttp: JSON POSTs to one server over a keep-alive connection per thread (the standard library's ``http.client``).

The OpenAI-compatible decider sends a request for every message of every channel, from
many threads at once. A general-purpose client (httpx) spent more CPU per request than
the rest of a decision's work in the bot; a plain ``http.client`` connection, kept open
by each thread that uses it, does the same exchange for a fraction of that.
"""

from __future__ import annotations

import http.client
import json
import threading
from typing import Any
from urllib.parse import urlsplit

# A kept-alive connection the server had closed fails at once, before the request is
# read: such a failure on a reused connection is retried once on a new one.
_STALE = (http.client.RemoteDisconnected, http.client.CannotSendRequest, BrokenPipeError, ConnectionResetError)


class JsonHttp:
    """POSTs JSON to ``root`` (``http://host:port[/prefix]``) and reads JSON answers."""

    def __init__(self, root: str, headers: dict[str, str], timeout_s: float) -> None:
        url = urlsplit(root)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {root!r}")
        self._https = url.scheme == "https"
        self._host = url.hostname
        self._port = url.port
        self._prefix = url.path.rstrip("/")
        self._headers = {"Content-Type": "application/json", "Accept": "application/json", **headers}
        self._timeout_s = timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[http.client.HTTPConnection] = []

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        """(status, body bytes) of a POST of ``body`` as JSON to ``path``."""
        data = json.dumps(body).encode("utf-8")
        while True:
            conn, reused = self._connection()
            try:
                return self._exchange(conn, path, data)
            except _STALE:
                self._drop(conn)
                if not reused:
                    raise  # a new connection failed: the server, not a stale keep-alive
            except BaseException:
                self._drop(conn)  # a timeout or a half-read answer leaves the connection unusable
                raise

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            conns, self._open = self._open, []
        for conn in conns:
            conn.close()

    def _exchange(self, conn: http.client.HTTPConnection, path: str, data: bytes) -> tuple[int, bytes]:
        conn.request("POST", self._prefix + path, body=data, headers=self._headers)
        response = conn.getresponse()
        payload = response.read()
        if response.will_close:
            self._drop(conn)
        return response.status, payload

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection, and whether it was used before."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn, True
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = cls(self._host, self._port, timeout=self._timeout_s)
        self._local.conn = conn
        with self._lock:
            self._open.append(conn)
        return conn, False

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._lock:
            if conn in self._open:
                self._open.remove(conn)
