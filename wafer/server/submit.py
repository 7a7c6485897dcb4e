"""Shared by the completion routes: model lookup, limits, grammars, admission, submission errors."""

from __future__ import annotations

import asyncio
import inspect

from fastapi import Request

from ..engine.engine import ContextOverflow, QueueFull
from ..engine.grammar import Grammar, GrammarError
from ..engine.sequence import GenerationParams
from ..protocol.errors import APIError, bad_request, context_length_exceeded, model_not_found, queue_exceeded
from .bridge import EngineStream
from .registry import ServedModel


def find_model(request: Request, model_id: str) -> ServedModel:
    served = request.app.state.registry.get(model_id)
    if served is None:
        raise model_not_found(model_id)
    request.state.model = model_id
    return served


def check_parallel(served: ServedModel, params: GenerationParams) -> None:
    """``n`` (or ``best_of``) sequences run side by side: more than the server's parallel sequences is a
    400 on that parameter, whatever the context could hold."""
    n, param = (params.best_of, "best_of") if params.best_of else (params.n, "n")
    limit = served.engine.config.parallel
    if n > limit:
        raise bad_request(f"{param}: {n} sequences were requested, but this server runs at most {limit} sequences "
                          f"in parallel (wafer serve --parallel); lower {param}", param)


async def compile_grammar(served: ServedModel, text: str | None, param: str) -> Grammar | None:
    """Compile off the event loop (llguidance drops the GIL); a grammar that fails is a 400."""
    if text is None:
        return None
    try:
        return await asyncio.to_thread(served.engine.grammars.compile, text)
    except GrammarError as e:
        raise bad_request(f"The output constraint could not be compiled: {e}", param) from None


async def open_stream(request: Request, served: ServedModel, prompts: list[list[int]],
                      params: GenerationParams) -> EngineStream:
    """Charge the key's rate limits (429 when a bucket cannot pay), then an EngineStream whose close
    settles the charge against the real usage and records the request's metrics.

    The estimate is Cerebras': prompt + (max_completion_tokens, or the context left) per sequence.
    """
    policy = request.app.state.policy
    params.timeout = policy.request_timeout or None
    ctx = served.engine.ctx_size
    n = params.best_of or params.n
    mx = params.max_new_tokens
    estimate = sum(len(p) + n * (mx if mx is not None and mx >= 0 else max(0, ctx - len(p))) for p in prompts)
    limits = getattr(request.state, "limits", None)
    try:
        ticket = limits.admit(estimate) if limits is not None else None
        if inspect.isawaitable(ticket):  # limits kept in a scaled-out deployment's state actor
            ticket = await ticket
    except APIError as e:
        policy.metrics.refused.inc(e.code)
        raise
    state = request.state

    def on_close(stream: EngineStream) -> None:
        if ticket is not None:
            limits.settle(ticket, stream.tokens_used)
        for done in stream.finished:
            policy.metrics.observe_done(served.id, done)
            served.queue_times.add(done.time_info.queue_time)
        if stream.finished:
            state.prompt_tokens = sum(d.usage.prompt_tokens for d in stream.finished)
            state.completion_tokens = sum(d.usage.completion_tokens for d in stream.finished)
            state.cached_tokens = sum(d.usage.cached_tokens for d in stream.finished)
        unfinished = len(stream.requests) - len(stream.finished)
        if unfinished:
            policy.metrics.finished.inc(served.id, "cancelled_or_failed", by=unfinished)

    return EngineStream(served.engine, on_close)


def submit(stream: EngineStream, prompt: list[int], params: GenerationParams, rid: str, arrival: float) -> int:
    try:
        return stream.submit(prompt, params, rid, arrival)
    except ContextOverflow as e:
        raise context_length_exceeded(str(e)) from e
    except QueueFull as e:
        raise queue_exceeded(headers={"retry-after": "1"}) from e

