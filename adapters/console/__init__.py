"""The console adapter: a terminal group chat for trying chime locally."""

from adapters.console.adapter import ConsoleAdapter

__all__ = ["ConsoleAdapter"]
