"""The outcome every stored message ends with (``messages.outcome``); NULL while a decision is owed.

A message without an outcome is decided again at the next start (``resume_pending``).
"""

# Decided: the runtime scored the message (a row in ``decisions`` says how).
SILENT = "silent"
SENT = "sent"
EMPTY = "empty"  # it was to speak but wrote nothing usable
SEND_FAILED = "send_failed"
ERROR = "error"
# A newer message's decision took over: it sees this one in its window.
SUPERSEDED = "superseded"
# Gated: no decision was taken.
MUTED = "muted"
DISABLED = "disabled"
BOT = "bot"  # written by a bot (conversation.ignore_bots)
BLANK = "blank"  # no text
STALE = "stale"  # a forced question older than conversation.forced_freshness_s
HISTORY = "history"  # from before the bot joined: context only
# Not a person's message: the assistant's own reply.
OWN = "own"
# Stored before outcomes were recorded (migration 0003).
LEGACY = "legacy"
