"""Display names that stay distinguishable: the first member to use a name keeps it, others get a tag.

Discord lets anyone pick any nickname, so two members (or a member and the bot) can
look identical in the prompt. The first user id seen with a name in a guild claims it
(persistently, in the store's platform state); anyone else using the same name gets a
short tag from their user id, e.g. ``Ann (4821)``. Names are compared after Unicode
normalisation and case folding so that look-alikes such as "ANN" or full-width letters match.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Awaitable, Callable

from bot.store import StoreError

log = logging.getLogger(__name__)

PLATFORM = "discord"
TAG_CHARS = 7  # " (1234)"


def name_key(name: str) -> str:
    """The comparison form of a display name."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return " ".join("".join(c for c in folded if unicodedata.category(c)[0] not in "CZ" or c == " ").split())


GetState = Callable[[str, str], Awaitable[str | None]]
SetState = Callable[[str, str, str], Awaitable[None]]


class NameRegistry:
    """Decides the name each author appears under, per scope (a guild, or one DM)."""

    def __init__(self, get_state: GetState, set_state: SetState, max_chars: int) -> None:
        self._get = get_state
        self._set = set_state
        self._max_chars = max_chars
        self._owners: dict[tuple[str, str], str] = {}

    def reserve(self, scope: str, name: str, owner_id: str) -> None:
        """Claim ``name`` for ``owner_id`` without touching the store (the bot's own names)."""
        key = name_key(name)
        if key:
            self._owners[(scope, key)] = owner_id

    async def display_name(self, scope: str, user_id: str, name: str) -> str:
        """``name`` if ``user_id`` owns it (or it is free, which claims it), else ``name (tag)``."""
        key = name_key(name)
        if not key:
            return f"user {user_id[-4:]}"
        owner = await self._owner(scope, key)
        if owner is None:
            # setdefault: another message may have claimed the name while the store was read.
            owner = self._owners.setdefault((scope, key), user_id)
            if owner == user_id:
                await self._remember(scope, key, user_id)
        if owner == user_id:
            return name
        return f"{name[: max(1, self._max_chars - TAG_CHARS)]} ({user_id[-4:]})"

    async def _owner(self, scope: str, key: str) -> str | None:
        owner = self._owners.get((scope, key))
        if owner is not None:
            return owner
        try:
            owner = await self._get(PLATFORM, _state_key(scope, key))
        except StoreError as e:
            log.warning("name owners unavailable (%s); using those seen since start-up", e)
            return None
        if owner is not None:
            self._owners.setdefault((scope, key), owner)
        return owner

    async def _remember(self, scope: str, key: str, user_id: str) -> None:
        try:
            await self._set(PLATFORM, _state_key(scope, key), user_id)
        except StoreError as e:
            log.warning("name owner not stored (%s); kept until restart", e)


def _state_key(scope: str, key: str) -> str:
    return f"name:{scope}:{key}"[:255]
