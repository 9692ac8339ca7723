"""The ``/assistant`` slash-command group: each subcommand runs one of the core's commands."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import discord
from discord import app_commands

GROUP_NAME = "assistant"

# Runs the core command line (e.g. "talkativeness 30") for the interaction and answers it;
# ``learn`` also passes the file it was given.
RunCommand = Callable[..., Awaitable[None]]


def build_group(run: RunCommand) -> app_commands.Group:
    """The ``/assistant`` group with the core's commands as subcommands."""
    group = app_commands.Group(
        name=GROUP_NAME,
        description="Steer the assistant in this channel",
        allowed_contexts=app_commands.AppCommandContext(guild=True, dm_channel=True),
    )

    @group.command(name="status", description="Show this channel's settings and what is stored")
    async def status(interaction: discord.Interaction) -> None:
        await run(interaction, "status")

    @group.command(name="mute", description="Stop speaking in this channel (admin)")
    async def mute(interaction: discord.Interaction) -> None:
        await run(interaction, "mute")

    @group.command(name="unmute", description="Speak again in this channel (admin)")
    async def unmute(interaction: discord.Interaction) -> None:
        await run(interaction, "unmute")

    @group.command(name="talkativeness", description="How readily it speaks unasked (admin)")
    @app_commands.describe(level="0 = only when addressed, 50 = default, 100 = always")
    async def talkativeness(interaction: discord.Interaction, level: app_commands.Range[int, 0, 100]) -> None:
        await run(interaction, f"talkativeness {level}")

    @group.command(name="history", description="How many recent messages it reads when deciding (admin)")
    @app_commands.describe(messages="number of messages, 1 to 1000")
    async def history(interaction: discord.Interaction, messages: app_commands.Range[int, 1, 1000]) -> None:
        await run(interaction, f"history {messages}")

    @group.command(name="why", description="The last 10 decisions: p_speak against the threshold, and any 👎 (admin)")
    async def why(interaction: discord.Interaction) -> None:
        await run(interaction, "why")

    @group.command(name="forget", description="Delete this channel's stored history (admin)")
    async def forget(interaction: discord.Interaction) -> None:
        await run(interaction, "forget")

    @group.command(name="forget-me", description="Delete every message it stored from you")
    async def forget_me(interaction: discord.Interaction) -> None:
        await run(interaction, "forget-me")

    @group.command(name="learn", description="Learn a Markdown or text file for this channel's memory (admin)")
    @app_commands.describe(file="a .md or .txt file, UTF-8, up to 1 MB")
    async def learn(interaction: discord.Interaction, file: discord.Attachment) -> None:
        await run(interaction, "learn", file)

    @group.command(name="unlearn", description="Forget one of this channel's documents (admin)")
    @app_commands.describe(name="the document's name, as 'documents' lists it")
    async def unlearn(interaction: discord.Interaction, name: str) -> None:
        await run(interaction, f"unlearn {name}")

    @group.command(name="documents", description="List this channel's documents")
    async def documents(interaction: discord.Interaction) -> None:
        await run(interaction, "documents")

    @group.command(name="help", description="List the commands")
    async def help_(interaction: discord.Interaction) -> None:
        await run(interaction, "help")

    return group
