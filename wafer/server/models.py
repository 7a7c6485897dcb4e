"""Model discovery: ``/v1/models`` and ``/public/v1/models``, each as a list and per id.

``format`` picks the shape: ``default`` (OpenAI's model object; the public routes' default is
Cerebras' ``PublicModel`` instead), ``openrouter`` or ``huggingface``. Every served id is listed,
aliases and ``--cerebras-ids`` included, each with the metadata of the model it answers on
(``model_card.ModelCard``). The public routes need no API key, as on Cerebras.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..protocol import model_info as M
from ..protocol import responses as R
from ..protocol.errors import bad_request, model_not_found
from .registry import ServedModel

router = APIRouter()

FORMATS = ("default", "openrouter", "huggingface")


def _check_format(fmt: str | None) -> str:
    if fmt is not None and fmt not in FORMATS:
        raise bad_request("format: Input should be 'default', 'openrouter' or 'huggingface'", "format")
    return fmt or "default"


def _one(request: Request, model_id: str, served: ServedModel, fmt: str, public: bool):
    card = served.card
    if fmt == "openrouter":
        return card.openrouter(model_id)
    if fmt == "huggingface":
        return card.huggingface(model_id)
    if public:
        return card.public(model_id, request.app.state.policy.limiter.defaults)
    return card.default(model_id)


def _list(request: Request, fmt: str, public: bool) -> Response:
    data = [_one(request, mid, m, fmt, public) for mid, m in request.app.state.registry.ids()]
    if fmt == "openrouter":
        body = M.OpenRouterModelList(data=data)
    elif fmt == "huggingface":
        body = M.HuggingFaceModelList(data=data)
    else:
        body = M.PublicModelList(data=data) if public else R.ModelList(data=data)
    return Response(R.dump(body), media_type="application/json")


def _retrieve(request: Request, model_id: str, fmt: str, public: bool) -> Response:
    served = request.app.state.registry.get(model_id)
    if served is None:
        raise model_not_found(model_id)
    return Response(R.dump(_one(request, model_id, served, fmt, public)), media_type="application/json")


@router.get("/v1/models")
async def list_models(request: Request, format: str | None = None) -> Response:
    return _list(request, _check_format(format), public=False)


@router.get("/v1/models/{model_id:path}")
async def retrieve_model(request: Request, model_id: str, format: str | None = None) -> Response:
    return _retrieve(request, model_id, _check_format(format), public=False)


@router.get("/public/v1/models")
async def list_public_models(request: Request, format: str | None = None) -> Response:
    return _list(request, _check_format(format), public=True)


@router.get("/public/v1/models/{model_id:path}")
async def retrieve_public_model(request: Request, model_id: str, format: str | None = None) -> Response:
    return _retrieve(request, model_id, _check_format(format), public=True)
