"""The FastAPI application: routes, Cerebras-shaped errors, lifecycle."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..protocol import responses as R
from ..protocol.errors import APIError, bad_request, internal_error
from . import chat, completions, models, playground
from .gate import Gate, Policy
from .http import error_response
from .openapi import install as install_openapi
from .registry import Registry

log = logging.getLogger("wafer.server")

_STATUS_TYPES = {404: "not_found_error", 405: "invalid_request_error"}


def create_app(registry: Registry, on_ready: Callable[[], None] | None = None, policy: Policy | None = None) -> FastAPI:
    policy = policy or Policy()
    for m in registry.models.values():
        if not m.fingerprint:
            m.fingerprint = R.system_fingerprint(m.path, m.id, __version__)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if on_ready:
            on_ready()
        yield
        registry.shutdown()

    app = FastAPI(title="wafer", version=__version__, lifespan=lifespan)
    app.state.registry = registry
    app.state.policy = policy
    app.add_middleware(Gate, policy=policy)

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> Response:
        request.state.error = exc.code or exc.type
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errs = exc.errors()
        first = errs[0] if errs else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return error_response(bad_request(f"{where}: {first.get('msg')}", "validation_error"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        err = APIError(exc.status_code, str(exc.detail), _STATUS_TYPES.get(exc.status_code, "invalid_request_error"))
        return error_response(err)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(internal_error(f"Internal server error: {type(exc).__name__}"))

    app.include_router(chat.router)
    app.include_router(completions.router)
    app.include_router(models.router)

    @app.get("/v1/tcp_warming")
    async def tcp_warming() -> JSONResponse:
        return JSONResponse({})

    async def engine_stats() -> dict[str, dict]:
        return {mid: await asyncio.to_thread(m.engine.stats) for mid, m in registry.models.items()}

    @app.get("/health")
    async def health() -> JSONResponse:
        """Liveness: the process answers."""
        return JSONResponse({"status": "ok"})

    @app.get("/ready")
    async def ready() -> JSONResponse:
        """Readiness: models loaded, engines answering, not draining for shutdown."""
        if policy.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        try:
            await asyncio.wait_for(engine_stats(), 5)
        except Exception:  # noqa: BLE001 - an engine that cannot answer is not ready
            return JSONResponse({"status": "engine unavailable"}, status_code=503)
        return JSONResponse({"status": "ready", "models": [k for k, _ in registry.ids()]})

    @app.get("/metrics")
    async def metrics() -> Response:
        text = policy.metrics.render(await engine_stats(), policy.draining)
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/wafer/stats")
    async def stats() -> JSONResponse:
        return JSONResponse(await engine_stats())

    playground.install(app)
    install_openapi(app)
    return app
