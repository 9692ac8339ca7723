"""The one place that wires config -> store -> runtime -> adapters, and runs the bot."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol, TypeVar

from bot.config import Config, ConfigError
from bot.service import ConversationService
from bot.store import Store, StoreError, check_url
from bot.store.migrate import upgrade
from bot.store.store import with_retries
from chime.datadir import check_writable
from model_runtime import Runtime, RuntimeError_, create_runtime
from model_runtime.options import ChatOptions, RuntimeOptions
from model_runtime.preflight import RUNTIME_LIBRARIES, check_options, missing_library

log = logging.getLogger("chime")
T = TypeVar("T")

# How long a thread may hold the GIL while others wait for it (Python's default is 5 ms).
# The bot's threads mostly wait on sockets and the database and need the GIL for a moment
# after each wait; behind a busy thread, each such moment waited up to 5 ms, which
# measured as hundreds of milliseconds per decision at 125 decisions/s (benchmarks/scale.py).
SWITCH_INTERVAL_S = 0.001

NO_ADAPTER = "adapters: none is enabled (enable console, discord or matrix)"
# The platform adapters and the extra that installs each one's library.
_PLATFORM_EXTRAS = {"discord": "discord", "matrix": "matrix"}


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
    """The decider (``runtime.decider``), in a worker process if it ``isolate``s; says what to install if it is missing."""
    return _runtime(config.runtime.decider, config, "runtime.decider")


def build_responder(config: Config, decider: Runtime) -> Runtime:
    """The runtime that writes replies: the decider itself (one loaded model) unless ``runtime.responder`` names another."""
    responder = config.runtime.responder
    if config.runtime.shared or responder is None:
        return decider
    return _runtime(responder, config, "runtime.responder")


def _runtime(options: RuntimeOptions | ChatOptions, config: Config, key: str) -> Runtime:
    try:
        if getattr(options, "isolate", False):
            from model_runtime.worker import create_isolated_runtime

            return create_isolated_runtime(options, assistant_name=config.assistant.name)
        return create_runtime(options, assistant_name=config.assistant.name)
    except ImportError as e:
        raise ConfigError(missing_library(options.kind, e.name or str(e), key)) from None


def build_adapters(service: ConversationService, config: Config) -> list[RunnableAdapter]:
    """Instantiate the enabled adapters; platform SDKs are imported only for enabled ones."""
    adapters: list[RunnableAdapter] = []
    cfg = config.adapters
    for name in _PLATFORM_EXTRAS:
        section = getattr(cfg, name)
        if section.enabled:
            adapters.append(_with_platform(name, lambda m, s=section: m.create_adapter(service, s)))
    if cfg.console.enabled:
        from adapters.console import ConsoleAdapter

        adapters.append(ConsoleAdapter(service, speaker=cfg.console.default_speaker))
    if not adapters:
        raise ConfigError(NO_ADAPTER)
    return adapters


def _with_platform(name: str, fn: Callable[..., T]) -> T:
    """``fn(adapters.<name>)``; a ConfigError naming the extra to install when the platform's SDK is missing."""
    try:
        return fn(importlib.import_module(f"adapters.{name}"))
    except ImportError as e:
        raise ConfigError(
            f"adapters.{name}.enabled: its library is not installed ({e.name or e}); "
            f"install chime-bot[{_PLATFORM_EXTRAS[name]}] or disable it"
        ) from None


def startup_problems(config: Config) -> list[str]:
    """What would stop ``run`` before it connects or loads a model; ``config check`` reports the same."""
    problems: list[str] = []
    checks: list[Callable[[], object]] = [
        lambda: check_url(config.store_url()),
        lambda: check_writable(config.resolved_data_dir()),
        lambda: _check_runtime(config.runtime.decider, "runtime.decider"),
    ]
    if config.runtime.responder is not None:
        responder = config.runtime.responder
        checks.append(lambda: _check_runtime(responder, "runtime.responder"))
    cfg = config.adapters
    if not (cfg.console.enabled or cfg.discord.enabled or cfg.matrix.enabled):
        problems.append(NO_ADAPTER)
    for name in _PLATFORM_EXTRAS:
        section = getattr(cfg, name)
        if section.enabled:
            checks.append(lambda n=name, s=section: _with_platform(n, lambda m: m.check_config(s)))
    for check in checks:
        try:
            check()
        except (ConfigError, StoreError, RuntimeError_) as e:
            problems.append(str(e))
    return problems


def preflight(config: Config) -> None:
    """Raise one ConfigError listing every startup problem (see ``startup_problems``)."""
    problems = startup_problems(config)
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError("cannot start:\n" + "\n".join(f"  {p}" for p in problems))


def _check_runtime(options: RuntimeOptions | ChatOptions, key: str) -> None:
    libraries, _ = RUNTIME_LIBRARIES.get(options.kind, ((), ""))
    for library in libraries:
        if importlib.util.find_spec(library) is None:
            raise ConfigError(missing_library(options.kind, library, key))
    check_options(options)


def tune_interpreter() -> None:
    """Hand the GIL over every ``SWITCH_INTERVAL_S`` (the bot process; set once at start)."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)


async def run_bot(config: Config, runtime: Runtime | None = None) -> int:
    """Run every enabled adapter until they end or SIGTERM/SIGINT arrives; then stop cleanly."""
    tune_interpreter()
    url = prepare_store(config)
    runtime = runtime or build_runtime(config)
    try:
        responder = build_responder(config, runtime)
    except BaseException:
        runtime.close()
        raise
    replies = "" if responder is runtime else f"; replies by {responder.name} ({responder.model_id})"
    log.info("runtime %s (%s)%s; store %s", runtime.name, runtime.model_id, replies, _redact(url))
    service = ConversationService(Store(url), runtime, config, responder)
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
    # asyncio.wait, not gather: adapters cancelled below must not leave an unretrieved CancelledError.
    all_ended = asyncio.create_task(asyncio.wait(tasks))
    await asyncio.wait([stopper, all_ended], return_when=asyncio.FIRST_COMPLETED)
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
    ended = await asyncio.gather(*tasks, return_exceptions=True)
    await all_ended
    stopper.cancel()
    await service.close()
    if responder is not runtime:
        responder.close()
    runtime.close()
    # The exit status says whether an adapter failed (for a console run: its input).
    return 1 if any(result is False for result in ended) else 0


async def _guarded(adapter: RunnableAdapter) -> bool:
    """Run one adapter; False when it stopped with an error (logged), so that the others go on."""
    try:
        await adapter.run()
    except asyncio.CancelledError:
        raise
    except (ConfigError, OSError) as e:
        log.error("adapter %s stopped: %s", type(adapter).__name__, e)
        return False
    except Exception:
        log.exception("adapter %s stopped with an error", type(adapter).__name__)
        return False
    return True


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def with_data_dir(config: Config, data_dir: Path | None) -> Config:
    """The config with ``data_dir`` overridden from the command line."""
    return config if data_dir is None else config.model_copy(update={"data_dir": data_dir})
