"""Validated API requests -> the engine's generation parameters."""

from __future__ import annotations

from ..engine.sampler import SamplingParams
from ..engine.sequence import GenerationParams
from ..protocol.errors import bad_request


def _logit_bias(raw: dict[str, float] | None, n_vocab: int) -> dict[int, float]:
    out: dict[int, float] = {}
    for k, v in (raw or {}).items():
        tid = int(k)
        if not 0 <= tid < n_vocab:
            raise bad_request(f"logit_bias: token id {tid} is outside this model's vocabulary (0..{n_vocab - 1})", "logit_bias")
        out[tid] = float(v)
    return out


def _sampling(r, n_vocab: int, logprobs: bool, top_logprobs: int, defaults: dict[str, float]) -> SamplingParams:
    """``defaults``: the served model's recommended temperature/top_p, used where the request has none
    (empty with ``wafer serve --sampling-defaults api``: the API's 1.0)."""
    return SamplingParams(
        temperature=defaults.get("temperature", 1.0) if r.temperature is None else r.temperature,
        top_p=defaults.get("top_p", 1.0) if r.top_p is None else r.top_p,
        seed=r.seed,
        logit_bias=_logit_bias(r.logit_bias, n_vocab),
        frequency_penalty=r.frequency_penalty or 0.0,
        presence_penalty=r.presence_penalty or 0.0,
        logprobs=logprobs,
        top_logprobs=top_logprobs,
    )


def chat_params(r, n_vocab: int, defaults: dict[str, float] | None = None) -> GenerationParams:
    return GenerationParams(
        sampling=_sampling(r, n_vocab, bool(r.logprobs), (r.top_logprobs or 0) if r.logprobs else 0, defaults or {}),
        max_new_tokens=r.max_new_tokens,
        min_new_tokens=r.min_new_tokens,
        stop=r.stop_list,
        n=r.n or 1,
    )


def completion_params(r, n_vocab: int, defaults: dict[str, float] | None = None) -> GenerationParams:
    want = r.logprobs is not None
    n = r.n or 1
    best_of = r.best_of if r.best_of and r.best_of > n else None
    mx = r.max_tokens
    return GenerationParams(
        sampling=_sampling(r, n_vocab, want, r.logprobs or 0, defaults or {}),
        # OpenAI's legacy default for /v1/completions is 16 tokens; Cerebras documents none, so
        # unset means "up to the context" as in chat (documented in docs/api.md).
        max_new_tokens=None if mx is None or mx < 0 else mx,
        min_new_tokens=r.min_tokens or 0,
        stop=r.stop_list,
        n=n,
        best_of=best_of,
        prompt_logprobs=bool(r.echo) and want,
    )
