"""From engine events to the wire, for both completion routes.

``steps`` turns what an ``EngineStream`` delivers into ``Step``s: per engine step and request, the
text deltas, the final ``RequestDone`` and a failure already made into the ``APIError`` the client
gets (a raised error before the response starts, an error event in a stream). ``totals`` makes the
``usage`` and ``time_info`` of one API call from its requests' ``RequestDone`` events (one for a chat
completion, one per prompt for a text completion).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator

from ..engine.events import ChoiceDelta, RequestDone, RequestFailed
from ..protocol import responses as R
from ..protocol.errors import APIError
from .bridge import EngineStream


@dataclass
class Step:
    k: int  # which of the call's engine requests (the prompt's index)
    deltas: list[ChoiceDelta] = field(default_factory=list)
    done: RequestDone | None = None
    error: APIError | None = None


def failure(ev: RequestFailed) -> APIError:
    return APIError(ev.status, ev.message, ev.type, ev.param, ev.code)


async def steps(stream: EngineStream) -> AsyncIterator[Step]:
    async for k, evs in stream.events():
        step = Step(k)
        for ev in evs:
            if isinstance(ev, ChoiceDelta):
                step.deltas.append(ev)
            elif isinstance(ev, RequestDone):
                step.done = ev
            elif isinstance(ev, RequestFailed):
                step.error = failure(ev)
        yield step


def error_event(err: APIError, rid: str) -> bytes:
    """A failure after the stream started: ``data: {"error": {...}, "status_code": N}``."""
    return R.sse(R.ErrorChunk.from_error(err, rid))


def _sum(values: list[int | None]) -> int | None:
    """The sum of the counters that are set; None when none is (the detail is then left out)."""
    given = [v for v in values if v is not None]
    return sum(given) if given else None


def totals(dones: list[RequestDone]) -> tuple[R.Usage, R.TimeInfo]:
    """Usage summed over the requests; times from the first arrival to the last end (queue and
    completion time: the longest; prompt time: the sum)."""
    us = [d.usage for d in dones]
    usage = R.Usage.make(
        sum(u.prompt_tokens for u in us),
        sum(u.completion_tokens for u in us),
        cached_tokens=sum(u.cached_tokens for u in us),
        reasoning_tokens=_sum([u.reasoning_tokens for u in us]),
        accepted_prediction_tokens=_sum([u.accepted_prediction_tokens for u in us]),
        rejected_prediction_tokens=_sum([u.rejected_prediction_tokens for u in us]),
    )
    tis = [d.time_info for d in dones]
    first = min(tis, key=lambda t: t.created)
    last = max(tis, key=lambda t: t.created + t.total_time)
    time_info = R.TimeInfo(
        queue_time=max(t.queue_time for t in tis),
        prompt_time=sum(t.prompt_time for t in tis),
        completion_time=max(t.completion_time for t in tis),
        total_time=last.created + last.total_time - first.created,
        created=first.created,
    )
    return usage, time_info
