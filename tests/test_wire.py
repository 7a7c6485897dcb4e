"""server/wire.py, the one path from engine events to the wire for both completion routes: steps,
failures as the client's APIError, usage and time_info totals over a call's requests."""

from __future__ import annotations

import asyncio

import pytest

from wafer.engine.events import ChoiceDelta, RequestDone, RequestFailed, TimeInfo, Usage
from wafer.server.wire import failure, steps, totals

pytestmark = pytest.mark.model_free  # needs no model file


class FakeStream:
    def __init__(self, batches):
        self.batches = batches

    async def events(self):
        for k, b in self.batches:
            yield k, b


def done(prompt, completion, cached=0, created=100.0, queue=0.1, prompt_time=0.2, completion_time=0.3, **kw):
    total = queue + prompt_time + completion_time
    return RequestDone(Usage(prompt, completion, cached, **kw), TimeInfo(queue, prompt_time, completion_time, total, created))


def test_steps_sort_events():
    d = done(3, 2)
    fail = RequestFailed(429, "waited too long", "queue_exceeded", "too_many_requests_error", "queue")
    stream = FakeStream([(0, [ChoiceDelta(0, "a"), ChoiceDelta(1, "b")]), (1, [ChoiceDelta(0, "c"), d]), (0, [fail])])

    async def collect():
        return [s async for s in steps(stream)]

    got = asyncio.run(collect())
    assert [(s.k, [e.text for e in s.deltas], s.done, s.error) for s in got[:2]] == [
        (0, ["a", "b"], None, None), (1, ["c"], d, None)]
    err = got[2].error
    assert (err.status, err.message, err.type, err.param, err.code) == (
        429, "waited too long", "too_many_requests_error", "queue", "queue_exceeded")
    assert failure(RequestFailed(503, "bye", "server_shutting_down")).body() == {
        "message": "bye", "type": "server_error", "param": None, "code": "server_shutting_down"}


def test_totals_of_one_request_are_its_own():
    usage, ti = totals([done(10, 5, cached=4, reasoning_tokens=2, accepted_prediction_tokens=1,
                             rejected_prediction_tokens=0)])
    assert usage.model_dump(exclude_none=True) == {
        "prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"accepted_prediction_tokens": 1, "rejected_prediction_tokens": 0,
                                      "reasoning_tokens": 2}}
    assert (ti.queue_time, ti.prompt_time, ti.completion_time, ti.created) == (0.1, 0.2, 0.3, 100.0)
    assert ti.total_time == pytest.approx(0.6)


def test_totals_over_prompts():
    a = done(10, 5, cached=1, created=100.0, queue=0.5, prompt_time=0.2, completion_time=1.0)
    b = done(7, 3, created=100.2, queue=0.1, prompt_time=0.3, completion_time=2.0)
    usage, ti = totals([a, b])
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (17, 8, 25)
    assert usage.prompt_tokens_details.cached_tokens == 1 and usage.completion_tokens_details is None
    assert (ti.queue_time, ti.completion_time, ti.created) == (0.5, 2.0, 100.0)
    assert ti.prompt_time == pytest.approx(0.5)
    assert ti.total_time == pytest.approx(100.2 + 2.4 - 100.0)  # first arrival to last end
    usage, _ = totals([done(1, 1, reasoning_tokens=3), done(1, 1)])
    assert usage.completion_tokens_details.reasoning_tokens == 3  # counters that are set are summed
