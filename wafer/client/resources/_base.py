"""What every resource shares: its client, the raw/streaming-response views of its methods, and how a
``create()`` call becomes request options."""

from __future__ import annotations

from typing import Any

from .._request import FinalRequestOptions, make_request_options
from .._response import ResponseViews
from .._types import NOT_GIVEN, is_given

__all__ = ["APIResource", "cerebras_headers", "create_options"]


class APIResource(ResponseViews):
    def __init__(self, client: Any) -> None:
        self._client = client


def cerebras_headers(cf_ray: Any, x_amz_cf_id: Any, x_delay_time: Any = None) -> dict[str, Any]:
    """The optional request headers the SDK exposes as keyword arguments (spec 1.1)."""
    headers = {"CF-RAY": cf_ray, "X-Amz-Cf-Id": x_amz_cf_id}
    if x_delay_time is not None and is_given(x_delay_time):
        headers["X-delay-time"] = str(x_delay_time)
    return {k: v for k, v in headers.items() if is_given(v)}


_NOT_BODY = frozenset({"self", "cf_ray", "x_amz_cf_id", "x_delay_time", "extra_headers", "extra_query", "extra_body", "timeout"})


def create_options(path: str, params: dict[str, Any], post_parser: Any = None) -> Any:
    """POST options from a ``create()``'s ``locals()``: the body keeps the arguments given, in signature
    order (``None`` is sent as null), the SDK's header keywords and ``extra_*`` are applied."""
    body = {k: v for k, v in params.items() if k not in _NOT_BODY and is_given(v)}
    headers = {
        **cerebras_headers(params["cf_ray"], params["x_amz_cf_id"], params.get("x_delay_time")),
        **(params["extra_headers"] or {}),
    }
    options = make_request_options(
        extra_headers=headers,
        extra_query=params["extra_query"],
        extra_body=params["extra_body"],
        timeout=params["timeout"],
        post_parser=post_parser if post_parser is not None else NOT_GIVEN,
    )
    return FinalRequestOptions.build("post", path, options, json_data=body)
