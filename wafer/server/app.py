"""The FastAPI application: routes, Cerebras-shaped errors, lifecycle."""

from __future__ import annotations

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
from . import chat, completions, models
from .http import error_response
from .registry import Registry

log = logging.getLogger("wafer.server")

_STATUS_TYPES = {404: "not_found_error", 405: "invalid_request_error"}


def create_app(registry: Registry, on_ready: Callable[[], None] | None = None) -> FastAPI:
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

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> Response:
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

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/wafer/stats")
    async def stats() -> JSONResponse:
        import asyncio

        out = {}
        for mid, m in registry.models.items():
            out[mid] = await asyncio.to_thread(m.engine.stats)
        return JSONResponse(out)

    return app
