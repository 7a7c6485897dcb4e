"""GET /v1/models, GET /v1/models/{id}."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..protocol import responses as R
from ..protocol.errors import bad_request, model_not_found

router = APIRouter()

FORMATS = ("default", "openrouter", "huggingface")


def _check_format(fmt: str | None) -> None:
    if fmt is not None and fmt not in FORMATS:
        raise bad_request("format: Input should be 'default', 'openrouter' or 'huggingface'", "format")


@router.get("/v1/models")
async def list_models(request: Request, format: str | None = None) -> Response:
    _check_format(format)
    reg = request.app.state.registry
    data = [R.Model(id=mid, created=m.created) for mid, m in reg.ids()]
    return Response(R.dump(R.ModelList(data=data)), media_type="application/json")


@router.get("/v1/models/{model_id:path}")
async def retrieve_model(request: Request, model_id: str, format: str | None = None) -> Response:
    _check_format(format)
    m = request.app.state.registry.get(model_id)
    if m is None:
        raise model_not_found(model_id)
    return Response(R.dump(R.Model(id=model_id, created=m.created)), media_type="application/json")
