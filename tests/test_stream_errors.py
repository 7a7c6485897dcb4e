"""An engine failure after the stream started reaches the client as Cerebras' error event."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from wafer.engine.events import ChoiceDelta, RequestFailed
from wafer.chat.tools import ToolPlan
from wafer.server.chat import ChoiceOutput, _sse

pytestmark = pytest.mark.model_free  # needs no model file


class FakeStream:
    def __init__(self, batches):
        self.batches = batches

    async def events(self):
        for b in self.batches:
            yield 0, b

    def close(self):
        pass


def sse_bytes() -> bytes:
    meta = dict(id="chatcmpl-x", created=1, model="m", system_fingerprint="fp_0")
    stream = FakeStream([[ChoiceDelta(0, "Hel")], [RequestFailed(503, "The server is shutting down.", "server_shutting_down")]])

    async def collect():
        return b"".join([c async for c in _sse(None, stream, meta, [ChoiceOutput(ToolPlan(None, True, None, False))], False)])

    return asyncio.run(collect())


def test_error_event_shape():
    body = sse_bytes().decode()
    events = [e for e in body.split("\n\n") if e]
    assert events[-1].startswith('data: {"error":')
    assert '"status_code":503' in events[-1] and '"code":"server_shutting_down"' in events[-1]


def test_official_sdk_raises_from_error_event():
    from cerebras.cloud.sdk import Cerebras, InternalServerError

    raw = sse_bytes()
    transport = httpx.MockTransport(lambda req: httpx.Response(200, content=raw, headers={"content-type": "text/event-stream"}))
    with Cerebras(api_key="k", base_url="http://t", http_client=httpx.Client(transport=transport),
                  warm_tcp_connection=False, _strict_response_validation=True) as c:
        stream = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True)
        got = []
        with pytest.raises(InternalServerError) as e:
            for chunk in stream:
                got.append(chunk.choices[0].delta.content)
        assert e.value.status_code == 503 and "shutting down" in e.value.message
        assert "Hel" in got
