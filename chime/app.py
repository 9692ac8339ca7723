"""The one place that wires config -> store -> runtime -> adapters, and runs the bot."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable
from pathlib import Path
from typing import Protocol

from bot.config import Config, ConfigError
from bot.service import ConversationService
from bot.store import Store
from bot.store.migrate import upgrade
from bot.store.store import with_retries
from model_runtime import Runtime, create_runtime

log = logging.getLogger("chime")


class RunnableAdapter(Protocol):
    """What ``run`` needs from an adapter: run until done, and close."""

    def run(self) -> Awaitable[None]: ...

    def close(self) -> Awaitable[None]: ...


def prepare_store(config: Config) -> str:
    """Create the data directory if needed and apply pending migrations; returns the store URL."""
    url = config.store_url()
    if url.startswith("sqlite"):
        config.resolved_data_dir().mkdir(parents=True, exist_ok=True)
    # Locked, unreachable or unwritable: retried like every store call, then one clear error.
    with_retries("migrations", lambda: upgrade(url), where=f"store {_redact(url)}")
    return url


def build_runtime(config: Config) -> Runtime:
    """The configured runtime, in a worker process if ``runtime.isolate``; says what to install if it is missing."""
    try:
        if getattr(config.runtime, "isolate", False):
            from model_runtime.worker import create_isolated_runtime

            return create_isolated_runtime(config.runtime, assistant_name=config.assistant.name)
        return create_runtime(config.runtime, assistant_name=config.assistant.name)
    except ImportError as e:
        extra = {"llama_cpp": "cpu", "transformers": "gpu", "openai": "server"}.get(config.runtime.kind, "")
        raise ConfigError(
            f"runtime.kind={config.runtime.kind}: its library is not installed ({e.name or e}); "
            f"install chime-bot[{extra}] or choose another runtime.kind"
        ) from None


def build_adapters(service: ConversationService, config: Config) -> list[RunnableAdapter]:
    """Instantiate the enabled adapters; platform SDKs are imported only for enabled ones."""
    adapters: list[RunnableAdapter] = []
    cfg = config.adapters
    if cfg.discord.enabled:
        from adapters.discord import create_adapter as create_discord

        adapters.append(create_discord(service, cfg.discord))
    if cfg.matrix.enabled:
        from adapters.matrix import create_adapter as create_matrix

        adapters.append(create_matrix(service, cfg.matrix))
    if cfg.console.enabled:
        from adapters.console import ConsoleAdapter

        adapters.append(ConsoleAdapter(service, speaker=cfg.console.default_speaker))
    if not adapters:
        raise ConfigError("adapters: none is enabled (enable console, discord or matrix)")
    return adapters


async def run_bot(config: Config, runtime: Runtime | None = None) -> int:
    """Run every enabled adapter until they end or SIGTERM/SIGINT arrives; then stop cleanly."""
    url = prepare_store(config)
    runtime = runtime or build_runtime(config)
    log.info("runtime %s (%s); store %s", runtime.name, runtime.model_id, _redact(url))
    service = ConversationService(Store(url), runtime, config)
    adapters = build_adapters(service, config)
    await service.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    tasks = [asyncio.create_task(_guarded(a), name=type(a).__name__) for a in adapters]
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([stopper, asyncio.gather(*tasks)], return_when=asyncio.FIRST_COMPLETED)
    if stop.is_set():
        log.info("stop requested: finishing")
    # Decisions already running finish while the adapters can still send their replies.
    await service.finish()
    for a in adapters:
        try:
            await a.close()
        except Exception:
            log.exception("closing %s failed", type(a).__name__)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    stopper.cancel()
    await service.close()
    runtime.close()
    return 0


async def _guarded(adapter: RunnableAdapter) -> None:
    try:
        await adapter.run()
    except asyncio.CancelledError:
        raise
    except Exception:
        # One platform failing must not take the others down.
        log.exception("adapter %s stopped with an error", type(adapter).__name__)


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def with_data_dir(config: Config, data_dir: Path | None) -> Config:
    """The config with ``data_dir`` overridden from the command line."""
    return config if data_dir is None else config.model_copy(update={"data_dir": data_dir})
