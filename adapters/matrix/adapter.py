"""The Matrix adapter: log in, sync forever (resuming from the stored token), reply, type, reconnect."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import aiohttp
from nio import (
    AsyncClient,
    AsyncClientConfig,
    LoginError,
    MatrixRoom,
    RoomSendError,
    SyncError,
    WhoamiError,
)
from nio.crypto import ENCRYPTION_ENABLED

from adapters.matrix.events import PLATFORM
from adapters.matrix.handlers import SyncHandler
from bot.config import ConfigError, MatrixConfig
from bot.domain import ChannelRef, IncomingMessage, SentMessage, utcnow
from bot.service import ConversationService
from bot.store import StoreError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Network trouble that a reconnect can cure (nio itself retries a couple of times first).
NETWORK_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)
# Answers that no retry can cure: the credentials are wrong or were revoked.
_FATAL_CODES = {"M_UNKNOWN_TOKEN", "M_MISSING_TOKEN", "M_FORBIDDEN", "M_USER_DEACTIVATED"}
_MAX_REPLY_CHARS = 16_000
# While the homeserver cannot be reached, sync is retried at most this far apart, so the
# bot answers again within seconds of its return (a failed sync costs one request).
SYNC_RETRY_MAX_S = 2.0
_TYPING_REFRESH_S = 20


class _Stopped(Exception):
    """close() was called while waiting."""


def check_settings(cfg: MatrixConfig) -> tuple[str | None, str | None]:
    """The access token and password from the environment; a ConfigError for what stops the adapter before it connects."""
    access_token, password = _env(cfg.access_token_env), _env(cfg.password_env)
    if not access_token and not password:
        raise ConfigError(
            f"adapters.matrix: no credentials; set ${cfg.access_token_env or 'MATRIX_ACCESS_TOKEN'} "
            f"(access_token_env) or the variable named by password_env"
        )
    if password and not access_token and not cfg.user_id:
        raise ConfigError("adapters.matrix.user_id: needed to log in with a password")
    if cfg.e2ee and not ENCRYPTION_ENABLED:
        raise ConfigError("adapters.matrix.e2ee: needs matrix-nio[e2e] installed (pip install 'chime-bot[matrix-e2e]')")
    if cfg.e2ee and cfg.store_dir is None:
        raise ConfigError("adapters.matrix.store_dir: E2EE needs a directory that persists its keys")
    return access_token, password


class MatrixAdapter:
    """A chime participant on a Matrix homeserver (matrix-nio)."""

    def __init__(self, service: ConversationService, cfg: MatrixConfig) -> None:
        self.service = service
        self.cfg = cfg
        self._access_token, self._password = check_settings(cfg)
        store_args = self._store_args()
        self.client = AsyncClient(cfg.homeserver, cfg.user_id, config=self._client_config(), **store_args)
        self.handler = SyncHandler(service, self.client, cfg, self._send_notice)
        self._stop = asyncio.Event()
        # Set while run() is not running (so close() before run() does not wait).
        self._stopped = asyncio.Event()
        self._stopped.set()
        service.register(PLATFORM, self)

    def _client_config(self) -> AsyncClientConfig:
        return AsyncClientConfig(
            encryption_enabled=self.cfg.e2ee,
            store_sync_tokens=False,
            max_limit_exceeded=self.cfg.max_rate_limit_retries,
            max_timeouts=2,
            backoff_factor=0.5,
            max_timeout_retry_wait_time=self.cfg.reconnect_max_delay_s,
            request_timeout=60,
        )

    def _store_args(self) -> dict[str, Any]:
        if not self.cfg.e2ee or self.cfg.store_dir is None:
            return {}
        store_dir = self.cfg.store_dir.expanduser()
        store_dir.mkdir(parents=True, exist_ok=True)
        return {"store_path": str(store_dir)}

    # --- lifecycle --------------------------------------------------------------

    async def run(self) -> None:
        """Log in, then sync until close(); network errors are retried with backoff."""
        self._stopped.clear()
        try:
            await self._login()
            await self._sync_loop()
        except _Stopped:
            pass
        finally:
            self._stopped.set()

    async def close(self) -> None:
        """Stop syncing, let pending replies go out (briefly), and close the connection."""
        self._stop.set()
        # The sync loop finishes the event it is on before the connection goes.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), timeout=10)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.service.drain(), timeout=10)
        if self.handler.notices:  # command answers still on their way
            await asyncio.wait(set(self.handler.notices), timeout=5)
        await self.client.close()

    async def _login(self) -> None:
        """Log in; a refused credential stops the adapter, anything else (a 5xx, a network error) is retried."""
        delay = 1.0
        while True:
            failure = await self._try_login()
            if failure is None:
                break
            status, what = failure
            if status in _FATAL_CODES:
                raise ConfigError(f"adapters.matrix: {what} ({status})")
            log.warning("matrix: %s (%s); retrying in %.0f s", what, status, delay)
            await self._sleep(delay)
            delay = min(delay * 2, self.cfg.reconnect_max_delay_s)
        log.info("matrix: logged in as %s (device %s)", self.client.user_id, self.client.device_id)

    async def _try_login(self) -> tuple[str | None, str] | None:
        """One login attempt; None on success, else (errcode, what failed)."""
        if self._access_token:
            self.client.access_token = self._access_token
            who = await self._retrying(self.client.whoami, "whoami")
            if isinstance(who, WhoamiError):
                return who.status_code, "the homeserver rejected the access token"
            self.client.restore_login(who.user_id, who.device_id or self.cfg.device_id or "", self._access_token)
            return None
        key = f"{self.cfg.user_id}:device_id"
        self.client.device_id = self.cfg.device_id or await self._get_state(key) or ""
        login = functools.partial(self.client.login, self._password, device_name=self.cfg.device_name)
        resp = await self._retrying(login, "login")
        if isinstance(resp, LoginError):
            return resp.status_code, f"login as {self.cfg.user_id} failed"
        # Reuse the device next time: one device per bot, not one per start.
        await self._set_state(key, resp.device_id)
        return None

    async def _sync_loop(self) -> None:
        token_key = f"{self.client.user_id}:next_batch"
        token = await self._get_state(token_key)
        sync_filter = {
            "room": {
                "timeline": {"limit": self.cfg.timeline_limit},
                "state": {"lazy_load_members": False},
                "ephemeral": {"not_types": ["*"]},
            },
            "presence": {"not_types": ["*"]},
        }
        # Resuming from a stored token, the first sync asks for every room's full state too:
        # members, power levels and encryption are otherwise only known from changes.
        full_state: bool | None = token is not None
        errors = 0
        resumed = False
        while True:
            timeout = self.cfg.sync_timeout_ms if token and not full_state else 0
            sync = functools.partial(self.client.sync, timeout, sync_filter, since=token, full_state=full_state)
            resp = await self._retrying(sync, "sync", max_delay=SYNC_RETRY_MAX_S)
            if isinstance(resp, SyncError):
                if resp.status_code in _FATAL_CODES:
                    raise ConfigError(f"adapters.matrix: the homeserver refused to sync ({resp.status_code})")
                # A proxy's 502 while the homeserver restarts: retried as soon as a network error would be.
                delay = min(2.0**errors, SYNC_RETRY_MAX_S)
                errors += 1
                log.warning("matrix: sync failed (%s); retrying in %.0f s", resp, delay)
                await self._sleep(delay)
                continue
            errors = 0
            unstored = self.service.unstored
            await self.handler.handle(resp, initial=token is None)
            await self._e2ee_upkeep()
            if self.service.unstored != unstored:
                # The store refused some of it: the same batch is asked for again, not skipped.
                log.warning("matrix: a sync batch was not fully stored; reading it again")
                self.handler.seen.clear()
                await self._sleep(5)
                continue
            # Saved only after the batch is stored: a crash replays it (de-duplicated), never skips it.
            token = resp.next_batch
            full_state = None
            try:
                await self._set_state(token_key, token)
            except StoreError as e:  # a restart then replays from an older position (de-duplicated)
                log.error("matrix: sync position not saved: %s", e)
            if not resumed:
                # The rooms are known now, so replies can go out: decide what the last run left undecided.
                resumed = True
                await self.service.resume_pending(PLATFORM)

    async def _retrying(self, fn: Any, what: str, max_delay: float | None = None) -> Any:
        """Await ``fn()`` until it succeeds or close() is called, backing off on network errors.

        The delay starts at 1 s and doubles up to ``max_delay`` (default: reconnect_max_delay_s).
        """
        cap = min(max_delay or self.cfg.reconnect_max_delay_s, self.cfg.reconnect_max_delay_s)
        delay = min(1.0, cap)
        failures = 0
        while True:
            try:
                result = await self._until_stopped(fn())
            except NETWORK_ERRORS as e:
                failures += 1
                # The first failure is a warning; an outage's later retries would flood the log.
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(level, "matrix: %s failed (%s: %s); retrying in %.0f s", what, type(e).__name__, e, delay)
                await self._sleep(delay)
                delay = min(delay * 2, cap)
                continue
            if failures:
                log.info("matrix: %s works again after %d failures", what, failures)
            return result

    async def _until_stopped(self, aw: Awaitable[T]) -> T:
        if self._stop.is_set():
            if asyncio.iscoroutine(aw):
                aw.close()
            raise _Stopped
        task = asyncio.ensure_future(aw)
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, *NETWORK_ERRORS):
                await task
            raise _Stopped
        return task.result()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        if self._stop.is_set():
            raise _Stopped

    async def _e2ee_upkeep(self) -> None:
        """Share and fetch keys between syncs (what nio's sync_forever does); a no-op without E2EE."""
        if self.client.olm is None:
            return
        try:
            await self.client.send_to_device_messages()
            if self.client.should_upload_keys:
                await self.client.keys_upload()
            if self.client.should_query_keys:
                await self.client.keys_query()
            if self.client.should_claim_keys:
                await self.client.keys_claim(self.client.get_users_for_key_claiming())
        except NETWORK_ERRORS as e:
            log.warning("matrix: key exchange failed (%s); retried after the next sync", type(e).__name__)

    async def _get_state(self, key: str) -> str | None:
        return await self.service.ops.get_state(PLATFORM, key)

    async def _set_state(self, key: str, value: str) -> None:
        await self.service.ops.set_state(PLATFORM, key, value)

    # --- ReplySender --------------------------------------------------------------

    async def send_reply(self, channel: ChannelRef, text: str, reply_to: IncomingMessage) -> SentMessage | None:
        """Send ``text`` as an m.text reply to the trigger, inside its thread if it had one."""
        relates: dict[str, Any] = {"m.in_reply_to": {"event_id": reply_to.message_id}}
        root = self.handler.threads.get(reply_to.message_id)
        if root:
            relates = {"rel_type": "m.thread", "event_id": root, "is_falling_back": False, **relates}
        if len(text) > _MAX_REPLY_CHARS:
            # Far beyond any max_tokens a config would set; one event stays well under Matrix's 64 KB.
            log.warning("matrix: a %d-character reply in %s cut to %d", len(text), channel.key, _MAX_REPLY_CHARS)
        content = {
            "msgtype": "m.text",
            "body": text[:_MAX_REPLY_CHARS],
            "m.relates_to": relates,
            "m.mentions": {"user_ids": [reply_to.author_id]},
        }
        # The transaction id follows from the message answered: if a crash came between
        # sending and recording, the answer sent again at the next start is deduplicated
        # by the homeserver instead of appearing twice.
        tx_id = "chime-reply-" + hashlib.sha256(reply_to.message_id.encode()).hexdigest()[:32]
        event_id = await self._send(channel.channel_id, content, tx_id)
        return SentMessage(message_id=event_id, created_at=utcnow()) if event_id else None

    async def edit_reply(self, channel: ChannelRef, sent: SentMessage, text: str, reply_to: IncomingMessage) -> bool:
        """Replace the text of a reply being streamed with an m.replace edit."""
        body = text[:_MAX_REPLY_CHARS]
        new_content = {"msgtype": "m.text", "body": body, "m.mentions": {"user_ids": [reply_to.author_id]}}
        content = {
            "msgtype": "m.text",
            "body": f"* {body}",  # what clients without edits show
            "m.new_content": new_content,
            "m.relates_to": {"rel_type": "m.replace", "event_id": sent.message_id},
            "m.mentions": {},  # the edit pings nobody again
        }
        return await self._send(channel.channel_id, content) is not None

    @contextlib.asynccontextmanager
    async def typing(self, channel: ChannelRef) -> AsyncIterator[None]:
        """Show the bot as typing in the room (refreshed) while a reply is generated."""
        room_id = channel.channel_id
        if not self.handler.can_post(room_id):
            yield
            return
        # The first notice runs alongside the reply, and always goes out before "stopped
        # typing" (a fast reply must not cancel it before it reached the server).
        first = asyncio.create_task(self._typing(room_id, True))
        refresher = asyncio.create_task(self._keep_typing(room_id))
        try:
            yield
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            await first
            await self._typing(room_id, False)

    async def _keep_typing(self, room_id: str) -> None:
        while True:
            await asyncio.sleep(_TYPING_REFRESH_S)
            await self._typing(room_id, True)

    async def _typing(self, room_id: str, state: bool) -> None:
        # Typing is a courtesy: failures are logged quietly and never delay the reply much.
        try:
            # Turning typing off precedes the reply, so it may hold the reply up only briefly.
            await asyncio.wait_for(
                self.client.room_typing(room_id, typing_state=state, timeout=(_TYPING_REFRESH_S + 10) * 1000),
                10 if state else 3,
            )
        except NETWORK_ERRORS as e:
            log.debug("matrix: typing notice in %s failed: %s", room_id, type(e).__name__)

    async def _send_notice(self, room: MatrixRoom, text: str, reply_to: IncomingMessage) -> None:
        """Answer a command with an m.notice reply (bots' convention: not part of the conversation)."""
        content = {
            "msgtype": "m.notice",
            "body": text[:_MAX_REPLY_CHARS],
            "m.relates_to": {"m.in_reply_to": {"event_id": reply_to.message_id}},
            "m.mentions": {"user_ids": [reply_to.author_id]},
        }
        await self._send(room.room_id, content)

    async def _send(self, room_id: str, content: dict[str, Any], tx_id: str | None = None) -> str | None:
        """Send one m.room.message; the event id, or None (logged) when it could not be sent."""
        if self._stop.is_set() and self.client.client_session is None:
            log.warning("matrix: closed; nothing sent to %s", room_id)
            return None
        if not self.handler.can_post(room_id):
            log.warning("matrix: not posting in %s (not joined, or encrypted without E2EE)", room_id)
            return None
        try:
            resp = await self.client.room_send(
                room_id, "m.room.message", content, tx_id=tx_id, ignore_unverified_devices=True
            )
        except NETWORK_ERRORS as e:
            log.error("matrix: sending to %s failed: %s: %s", room_id, type(e).__name__, e)
            return None
        if isinstance(resp, RoomSendError):
            log.error("matrix: the homeserver refused a message to %s: %s", room_id, resp)
            return None
        return resp.event_id


def _env(var: str | None) -> str | None:
    return os.environ.get(var) or None if var else None
