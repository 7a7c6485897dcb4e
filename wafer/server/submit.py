"""Shared by the completion routes: model lookup, submission errors, usage."""

from __future__ import annotations

from fastapi import Request

from ..engine.engine import ContextOverflow, QueueFull
from ..engine.events import RequestDone
from ..engine.sequence import GenerationParams
from ..protocol import responses as R
from ..protocol.errors import context_length_exceeded, model_not_found, queue_exceeded
from .bridge import EngineStream
from .registry import ServedModel


def find_model(request: Request, model_id: str) -> ServedModel:
    served = request.app.state.registry.get(model_id)
    if served is None:
        raise model_not_found(model_id)
    return served


def submit(stream: EngineStream, prompt: list[int], params: GenerationParams, rid: str, arrival: float) -> int:
    try:
        return stream.submit(prompt, params, rid, arrival)
    except ContextOverflow as e:
        raise context_length_exceeded(str(e)) from e
    except QueueFull as e:
        raise queue_exceeded(headers={"retry-after": "1"}) from e


def usage_of(done: RequestDone) -> R.Usage:
    u = done.usage
    return R.Usage.make(u.prompt_tokens, u.completion_tokens, cached_tokens=u.cached_tokens,
                        reasoning_tokens=u.reasoning_tokens,
                        accepted_prediction_tokens=u.accepted_prediction_tokens,
                        rejected_prediction_tokens=u.rejected_prediction_tokens)
