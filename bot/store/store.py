"""The store: channels, messages, decisions and platform state on SQLite or PostgreSQL."""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from sqlalchemy import bindparam, create_engine, event, func, insert, select, update
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot import outcomes
from bot.domain import ChannelRef, IncomingMessage, utcnow
from bot.store.documents import DocumentsMixin
from bot.store.feedback import FeedbackMixin
from bot.store.forget import KNOWN, ForgettingMixin
from bot.store.models import Channel, DecisionRecord, ForgottenMessage, Message, PlatformState, ReplySource
from bot.store.pending import SET_OUTCOME, OutcomesMixin

log = logging.getLogger(__name__)
T = TypeVar("T")


class StoreError(RuntimeError):
    """The database could not be reached or written after retries."""


@dataclass(frozen=True)
class ChannelSettings:
    """A channel's settings as the core reads them."""

    pk: int
    platform: str
    channel_id: str
    name: str
    enabled: bool
    muted: bool
    talkativeness: int
    history_size: int


@dataclass(frozen=True)
class StoredMessage:
    """A stored message as the window builder and exports read it."""

    pk: int
    platform_message_id: str
    author_id: str
    display_name: str
    text: str
    created_at: datetime
    is_bot: bool
    from_assistant: bool
    # How it ended (bot/outcomes.py); None while a decision is owed.
    outcome: str | None = None
    # The platform id of the message it replies to (for the bot's replies: the message answered).
    reply_to: str | None = None


@dataclass(frozen=True)
class DecisionRow:
    """What the store keeps of one decision."""

    message_pk: int | None
    p_speak: float
    threshold: float
    spoke: bool
    forced: bool
    runtime: str
    model_id: str
    latency_ms: float
    outcome: str


def sqlite_url(path: str | Path) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{Path(path).expanduser().resolve()}"


def sqlite_file(url: str) -> Path | None:
    """The database file a SQLite URL names; None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


# What ``store.url`` may name (the error for anything else says so).
SUPPORTED_URLS = "sqlite:///PATH or postgresql://USER@HOST/DB"


def check_url(url: str) -> None:
    """Raise a StoreError naming what is wrong with a store URL: an unsupported database or a missing driver."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        return
    if scheme in ("postgresql", "postgresql+psycopg"):
        if importlib.util.find_spec("psycopg") is None:
            raise StoreError(
                "store.url: PostgreSQL needs its driver (psycopg 3), which is not installed: "
                "pip install 'chime-bot[postgres]'"
            )
        return
    what = f"unsupported database {scheme!r}" if scheme else f"not a database URL: {url!r}"
    raise StoreError(f"store.url: {what}; use {SUPPORTED_URLS}")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and enforced foreign keys."""
    check_url(url)
    if url.startswith("postgresql://"):
        # psycopg 3 is the driver we install; plain postgresql:// would ask for psycopg2.
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 15})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=15000")
            # Deleted rows are overwritten with zeros, not left readable in free pages.
            cur.execute("PRAGMA secure_delete=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def with_retries(what: str, fn: Callable[[], T], retries: int = 3, delay_s: float = 0.5, where: str = "store") -> T:
    """``fn()``, retried while the database is locked or unreachable; then a StoreError naming ``what``."""
    for attempt in range(1, retries + 1):
        try:
            return fn()
        except IntegrityError:
            raise
        except DBAPIError as e:  # OperationalError (locked, unreachable) is one of these
            if attempt == retries:
                raise StoreError(f"{where}: {what} failed after {attempt} attempts: {e.orig!r}") from e
            log.warning("%s: %s failed (%s), retrying", where, what, type(e.orig).__name__)
            time.sleep(delay_s * attempt)
    raise AssertionError("unreachable")


class Store(ForgettingMixin, OutcomesMixin, FeedbackMixin, DocumentsMixin):
    """Synchronous data access; the core calls it from one worker thread, in arrival order."""

    def __init__(self, url: str, *, retries: int = 3, retry_delay_s: float = 0.5) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        self._retries = retries
        self._retry_delay_s = retry_delay_s
        self._sqlite = url.startswith("sqlite")
        # A pooled SQLite connection keeps writing to a file that was deleted or replaced,
        # and all of it is lost at exit: the file's identity is checked before each use.
        self._sqlite_file = sqlite_file(url)
        self._sqlite_inode = (
            self._sqlite_file.stat().st_ino if self._sqlite_file and self._sqlite_file.exists() else None
        )

    def _check_file(self, what: str) -> None:
        if self._sqlite_file is None:
            return
        if self._sqlite_inode is None:  # created by the first connection: remember it from now on
            if self._sqlite_file.exists():
                self._sqlite_inode = self._sqlite_file.stat().st_ino
            return
        try:
            same = self._sqlite_file.stat().st_ino == self._sqlite_inode
        except FileNotFoundError:
            same = False
        if not same:
            raise StoreError(
                f"store: {what} refused: the database file {self._sqlite_file} was deleted or replaced "
                "while chime was running; restart chime to open the current file"
            )

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def _run(self, what: str, fn: Callable[[Session], T], *, durable: bool = True) -> T:
        """Run ``fn`` in a transaction, retrying a locked or unreachable database.

        ``durable`` False: the commit does not wait for the disk (see ``_wait_for_disk``).
        """
        self._check_file(what)

        def transaction() -> T:
            with self._session.begin() as session:
                self._wait_for_disk(session.connection(), durable)
                return fn(session)

        return with_retries(what, transaction, self._retries, self._retry_delay_s)

    def _run_core(self, what: str, fn: Callable[[Connection], T], *, durable: bool | None = True) -> T:
        """``_run`` on a plain connection, for the hot path's prepared Core statements.

        Every message and decision passes here: an ORM session's set-up and unit of work
        cost more CPU than the statements themselves. ``durable`` None: ``fn`` only reads,
        so nothing is set about the commit (one statement less per read).
        """
        self._check_file(what)

        def transaction() -> T:
            with self.engine.begin() as conn:
                if durable is not None:
                    self._wait_for_disk(conn, durable)
                return fn(conn)

        return with_retries(what, transaction, self._retries, self._retry_delay_s)

    def _wait_for_disk(self, conn: Connection, durable: bool) -> None:
        """Make the transaction's commit wait for the disk, or not (only the hot path's writes don't).

        A commit that waits for the disk costs a disk flush (5 to 50 ms on a shared VM disk),
        and SQLite's writes are one at a time. The hot path's writes (a message stored, a
        decision and its outcome) skip it: they still survive a crash of chime itself, and
        what a power loss may take back is only the newest of them, which platforms deliver
        again (read-back starts from the newest stored message; Matrix's sync token is
        written durably, after them). Everything else, deletions and forget-me above all,
        waits for the disk, which also makes every earlier commit durable.
        """
        if self._sqlite:
            # SQLite (WAL): a per-connection level, set before the transaction's first write.
            level = "FULL" if durable else "NORMAL"
            if conn.info.get("synchronous") != level:
                conn.exec_driver_sql(f"PRAGMA synchronous={level}")
                conn.info["synchronous"] = level
        elif not durable:
            conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")

    # --- channels -------------------------------------------------------------

    def channel(self, ref: ChannelRef, *, talkativeness: int = 50, history_size: int = 40) -> ChannelSettings:
        """The channel's settings, creating the channel with the given defaults on first sight."""

        def known(conn: Connection) -> ChannelSettings | None:
            # Read at every message: a prepared Core statement, a plain row (no ORM object to build).
            row = conn.execute(_CHANNEL, {"platform": ref.platform, "channel_id": ref.channel_id}).first()
            if row is not None and ref.name in ("", row.name) and ref.server in (None, row.server_id):
                return ChannelSettings(*row[:-1])
            return None  # new, renamed or moved: written below

        def fn(s: Session) -> ChannelSettings:
            row = self._channel_row(s, ref)
            if row is None:
                now = utcnow()
                row = Channel(
                    platform=ref.platform,
                    channel_id=ref.channel_id,
                    name=ref.name,
                    server_id=ref.server,
                    enabled=True,
                    muted=False,
                    talkativeness=talkativeness,
                    history_size=history_size,
                    created_at=now,
                    updated_at=now,
                )
                s.add(row)
                s.flush()
            else:
                if ref.name and row.name != ref.name:
                    row.name = ref.name
                if ref.server and row.server_id != ref.server:
                    row.server_id = ref.server  # a channel stored before servers were recorded
            return _settings(row)

        settings = self._run_core("channel", known, durable=None)
        if settings is not None:
            return settings
        try:
            return self._run("channel", fn)
        except IntegrityError:
            # First seen on two threads (or processes) at once: the other one created it.
            return self._run("channel", fn)

    def update_channel(self, ref: ChannelRef, **fields: object) -> ChannelSettings:
        """Change settings (enabled, muted, talkativeness, history_size) of a known channel."""
        allowed = {"enabled", "muted", "talkativeness", "history_size", "name"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown channel setting(s): {sorted(unknown)}")

        def fn(s: Session) -> ChannelSettings:
            row = self._channel_row(s, ref)
            if row is None:
                raise KeyError(f"unknown channel {ref.key}")
            for k, v in fields.items():
                setattr(row, k, v)
            row.updated_at = utcnow()
            return _settings(row)

        return self._run("update_channel", fn)

    def find_channel(self, key: str) -> ChannelSettings | None:
        """A channel by ``platform:channel_id``, or by its id or name alone when that is unique."""

        def fn(s: Session) -> ChannelSettings | None:
            platform, sep, cid = key.partition(":")
            if sep:
                row = s.scalar(select(Channel).where(Channel.platform == platform, Channel.channel_id == cid))
                if row is not None:
                    return _settings(row)
            rows = s.scalars(select(Channel).where((Channel.channel_id == key) | (Channel.name == key))).all()
            return _settings(rows[0]) if len(rows) == 1 else None

        return self._run("find_channel", fn)

    @staticmethod
    def _channel_row(s: Session, ref: ChannelRef) -> Channel | None:
        return s.scalar(select(Channel).where(Channel.platform == ref.platform, Channel.channel_id == ref.channel_id))

    # --- messages -------------------------------------------------------------

    def add_message(
        self,
        msg: IncomingMessage,
        *,
        channel_pk: int,
        from_assistant: bool = False,
        forced: bool = False,
        outcome: str | None = None,
    ) -> int | None:
        """Store a message; returns its key, or None when it was stored before or deleted (tombstoned).

        ``outcome`` None means a decision is owed on it (see bot/outcomes.py).
        """

        def fn(conn: Connection) -> int | None:
            return self._insert_message(conn, _message_values(msg, channel_pk, from_assistant, forced, outcome))

        try:
            # Not waited for on disk unless it is already decided (history): see _wait_for_disk.
            return self._run_core("add_message", fn, durable=outcome is not None)
        except IntegrityError:
            # Two deliveries raced past the existence check: the first one won.
            return None

    def add_messages(self, msgs: list[IncomingMessage], *, channel_pk: int, outcome: str | None = None) -> int:
        """Store many messages of one channel in one transaction (a backfill); returns how many were new."""

        def fn(s: Session) -> int:
            by_id = {m.message_id: m for m in msgs}  # a batch naming one id twice keeps its last
            for part in _chunks(list(by_id), 500):
                platform = msgs[0].channel.platform
                known = s.scalars(
                    select(Message.platform_message_id).where(
                        Message.platform == platform, Message.platform_message_id.in_(part)
                    )
                ).all()
                gone = s.scalars(
                    select(ForgottenMessage.platform_message_id).where(
                        ForgottenMessage.platform == platform, ForgottenMessage.platform_message_id.in_(part)
                    )
                ).all()
                for mid in (*known, *gone):
                    by_id.pop(mid, None)
            rows = [Message(**_message_values(m, channel_pk, False, False, outcome)) for m in by_id.values()]
            s.add_all(rows)
            s.flush()
            return len(rows)

        if len({m.channel.platform for m in msgs}) > 1:
            raise ValueError("add_messages: one platform per batch")
        return self._run("add_messages", fn) if msgs else 0

    @staticmethod
    def _insert_message(conn: Connection, values: dict[str, object]) -> int | None:
        """Insert a message unless it was stored or deleted before; its key, or None.

        Prepared Core statements: this runs for every message, and the ORM's unit of work
        costs more CPU than the insert itself.
        """
        ids = {"platform": values["platform"], "message_id": values["platform_message_id"]}
        if conn.execute(KNOWN, ids).scalar():
            return None
        return conn.execute(_INSERT_MESSAGE, values).inserted_primary_key[0]

    def edit_message(self, platform: str, message_id: str, text: str, edited_at: datetime) -> bool:
        """Apply an edit; False when the message is unknown."""

        def fn(s: Session) -> bool:
            res = s.execute(
                update(Message)
                .where(Message.platform == platform, Message.platform_message_id == message_id)
                .values(text=text, edited_at=edited_at)
            )
            return res.rowcount > 0

        return self._run("edit_message", fn)

    def get_message(self, platform: str, message_id: str) -> StoredMessage | None:
        """One stored message by its platform id."""

        def fn(s: Session) -> StoredMessage | None:
            row = s.scalar(
                select(Message).where(Message.platform == platform, Message.platform_message_id == message_id)
            )
            return _stored(row) if row is not None else None

        return self._run("get_message", fn)

    def recent_messages(
        self, channel_pk: int, limit: int, *, min_pk: int = 0, max_pk: int | None = None
    ) -> list[StoredMessage]:
        """The channel's last ``limit`` messages with ``min_pk`` <= key <= ``max_pk``, oldest first."""

        def fn(conn: Connection) -> list[StoredMessage]:
            # Plain rows from a prepared Core statement, not ORM objects: every decision reads
            # a whole window, and an object per message costs more CPU than the query itself.
            params = {"channel_pk": channel_pk, "min_pk": min_pk, "max_pk": max_pk, "limit": limit}
            rows = conn.execute(_RECENT if max_pk is not None else _RECENT_TO_END, params).all()
            return [StoredMessage(*r) for r in reversed(rows)]

        return self._run_core("recent_messages", fn, durable=None)

    def all_messages(self, channel_pk: int) -> list[StoredMessage]:
        """Every stored message of a channel, oldest first."""

        def fn(s: Session) -> list[StoredMessage]:
            rows = s.scalars(select(Message).where(Message.channel_pk == channel_pk).order_by(Message.id)).all()
            return [_stored(r) for r in rows]

        return self._run("all_messages", fn)

    # --- decisions --------------------------------------------------------------

    def record_decision(
        self, channel_pk: int, row: DecisionRow, reply: IncomingMessage | None = None, sources: Sequence[int] = ()
    ) -> None:
        """Keep one decision, its message's outcome and the reply it sent (with the messages it rests on), at once."""

        def fn(conn: Connection) -> None:
            if reply is not None:
                reply_pk = self._insert_message(conn, _message_values(reply, channel_pk, True, False, outcomes.OWN))
                # A source deleted meanwhile is gone from the store: nothing to link (the FK would refuse it).
                known = conn.scalars(select(Message.id).where(Message.id.in_(sources))).all() if sources else []
                if reply_pk is not None and known:
                    conn.execute(insert(ReplySource), [{"reply_pk": reply_pk, "source_pk": pk} for pk in known])
            conn.execute(_INSERT_DECISION, {"channel_pk": channel_pk, "created_at": utcnow(), **row.__dict__})
            if row.message_pk is not None:
                conn.execute(SET_OUTCOME, {"pk": row.message_pk, "new_outcome": row.outcome})

        # A reply sent is waited for on disk (it must not be sent twice); a silent decision is not.
        self._run_core("record_decision", fn, durable=reply is not None)

    def decisions(self, channel_pk: int, limit: int = 100) -> list[DecisionRow]:
        """The channel's latest decisions, newest first."""

        def fn(s: Session) -> list[DecisionRow]:
            rows = s.scalars(
                select(DecisionRecord)
                .where(DecisionRecord.channel_pk == channel_pk)
                .order_by(DecisionRecord.id.desc())
                .limit(limit)
            ).all()
            return [
                DecisionRow(
                    message_pk=r.message_pk,
                    p_speak=r.p_speak,
                    threshold=r.threshold,
                    spoke=r.spoke,
                    forced=r.forced,
                    runtime=r.runtime,
                    model_id=r.model_id,
                    latency_ms=r.latency_ms,
                    outcome=r.outcome,
                )
                for r in rows
            ]

        return self._run("decisions", fn)

    def counts(self, channel_pk: int) -> tuple[int, int]:
        """(messages, decisions) stored for a channel."""

        def fn(s: Session) -> tuple[int, int]:
            m = s.scalar(select(func.count()).select_from(Message).where(Message.channel_pk == channel_pk))
            d = s.scalar(
                select(func.count()).select_from(DecisionRecord).where(DecisionRecord.channel_pk == channel_pk)
            )
            return int(m or 0), int(d or 0)

        return self._run("counts", fn)

    # --- platform state ---------------------------------------------------------

    def get_state(self, platform: str, key: str) -> str | None:
        """A platform's stored value for ``key``."""
        return self._run(
            "get_state",
            lambda s: s.scalar(
                select(PlatformState.value).where(PlatformState.platform == platform, PlatformState.key == key)
            ),
        )

    def set_state(self, platform: str, key: str, value: str) -> None:
        """Store a platform's value for ``key``."""

        def fn(s: Session) -> None:
            row = s.get(PlatformState, (platform, key))
            if row is None:
                s.add(PlatformState(platform=platform, key=key, value=value, updated_at=utcnow()))
            else:
                row.value = value
                row.updated_at = utcnow()

        self._run("set_state", fn)


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _message_values(
    msg: IncomingMessage, channel_pk: int, from_assistant: bool, forced: bool, outcome: str | None
) -> dict[str, object]:
    """A messages row's columns (every one but the key), for an insert."""
    return {
        "channel_pk": channel_pk,
        "platform": msg.channel.platform,
        "platform_message_id": msg.message_id,
        "author_id": msg.author_id,
        "display_name": msg.display_name,
        "text": msg.text,
        "created_at": msg.created_at,
        "edited_at": None,
        "reply_to": msg.reply_to,
        "mentions": list(msg.mentions),
        "is_bot": msg.is_bot,
        "from_assistant": from_assistant,
        "forced": forced,
        "outcome": outcomes.OWN if from_assistant else outcome,
    }


def _settings(row: Channel) -> ChannelSettings:
    return ChannelSettings(
        pk=row.id,
        platform=row.platform,
        channel_id=row.channel_id,
        name=row.name,
        enabled=row.enabled,
        muted=row.muted,
        talkativeness=row.talkativeness,
        history_size=row.history_size,
    )


# ChannelSettings' fields, in its order.
_SETTINGS_COLUMNS = (
    Channel.id,
    Channel.platform,
    Channel.channel_id,
    Channel.name,
    Channel.enabled,
    Channel.muted,
    Channel.talkativeness,
    Channel.history_size,
)
# StoredMessage's fields, in its order.
_STORED_COLUMNS = (
    Message.id,
    Message.platform_message_id,
    Message.author_id,
    Message.display_name,
    Message.text,
    Message.created_at,
    Message.is_bot,
    Message.from_assistant,
    Message.outcome,
    Message.reply_to,
)


def _stored(row: Message) -> StoredMessage:
    return StoredMessage(
        pk=row.id,
        platform_message_id=row.platform_message_id,
        author_id=row.author_id,
        display_name=row.display_name,
        text=row.text,
        created_at=row.created_at,
        is_bot=row.is_bot,
        from_assistant=row.from_assistant,
        outcome=row.outcome,
        reply_to=row.reply_to,
    )


# The hot path's statements, built once (building and caching a statement per call costs
# more CPU than SQLite takes to run it). Executed as Core (``_run_core``).
_CHANNEL = select(*_SETTINGS_COLUMNS, Channel.server_id).where(
    Channel.platform == bindparam("platform"), Channel.channel_id == bindparam("channel_id")
)
_INSERT_MESSAGE = insert(Message)
_INSERT_DECISION = insert(DecisionRecord)
# A channel's newest messages from min_pk (up to max_pk), newest first.
_RECENT_TO_END = (
    select(*_STORED_COLUMNS)
    .where(Message.channel_pk == bindparam("channel_pk"), Message.id >= bindparam("min_pk"))
    .order_by(Message.id.desc())
    .limit(bindparam("limit"))
)
_RECENT = _RECENT_TO_END.where(Message.id <= bindparam("max_pk"))
