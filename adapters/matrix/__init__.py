"""The Matrix adapter (matrix-nio): chime as a participant in Matrix rooms."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adapters.matrix.adapter import MatrixAdapter
    from bot.config import MatrixConfig
    from bot.service import ConversationService


def create_adapter(service: ConversationService, cfg: MatrixConfig) -> MatrixAdapter:
    """Build the Matrix adapter; ``run()`` it until ``close()``."""
    from adapters.matrix.adapter import MatrixAdapter

    return MatrixAdapter(service, cfg)


def check_config(cfg: MatrixConfig) -> None:
    """Raise ConfigError for what stops the adapter before it connects: credentials, E2EE's parts."""
    from adapters.matrix.adapter import check_settings

    check_settings(cfg)


__all__ = ["check_config", "create_adapter"]
