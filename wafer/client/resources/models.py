"""``client.models``: ``GET /v1/models`` and ``GET /v1/models/{model_id}``."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

from .._request import FinalRequestOptions, make_request_options
from .._types import (
    NOT_GIVEN,
    Body,
    Headers,
    NotGiven,
    Omit,
    Query,
    Timeout,
    is_given,
    omit,
)
from ..types.models import ModelListResponse, ModelRetrieveResponse
from ._base import APIResource, cerebras_headers

__all__ = ["AsyncModels", "Models"]

Format = Literal["default", "openrouter", "huggingface"]


class Models(APIResource):
    _api_methods = ("list", "retrieve")

    def _get(self, path: str, cast_to: Any, format: Any, params: dict[str, Any]) -> Any:
        headers = {**cerebras_headers(params["cf_ray"], params["x_amz_cf_id"]), **(params["extra_headers"] or {})}
        options = make_request_options(
            extra_headers=headers,
            extra_query=params["extra_query"],
            extra_body=params["extra_body"],  # a GET carries no body: ignored, as in the SDK
            timeout=params["timeout"],
            query={"format": format} if is_given(format) else {},
        )
        return self._client.request(cast_to, FinalRequestOptions.build("get", path, options))

    def list(
        self,
        *,
        format: Format | Omit = omit,
        cf_ray: str | Omit = omit,
        x_amz_cf_id: str | Omit = omit,
        extra_headers: Headers | None = None,
        extra_query: Query | None = None,
        extra_body: Body | None = None,
        timeout: Timeout | NotGiven = NOT_GIVEN,
    ) -> Any:
        """``ModelMetadataList`` (or the ``openrouter`` / ``huggingface`` list for that ``format``)."""
        return self._get("/v1/models", ModelListResponse, format, locals())

    def retrieve(
        self,
        model_id: str,
        *,
        format: Format | Omit = omit,
        cf_ray: str | Omit = omit,
        x_amz_cf_id: str | Omit = omit,
        extra_headers: Headers | None = None,
        extra_query: Query | None = None,
        extra_body: Body | None = None,
        timeout: Timeout | NotGiven = NOT_GIVEN,
    ) -> Any:
        if not model_id:
            raise ValueError(f"Expected a non-empty value for `model_id` but received {model_id!r}")
        path = "/v1/models/" + quote(str(model_id), safe="!$&'()*+,;=:@")
        if path.rsplit("/", 1)[1] in (".", ".."):
            raise ValueError(f"Invalid path segment for `model_id`: {model_id!r}")
        return self._get(path, ModelRetrieveResponse, format, locals())


AsyncModels = Models
