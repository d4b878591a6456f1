"""The voice-assistant backend: HTTP, WebSocket, Wyoming and metrics in one process.

OpenAI-compatible HTTP, a WebSocket for incremental text, Wyoming for Home Assistant,
and Prometheus metrics, all in one asyncio event loop::

    from rtvoice.server import ServerConfig, create_app, serve

    serve(ServerConfig(voices_dir=Path("engines"), wyoming_port=10200))

``create_app(config)`` gives the Starlette app to run under any ASGI server; its
lifespan loads the voices and starts the Wyoming listener.

The configuration classes import without the server's packages (Starlette, uvicorn,
...), so the CLI can offer ``rtvoice serve`` without them; ``create_app``, ``serve`` and
``uvicorn_config`` import them when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .config import LimitsConfig, ServerConfig

if TYPE_CHECKING:
    from .app import create_app
    from .runner import serve, uvicorn_config

__all__ = ["LimitsConfig", "ServerConfig", "create_app", "serve", "uvicorn_config"]
_LAZY = {"create_app": ".app", "serve": ".runner", "uvicorn_config": ".runner"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
