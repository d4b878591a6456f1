"""The app factory: :func:`create_app` builds the Starlette app, its lifespan owns the voices.

The lifespan opens every voice once, starts the Wyoming listener in the same event loop,
and stores a :class:`~rtvoice.server.state.ServerState` on ``app.state.rtvoice``, which
handlers reach through :func:`~rtvoice.server.state.state_of`. On shutdown it stops the
Wyoming listener, gives running syntheses a moment to end, and closes the voices.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Final

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import openai_routes, websocket
from .config import ServerConfig
from .errors import ApiError, error_body
from .limits import Admission
from .metrics import CONTENT_TYPE, Metrics, cuda_indices
from .middleware import AmbiguousFraming, BearerAuth, BodyDeadline, RequestMetrics, refuse
from .state import ServerState, state_of
from .voices import VoiceSet

log = logging.getLogger("rtvoice.server")

SHUTDOWN_GRACE_S: Final = 5.0
"""How long shutdown waits for running syntheses before closing the voices under them."""


async def health(request: Request) -> Response:
    """``GET /health``: 200 with the voices while the server runs (no token needed)."""
    state = state_of(request)
    return JSONResponse({"status": "ok", "voices": state.voices.names, "active_streams": state.admission.active,
                         "queued_streams": state.admission.queued})


async def metrics(request: Request) -> Response:
    """``GET /metrics``: Prometheus text exposition."""
    return Response(await state_of(request).metrics.render(), media_type=CONTENT_TYPE)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return refuse(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(error_body(str(exc.detail), type="invalid_request_error", code=code),
                        status_code=exc.status_code, headers=exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    return JSONResponse(error_body("Internal server error; see the server log.", type="server_error",
                                   code="internal_error"), status_code=500)


def create_app(config: ServerConfig) -> Starlette:
    """Build the server app; nothing is loaded until its lifespan starts.

    Args:
        config: Voices, backend, token, limits and the Wyoming port.

    Returns:
        A Starlette app serving ``/v1/audio/speech``, ``/v1/audio/voices``,
        ``/v1/audio/stream`` (WebSocket), ``/health`` and ``/metrics``.
    """
    admission = Admission(config.limits)
    server_metrics = Metrics(admission)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        voices = VoiceSet.open(config)
        try:
            state = ServerState(config, voices, admission, server_metrics)
            server_metrics.watch_gpus(cuda_indices(voice.choice.device for _, voice in voices.items()))
            app.state.rtvoice = state
            wyoming = None
            if config.wyoming_port is not None:
                from .wyoming import start_wyoming

                wyoming = await start_wyoming(state, config.host, config.wyoming_port)
            try:
                yield
            finally:
                if wyoming is not None:
                    await wyoming.stop()
                if not await admission.wait_idle(SHUTDOWN_GRACE_S):
                    log.warning("closing the voices under %d running syntheses", admission.active)
        finally:
            voices.close()

    return Starlette(
        routes=[
            *openai_routes.ROUTES,
            *websocket.ROUTES,
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        middleware=[
            Middleware(RequestMetrics, metrics=server_metrics),
            Middleware(AmbiguousFraming),
            Middleware(BearerAuth, token=config.token),
            Middleware(BodyDeadline, timeout_s=config.limits.body_timeout_s),
        ],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _server_error},
        lifespan=lifespan,
    )
