"""Feedback from the room: which reactions say "you spoke out of turn"."""

from __future__ import annotations

THUMBS_DOWN = "\N{THUMBS DOWN SIGN}"
# What taking a 👎 back did (adding one answers with bot/store/feedback.py's results).
REMOVED = "removed"
NOTHING_TO_REMOVE = "nothing_to_remove"
# Skin tones (U+1F3FB..U+1F3FF) and the emoji presentation selector change how a 👎 looks, not what it says.
_MODIFIERS = {chr(c) for c in range(0x1F3FB, 0x1F400)} | {"\N{VARIATION SELECTOR-16}"}


def is_thumbs_down(emoji: str) -> bool:
    """Whether a reaction's emoji (Discord's name, Matrix's key) is a 👎, in any skin tone."""
    return "".join(ch for ch in emoji.strip() if ch not in _MODIFIERS) == THUMBS_DOWN
