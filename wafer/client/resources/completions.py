"""``client.completions``: ``POST /v1/completions`` (text completions)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from .._types import NOT_GIVEN, Body, Headers, NotGiven, Omit, Query, Timeout, omit
from ..types.completion import Completion
from ._base import APIResource, create_options

__all__ = ["AsyncCompletions", "Completions"]


class Completions(APIResource):
    """The same object serves both clients: with ``AsyncCerebras`` its methods return awaitables."""

    _api_methods = ("create",)

    def create(
        self,
        *,
        model: str,
        prompt: str | list[str] | Iterable[int] | Iterable[Iterable[int]],
        best_of: int | None | Omit = omit,
        echo: bool | None | Omit = omit,
        frequency_penalty: float | None | Omit = omit,
        grammar_root: str | None | Omit = omit,
        logit_bias: dict[str, float] | None | Omit = omit,
        logprobs: int | None | Omit = omit,
        max_tokens: int | None | Omit = omit,
        min_tokens: int | None | Omit = omit,
        n: int | None | Omit = omit,
        presence_penalty: float | None | Omit = omit,
        prompt_cache_key: str | None | Omit = omit,
        reasoning_format: Literal["none", "parsed", "text_parsed", "raw", "hidden"] | None | Omit = omit,
        return_raw_tokens: bool | None | Omit = omit,
        seed: int | None | Omit = omit,
        stop: str | list[str] | None | Omit = omit,
        stream: bool | None | Omit = omit,
        stream_options: dict[str, Any] | None | Omit = omit,
        suffix: str | None | Omit = omit,
        temperature: float | None | Omit = omit,
        top_p: float | None | Omit = omit,
        user: str | None | Omit = omit,
        cf_ray: str | Omit = omit,
        x_amz_cf_id: str | Omit = omit,
        x_delay_time: float | Omit = omit,
        extra_headers: Headers | None = None,
        extra_query: Query | None = None,
        extra_body: Body | None = None,
        timeout: Timeout | NotGiven = NOT_GIVEN,
    ) -> Any:
        """A ``CompletionResponse``, or a ``Stream`` of them with ``stream=True``."""
        options = create_options("/v1/completions", locals())
        return self._client.request(Completion, options, stream=bool(stream), stream_cls=self._client._default_stream_cls)


AsyncCompletions = Completions
