"""``client.completions``: ``POST /v1/completions`` (text completions)."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Literal, Optional, Union

from .._types import NOT_GIVEN, Body, Headers, NotGiven, Omit, Query, Timeout, omit
from ..types.completion import Completion
from ._base import APIResource, create_options

__all__ = ["Completions", "AsyncCompletions"]


class Completions(APIResource):
    """The same object serves both clients: with ``AsyncCerebras`` its methods return awaitables."""

    _api_methods = ("create",)

    def create(
        self,
        *,
        model: str,
        prompt: Union[str, List[str], Iterable[int], Iterable[Iterable[int]]],
        best_of: Optional[int] | Omit = omit,
        echo: Optional[bool] | Omit = omit,
        frequency_penalty: Optional[float] | Omit = omit,
        grammar_root: Optional[str] | Omit = omit,
        logit_bias: Optional[Dict[str, float]] | Omit = omit,
        logprobs: Optional[int] | Omit = omit,
        max_tokens: Optional[int] | Omit = omit,
        min_tokens: Optional[int] | Omit = omit,
        n: Optional[int] | Omit = omit,
        presence_penalty: Optional[float] | Omit = omit,
        prompt_cache_key: Optional[str] | Omit = omit,
        reasoning_format: Optional[Literal["none", "parsed", "text_parsed", "raw", "hidden"]] | Omit = omit,
        return_raw_tokens: Optional[bool] | Omit = omit,
        seed: Optional[int] | Omit = omit,
        stop: Union[str, List[str], None] | Omit = omit,
        stream: Optional[bool] | Omit = omit,
        stream_options: Optional[Dict[str, Any]] | Omit = omit,
        suffix: Optional[str] | Omit = omit,
        temperature: Optional[float] | Omit = omit,
        top_p: Optional[float] | Omit = omit,
        user: Optional[str] | Omit = omit,
        cf_ray: str | Omit = omit,
        x_amz_cf_id: str | Omit = omit,
        x_delay_time: float | Omit = omit,
        extra_headers: Headers | None = None,
        extra_query: Query | None = None,
        extra_body: Body | None = None,
        timeout: Union[Timeout, NotGiven] = NOT_GIVEN,
    ) -> Any:
        """A ``CompletionResponse``, or a ``Stream`` of them with ``stream=True``."""
        options = create_options("/v1/completions", locals())
        return self._client.request(Completion, options, stream=bool(stream), stream_cls=self._client._default_stream_cls)


AsyncCompletions = Completions
