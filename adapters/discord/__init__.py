"""chime on Discord (discord.py 2.x): ``create_adapter(service, cfg)`` is what ``chime run`` calls."""

from adapters.discord.adapter import DiscordAdapter, check_config, create_adapter

__all__ = ["DiscordAdapter", "check_config", "create_adapter"]
