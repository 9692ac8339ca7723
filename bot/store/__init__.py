"""The store: SQLAlchemy models, data access and migrations."""

from bot.store.pending import PendingMessage
from bot.store.store import (
    ChannelSettings,
    DecisionRow,
    Store,
    StoredMessage,
    StoreError,
    check_url,
    make_engine,
    sqlite_file,
    sqlite_url,
    with_retries,
)

__all__ = [
    "ChannelSettings",
    "DecisionRow",
    "PendingMessage",
    "Store",
    "StoreError",
    "StoredMessage",
    "check_url",
    "make_engine",
    "sqlite_file",
    "sqlite_url",
    "with_retries",
]
