"""The web playground at ``/`` (static files shipped in the package, no build step, nothing fetched
from elsewhere) and ``GET /wafer/models``, what the playground and ``wafer chat`` know about each
served model beyond ``/v1/models``: its recommended sampling settings and what it can do."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from ..chat.tools import supports_tool_calls

STATIC = Path(__file__).with_name("static")

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8",
                        headers={"cache-control": "no-cache"})


@router.get("/wafer/models")
async def served_models(request: Request) -> JSONResponse:
    reg = request.app.state.registry
    data = []
    for mid, m in reg.ids():
        rec = m.recommended
        data.append({
            "id": mid,
            "model": m.id,  # the served model an alias points at
            "recommended": {k: v for k, v in (("temperature", rec.temperature), ("top_p", rec.top_p),
                                              ("top_k", rec.top_k), ("repetition_penalty", rec.repetition_penalty))
                            if v is not None},
            "recommended_source": rec.source or None,
            "defaults": dict(m.defaults),  # what a request that omits temperature/top_p gets
            "context_length": m.engine.ctx_size,
            "reasoning": m.reasoning.name if m.reasoning else None,
            "reasoning_default_format": m.reasoning.default_format if m.reasoning else None,
            "native_tools": supports_tool_calls(m.template.source),
        })
    return JSONResponse({"object": "list", "data": data})


def install(app) -> None:
    app.include_router(router)
    app.mount("/playground", StaticFiles(directory=STATIC), name="playground")
