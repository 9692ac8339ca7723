"""A loopback Discord: enough of the REST API (v10) and the gateway for the real discord.py client.

The client connects to it unmodified except for its API base URL (``Route.BASE``); the
gateway URL comes from ``GET /gateway/bot``. The gateway speaks JSON, compressed as a
zlib stream when the client asks for it (as Discord does), keeps every session's
events with their sequence numbers, and replays the missed ones on RESUME.

It serves several guilds (``add_guild``) and shards: a session that IDENTIFYs with
``shard: [id, count]`` gets the guilds with ``(guild_id >> 22) % count == id`` and their
events; direct messages go to shard 0. An event for a shard nobody is connected to is
lost, as on Discord (``undelivered`` keeps it); the client reads the history back.

What the bot did is recorded (``requests``, ``sent``, ``typing``, ``callbacks``,
``followups``, ``identifies``, ``resumes``, ``history_requests``); ``fail_next`` makes the next matching REST
calls answer with an error (a 429 with ``retry_after``, a 403, a 404).
"""

from __future__ import annotations

import asyncio
import json
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.discord import payloads
from tests.discord.payloads import MANAGE_GUILD, SEND_MESSAGES, Json, Person, iso, snowflake, snowflake_on_shard

__all__ = ["MANAGE_GUILD", "FakeDiscord", "Person", "Request"]

API = "/api/v10"


@dataclass
class Request:
    """One REST call the client made."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 200
    response: Any = None


@dataclass
class Failure:
    """An error the next matching REST calls get."""

    method: str
    path: re.Pattern[str]
    status: int
    body: Json
    headers: dict[str, str]
    times: int


@dataclass
class _Connection:
    ws: web.WebSocketResponse
    request: web.Request
    compressor: Any | None  # zlib compressobj when the client asked for zlib-stream

    async def send(self, payload: Json) -> None:
        data = json.dumps(payload)
        if self.compressor is None:
            await self.ws.send_str(data)
        else:
            await self.ws.send_bytes(self.compressor.compress(data.encode()) + self.compressor.flush(zlib.Z_SYNC_FLUSH))


@dataclass
class _Session:
    id: str
    shard: tuple[int, int] = (0, 1)
    seq: int = 0
    events: list[Json] = field(default_factory=list)
    conn: _Connection | None = None


class FakeDiscord:
    """The loopback Discord server; ``await start()``, point the bot at ``api_base_url``, ``await stop()``."""

    def __init__(self, token: str = "test-token") -> None:
        self.token = token
        self.bot = Person(snowflake(), "chime", global_name="Chime", bot=True)
        self.app_id = snowflake()
        self.guild_id = snowflake()
        self.everyone_role = self.guild_id  # Discord's @everyone role shares the guild id
        self.bot_role = snowflake()
        self.roles: dict[int, Json] = {}
        # Each guild's name and role ids (the first one, guild_id, is the default guild).
        self.guilds: dict[int, str] = {self.guild_id: "Test Guild"}
        self._guild_roles: dict[int, list[int]] = {self.guild_id: []}
        # What /gateway/bot recommends.
        self.recommended_shards = 1
        self.channels: dict[int, Json] = {}
        self.people: dict[int, Person] = {self.bot.id: self.bot}
        self.messages: dict[int, Json] = {}
        self.deleted_channels: set[int] = set()
        self.forbidden_channels: set[int] = set()
        self.add_role(self.everyone_role, "@everyone", SEND_MESSAGES)
        self.add_role(self.bot_role, "chime", SEND_MESSAGES, managed=True)
        self.bot.roles = [self.bot_role]
        # Records of what the bot did.
        self.requests: list[Request] = []
        # Files given to slash commands, by attachment id, and the ids the bot downloaded.
        self.files: dict[str, bytes] = {}
        self.downloads: list[str] = []
        self.identifies: list[Json] = []
        self.resumes: list[Json] = []
        self.commands: list[Json] = []
        # The query of every GET /channels/{id}/messages (a read-back of the history).
        self.history_requests: list[dict[str, str]] = []
        self._nonces: dict[tuple[int, Any], Json] = {}
        self._failures: list[Failure] = []
        # How long a message POST waits after the gateway echo before it is answered.
        self.answer_delay_s = 0.0
        self._sessions: dict[str, _Session] = {}
        # The session each shard id identified last (the one its events go to).
        self._current: dict[int, _Session] = {}
        # Events for a shard without a session: lost, as on Discord.
        self.undelivered: list[Json] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- set-up -------------------------------------------------------------------

    def add_role(
        self, role_id: int, name: str, permissions: int = 0, *, managed: bool = False, guild_id: int | None = None
    ) -> int:
        """A role of ``guild_id`` (default: the first guild); ``managed``: the bot's own."""
        self.roles[role_id] = payloads.role(
            role_id, name, permissions, len(self.roles), self.bot.id if managed else None
        )
        self._guild_roles[guild_id or self.guild_id].append(role_id)
        return role_id

    def add_guild(self, name: str, *, shard: tuple[int, int] | None = None) -> int:
        """Another guild the bot is in; ``shard=(id, count)`` picks an id that shard ``id`` of ``count`` serves."""
        gid = snowflake_on_shard(*shard) if shard else snowflake()
        self.guilds[gid] = name
        self._guild_roles[gid] = []
        self.add_role(gid, "@everyone", SEND_MESSAGES, guild_id=gid)
        return gid

    def add_channel(self, name: str, *, parent_id: int | None = None, guild_id: int | None = None) -> int:
        """A text channel of ``guild_id`` (default: the first guild), or a public thread when ``parent_id`` is given."""
        cid = snowflake()
        guild = self._guild_of(parent_id) if parent_id is not None else guild_id or self.guild_id
        assert guild is not None, "a thread's parent must be a guild channel"
        self.channels[cid] = payloads.guild_channel(cid, guild, name, len(self.channels), self.bot.id, parent_id)
        return cid

    def add_dm(self, person: Person) -> int:
        """A DM channel between the bot and ``person``."""
        cid = snowflake()
        self.channels[cid] = {"id": str(cid), "type": 1, "recipients": [person.user()], "last_message_id": None}
        return cid

    def add_person(
        self,
        username: str,
        *,
        nick: str | None = None,
        roles: tuple[int, ...] = (),
        bot: bool = False,
        global_name: str | None = None,
    ) -> Person:
        """A member of the guild."""
        p = Person(snowflake(), username, global_name=global_name, nick=nick, roles=list(roles), bot=bot)
        self.people[p.id] = p
        return p

    def fail_next(
        self,
        method: str,
        path: str,
        status: int,
        *,
        times: int = 1,
        retry_after: float = 0.3,
        code: int = 0,
        message: str = "",
    ) -> None:
        """The next ``times`` calls of ``method`` on a path matching the regex ``path`` get ``status``."""
        if status == 429:
            body, headers = payloads.rate_limited(retry_after)
        else:
            body, headers = {"message": message or f"error {status}", "code": code}, {}
        self._failures.append(Failure(method, re.compile(path), status, body, headers, times))

    async def start(self) -> None:
        """Listen on 127.0.0.1 (a free port)."""
        app = web.Application()
        app.router.add_get("/gateway-ws", self._gateway)
        app.router.add_get("/attachments/{aid}/{name}", self._file)
        app.router.add_route("*", API + "/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        for s in self._sessions.values():
            if s.conn is not None:
                await s.conn.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base_url(self) -> str:
        """What ``adapters.discord.api_base_url`` is set to."""
        return f"http://127.0.0.1:{self.port}{API}"

    # --- what the bot did -----------------------------------------------------------

    def calls(self, method: str, pattern: str) -> list[Request]:
        """Recorded REST calls of ``method`` whose path matches the regex ``pattern`` (fully)."""
        rx = re.compile(pattern)
        return [r for r in self.requests if r.method == method and rx.fullmatch(r.path)]

    @property
    def sent(self) -> list[Request]:
        """Messages the bot posted successfully, in order."""
        return [r for r in self.calls("POST", r"/channels/\d+/messages") if r.status == 200]

    @property
    def edits(self) -> list[Request]:
        """Edits of the bot's own messages that Discord accepted, in order."""
        return [r for r in self.calls("PATCH", r"/channels/\d+/messages/\d+") if r.status == 200]

    @property
    def typing(self) -> list[Request]:
        """Typing indicators the bot sent."""
        return self.calls("POST", r"/channels/\d+/typing")

    @property
    def callbacks(self) -> list[Request]:
        """Interaction callbacks (the first answer to a slash command)."""
        return self.calls("POST", r"/interactions/\d+/[^/]+/callback")

    @property
    def followups(self) -> list[Request]:
        """Follow-up messages to interactions."""
        return self.calls("POST", rf"/webhooks/{self.app_id}/[^/]+")

    @property
    def connected(self) -> bool:
        """True while a gateway connection carries every shard's current session (and there is one)."""
        return bool(self._current) and all(s.conn is not None for s in self._current.values())

    @property
    def connected_shards(self) -> set[int]:
        """The shard ids whose current session has a live connection."""
        return {shard for shard, s in self._current.items() if s.conn is not None}

    def shard_of(self, guild_id: int | None) -> int:
        """The shard id a guild's events go to (direct messages: shard 0)."""
        counts = {s.shard[1] for s in self._current.values()} or {1}
        assert len(counts) == 1, f"sessions disagree on the shard count: {sorted(counts)}"
        return 0 if guild_id is None else (guild_id >> 22) % counts.pop()

    # --- events from "Discord" ------------------------------------------------------

    async def dispatch(self, event: str, data: Json) -> None:
        """Send a DISPATCH to the session of the shard it belongs to, or keep it for RESUME while disconnected."""
        if not self._current:
            raise RuntimeError("no gateway session: the client has not identified")
        session = self._current.get(self.shard_of(int(data["guild_id"]) if "guild_id" in data else None))
        if session is None:
            self.undelivered.append({"t": event, "d": data})
            return
        await self._send(session, event, data)

    async def _send(self, session: _Session, event: str, data: Json) -> None:
        session.seq += 1
        payload = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.events.append(payload)
        if session.conn is not None:
            try:
                await session.conn.send(payload)
            except (ConnectionError, RuntimeError):
                session.conn = None  # kept in events; the client gets it when it resumes

    async def post(
        self,
        channel_id: int,
        author: Person,
        content: str,
        *,
        reply_to: int | None = None,
        mentions: tuple[Person, ...] = (),
        **extra: Any,
    ) -> Json:
        """A member writes a message; the bot sees MESSAGE_CREATE. Returns the message object."""
        msg = self._message(channel_id, author, content, reply_to=reply_to, mentions=mentions, **extra)
        await self.dispatch("MESSAGE_CREATE", self._with_guild(msg, author))
        return msg

    async def edit(self, message_id: int, content: str) -> None:
        """The author edits a message."""
        msg = self.messages[message_id]
        msg |= {"content": content, "edited_timestamp": iso()}
        await self.dispatch("MESSAGE_UPDATE", self._with_guild(msg, self.people[int(msg["author"]["id"])]))

    async def delete(self, message_id: int) -> None:
        """Someone deletes a message."""
        msg = self.messages.pop(message_id)
        data = {"id": msg["id"], "channel_id": msg["channel_id"]}
        if (guild := self._guild_of(int(msg["channel_id"]))) is not None:
            data["guild_id"] = str(guild)
        await self.dispatch("MESSAGE_DELETE", data)

    async def bulk_delete(self, channel_id: int, message_ids: list[int]) -> None:
        """A moderator purges several messages of one channel at once."""
        for message_id in message_ids:
            self.messages.pop(message_id)
        data: Json = {"ids": [str(i) for i in message_ids], "channel_id": str(channel_id)}
        if (guild := self._guild_of(channel_id)) is not None:
            data["guild_id"] = str(guild)
        await self.dispatch("MESSAGE_DELETE_BULK", data)

    async def react(self, message_id: int, person: Person, emoji: str, *, remove: bool = False) -> None:
        """``person`` puts a unicode ``emoji`` on a message (or takes it off): MESSAGE_REACTION_ADD or _REMOVE."""
        msg = self.messages[message_id]
        data: Json = {
            "user_id": str(person.id),
            "channel_id": msg["channel_id"],
            "message_id": msg["id"],
            "emoji": {"id": None, "name": emoji},
            "burst": False,
            "type": 0,
        }
        if (guild := self._guild_of(int(msg["channel_id"]))) is not None:
            data["guild_id"] = str(guild)
            if not remove:
                data["member"] = person.member(with_user=True)
        if not remove:
            data["message_author_id"] = msg["author"]["id"]
            data["burst_colors"] = []
        await self.dispatch("MESSAGE_REACTION_REMOVE" if remove else "MESSAGE_REACTION_ADD", data)

    async def slash(
        self,
        channel_id: int,
        user: Person,
        subcommand: str,
        options: dict[str, int | str] | None = None,
        *,
        permissions: int = SEND_MESSAGES,
        files: dict[str, tuple[str, bytes]] | None = None,
    ) -> str:
        """``user`` runs ``/assistant subcommand`` (``files``: option -> (filename, bytes)); returns the token."""
        command_id = str(self.commands[0]["id"]) if self.commands else "1"
        attached = {name: self._attachment(*f) for name, f in (files or {}).items()}
        channel = self.channels[channel_id]
        data = payloads.slash_command(self.app_id, command_id, channel, subcommand, options or {}, attached)
        if (guild := self._guild_of(channel_id)) is not None:
            member = user.member(with_user=True) | {"permissions": str(permissions)}
            data |= {"guild_id": str(guild), "member": member, "guild_locale": "en-US", "context": 0}
        else:
            data |= {"user": user.user(), "context": 1}
        await self.dispatch("INTERACTION_CREATE", data)
        return data["token"]

    def _attachment(self, filename: str, data: bytes) -> dict:
        """An uploaded file: its bytes are served at its url, as Discord's CDN serves them."""
        aid = str(snowflake())
        self.files[aid] = data
        url = f"http://127.0.0.1:{self.port}/attachments/{aid}/{filename}"
        return {"id": aid, "filename": filename, "size": len(data), "url": url, "proxy_url": url,
                "content_type": "text/plain"}  # fmt: skip

    async def _file(self, request: web.Request) -> web.Response:
        self.downloads.append(request.match_info["aid"])
        return web.Response(body=self.files[request.match_info["aid"]])

    def forget_sessions(self) -> None:
        """Make every session unresumable (the next RESUME gets INVALID_SESSION)."""
        self._sessions.clear()

    async def close_gateway(self, code: int, shard: int = 0) -> None:
        """Discord closes the connection of ``shard`` with ``code`` (e.g. 4010, which discord.py does not resume)."""
        session = self._current.get(shard)
        if session is not None and session.conn is not None:
            conn, session.conn = session.conn, None
            await conn.ws.close(code=code)

    async def drop_gateway(self, shard: int = 0) -> None:
        """The connection of ``shard`` dies mid-session (no close frame); the session stays resumable."""
        session = self._current.get(shard)
        if session is not None and session.conn is not None:
            conn, session.conn = session.conn, None
            transport = conn.request.transport
            if transport is not None:
                transport.abort()

    # --- objects ---------------------------------------------------------------------

    def _guild_of(self, channel_id: int) -> int | None:
        """The guild of a channel; None for a DM (or an unknown channel)."""
        guild = self.channels.get(channel_id, {}).get("guild_id")
        return int(guild) if guild is not None else None

    def _message(
        self,
        channel_id: int,
        author: Person,
        content: str,
        *,
        reply_to: int | None = None,
        mentions: tuple[Person, ...] = (),
        **extra: Any,
    ) -> Json:
        msg = payloads.message(channel_id, author, content, mentions)
        if reply_to is not None:
            guild_id = self._guild_of(channel_id)
            msg |= payloads.reply_fields(self.messages.get(reply_to), reply_to, channel_id, guild_id)
        msg |= extra
        self.messages[int(msg["id"])] = msg
        return msg

    def _with_guild(self, msg: Json, author: Person) -> Json:
        """The gateway form of a message: guild messages carry guild_id and the author's member."""
        guild = self._guild_of(int(msg["channel_id"]))
        if guild is None:
            return dict(msg)
        # As Discord does, a guild message's mentioned users carry their partial member (the nick).
        mentions = [
            u | {"member": self.people[int(u["id"])].member()} if int(u["id"]) in self.people else u
            for u in msg.get("mentions", [])
        ]
        return msg | {"guild_id": str(guild), "member": author.member(), "mentions": mentions}

    # --- REST -------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        body = await request.json() if request.can_read_body else None
        rec = Request(request.method, path, dict(request.query), body)
        self.requests.append(rec)
        if request.headers.get("Authorization") != f"Bot {self.token}" and not path.startswith(
            ("/interactions/", "/webhooks/")
        ):
            rec.status = 401
            return _json({"message": "401: Unauthorized", "code": 0}, 401)
        for f in self._failures:
            if f.times > 0 and f.method == request.method and f.path.fullmatch(path):
                f.times -= 1
                rec.status = f.status
                return _json(f.body, f.status, f.headers)
        status, payload = await self._route(request.method, path, body, dict(request.query))
        rec.status, rec.response = status, payload
        if status == 204:
            return web.Response(status=204)
        return _json(payload, status)

    async def _route(self, method: str, path: str, body: Any, query: dict[str, str]) -> tuple[int, Any]:
        if (method, path) == ("GET", "/users/@me"):
            return 200, self.bot.user() | {"verified": True, "mfa_enabled": False, "flags": 0}
        if (method, path) == ("GET", "/oauth2/applications/@me"):
            return 200, {
                "id": str(self.app_id),
                "name": "chime",
                "description": "",
                "icon": None,
                "bot_public": False,
                "bot_require_code_grant": False,
                "owner": self.bot.user(),
                "team": None,
                "verify_key": "00",
                "flags": 0,
            }
        if method == "GET" and path in ("/gateway", "/gateway/bot"):
            return 200, {
                "url": f"ws://127.0.0.1:{self.port}/gateway-ws",
                "shards": self.recommended_shards,
                "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1},
            }
        if (method, path) == ("PUT", f"/applications/{self.app_id}/commands"):
            self.commands = [
                c | {"id": str(snowflake()), "application_id": str(self.app_id), "version": "1"} for c in body
            ]
            return 200, self.commands
        if m := re.fullmatch(r"/channels/(\d+)/(messages|typing)", path):
            cid = int(m.group(1))
            if cid in self.deleted_channels or cid not in self.channels:
                return 404, {"message": "Unknown Channel", "code": 10003}
            if cid in self.forbidden_channels:
                return 403, {"message": "Missing Permissions", "code": 50013}
            if m.group(2) == "typing" and method == "POST":
                return 204, None
            if method == "POST":
                return 200, await self._bot_message(cid, body)
            if method == "GET" and m.group(2) == "messages":
                return 200, self._history(cid, query)
        if method == "PATCH" and (m := re.fullmatch(r"/channels/(\d+)/messages/(\d+)", path)):
            msg = self.messages.get(int(m.group(2)))
            if msg is None or int(msg["author"]["id"]) != self.bot.id:
                return 404 if msg is None else 403, {"message": "Cannot edit", "code": 50005}
            msg["content"] = body.get("content", msg["content"])
            msg["edited_timestamp"] = iso()
            await self.dispatch("MESSAGE_UPDATE", self._with_guild(dict(msg), self.bot))
            return 200, dict(msg)
        if method == "GET" and (m := re.fullmatch(r"/channels/(\d+)", path)):
            cid = int(m.group(1))
            if cid in self.deleted_channels or cid not in self.channels:
                return 404, {"message": "Unknown Channel", "code": 10003}
            return 200, self.channels[cid]
        if method == "POST" and re.fullmatch(r"/interactions/\d+/[^/]+/callback", path):
            iid, flags = path.split("/")[2], (body.get("data") or {}).get("flags", 0)
            return 200, {
                "interaction": {
                    "id": iid,
                    "type": 2,
                    "response_message_loading": body["type"] == 5,
                    "response_message_ephemeral": bool(flags & 64),
                }
            }
        if method == "POST" and re.fullmatch(rf"/webhooks/{self.app_id}/[^/]+", path):
            msg = self._message(next(iter(self.channels)), self.bot, body.get("content", ""))
            return 200, msg | {"webhook_id": str(self.app_id), "flags": body.get("flags", 0)}
        return 404, {"message": f"fake Discord: no route for {method} {path}", "code": 0}

    def _history(self, channel_id: int, query: dict[str, str]) -> list[Json]:
        """GET /channels/{id}/messages: newest first, ``limit`` (at most 100) before or after a message id."""
        limit = min(int(query.get("limit", 50)), 100)
        found = sorted(
            (m for m in self.messages.values() if int(m["channel_id"]) == channel_id),
            key=lambda m: int(m["id"]),
            reverse=True,
        )
        if "before" in query:
            found = [m for m in found if int(m["id"]) < int(query["before"])]
        if "after" in query:
            # The oldest ``limit`` after the id, still newest first (as Discord answers).
            found = [m for m in found if int(m["id"]) > int(query["after"])][-limit:]
        self.history_requests.append(dict(query) | {"channel_id": str(channel_id)})
        return [dict(m) for m in found[:limit]]

    async def _bot_message(self, channel_id: int, body: Json) -> Json:
        nonce = body.get("nonce")
        if body.get("enforce_nonce") and (channel_id, nonce) in self._nonces:
            # As Discord does: the message already created with this nonce, not a new one.
            return self._nonces[channel_id, nonce]
        ref = body.get("message_reference")
        reply_to = int(ref["message_id"]) if ref else None
        msg = self._message(channel_id, self.bot, body.get("content", ""), reply_to=reply_to)
        if body.get("enforce_nonce"):
            self._nonces[channel_id, nonce] = msg
        # Discord echoes the bot's own message on the gateway, often before the POST is answered.
        await self.dispatch("MESSAGE_CREATE", self._with_guild(msg, self.bot))
        await asyncio.sleep(self.answer_delay_s)
        return msg

    # --- gateway ---------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        compress = zlib.compressobj() if request.query.get("compress") == "zlib-stream" else None
        conn = _Connection(ws, request, compress)
        await conn.send({"op": 10, "d": {"heartbeat_interval": 41250}})
        session: _Session | None = None
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            op, d = frame.get("op"), frame.get("d")
            if op == 1:
                await conn.send({"op": 11})
            elif op == 2:
                session = await self._identify(conn, d)
            elif op == 6:
                session = await self._resume(conn, d)
        if session is not None and session.conn is conn:
            session.conn = None
        return ws

    async def _identify(self, conn: _Connection, d: Json) -> _Session | None:
        if d.get("token") != self.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return None
        self.identifies.append(d)
        shard_id, count = d.get("shard") or (0, 1)
        session = _Session(id=f"session-{snowflake()}", shard=(shard_id, count), conn=conn)
        self._sessions[session.id] = self._current[shard_id] = session
        guilds = [gid for gid in self.guilds if (gid >> 22) % count == shard_id]
        await self._send(
            session,
            "READY",
            {
                "v": 10,
                "user": self.bot.user(),
                "guilds": [{"id": str(gid), "unavailable": True} for gid in guilds],
                "session_id": session.id,
                "resume_gateway_url": f"ws://127.0.0.1:{self.port}/gateway-ws",
                "application": {"id": str(self.app_id), "flags": 0},
                "private_channels": [],
                "relationships": [],
                "shard": [shard_id, count],
            },
        )
        for gid in guilds:
            await self._send(session, "GUILD_CREATE", self._guild_payload(gid))
        return session

    def _guild_payload(self, guild_id: int) -> Json:
        roles = [self.roles[r] for r in self._guild_roles[guild_id]]
        channels = [c for c in self.channels.values() if c.get("guild_id") == str(guild_id)]
        return payloads.guild(guild_id, roles, channels, self.bot, len(self.people), self.guilds[guild_id])

    async def _resume(self, conn: _Connection, d: Json) -> _Session | None:
        session = self._sessions.get(d.get("session_id", ""))
        if session is None or d.get("token") != self.token:
            await conn.send({"op": 9, "d": False})
            return None
        self.resumes.append(d)
        missed = [e for e in session.events if e["s"] > (d.get("seq") or 0)]
        session.conn = conn
        self._current[session.shard[0]] = session
        for event in missed:
            await conn.send(event)
        await self._send(session, "RESUMED", {})
        return session


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Exactly "application/json", as Discord sends it: discord.py parses nothing else.
    return web.Response(
        body=json.dumps(payload).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
