"""Scale-out pieces that need neither a model nor a Ray cluster: what the router matches, the in-process
ASGI relay, shared rate limits, and the deployment-wide merges of stats and metrics."""

from __future__ import annotations

import asyncio
import json

import msgpack
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from wafer.protocol.errors import APIError
from wafer.scale.asgi import relay
from wafer.scale.forward import Forwarded, describe
from wafer.scale.limits import LimitsBook, SharedKeyLimits
from wafer.scale.merge import merge_metrics, merge_stats

pytestmark = pytest.mark.model_free


def test_describe_chat_text_is_the_messages_in_order():
    body = json.dumps({"model": "m", "stream": True, "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": " there"}]},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Next?"},
    ]}).encode()
    assert describe("/v1/chat/completions", body) == ("You are terse.Hi thereHello.Next?", True)
    # turn 1 is a prefix of turn 2: what prefix routing needs
    turn1 = json.dumps({"messages": [{"role": "system", "content": "You are terse."},
                                     {"role": "user", "content": [{"type": "text", "text": "Hi there"}]}]}).encode()
    assert describe("/v1/chat/completions", body)[0].startswith(describe("/v1/chat/completions", turn1)[0])


def test_describe_completions_msgpack_and_junk():
    assert describe("/v1/completions", json.dumps({"prompt": "abc"}).encode()) == ("abc", False)
    assert describe("/v1/completions", json.dumps({"prompt": [1, 2]}).encode()) == ("<1><2>", False)
    packed = msgpack.packb({"prompt": "xyz", "stream": True})
    assert describe("/v1/completions", packed, "application/vnd.msgpack") == ("xyz", True)
    assert describe("/v1/chat/completions", b"{not json") == ("", False)
    assert describe("/v1/chat/completions", b'{"messages": "nope"}') == ("", False)
    assert describe("/v1/models", b"") == ("", False)


def _app() -> FastAPI:
    app = FastAPI()
    app.state.cancelled = asyncio.Event()

    @app.post("/echo")
    async def echo(request: Request):
        body = await request.json()
        return JSONResponse({"got": body, "q": request.url.query}, headers={"x-test": "1"})

    @app.get("/stream")
    async def stream(request: Request):
        async def gen():
            try:
                for i in range(1000):
                    yield f"data: {i}\n\n".encode()
                    await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                app.state.cancelled.set()
                raise
        return StreamingResponse(gen(), media_type="text/event-stream")

    return app


def test_relay_runs_a_request_through_the_app():
    app = _app()

    async def go():
        fwd = Forwarded("POST", "/echo", b"a=1", [(b"content-type", b"application/json")], b'{"x": 2}')
        return [m async for m in relay(app, fwd)]

    msgs = asyncio.run(go())
    assert msgs[0][0] == "start" and msgs[0][1] == 200
    assert (b"x-test", b"1") in msgs[0][2]
    assert json.loads(b"".join(m[1] for m in msgs[1:])) == {"got": {"x": 2}, "q": "a=1"}


def test_relay_consumer_leaving_is_a_client_disconnect():
    app = _app()

    async def go():
        got = []
        agen = relay(app, Forwarded("GET", "/stream"))
        async for m in agen:
            got.append(m)
            if len(got) == 4:
                break
        await agen.aclose()
        await asyncio.wait_for(app.state.cancelled.wait(), 5)  # the app saw its client go
        return got

    got = asyncio.run(go())
    assert got[0][0] == "start" and [m[1] for m in got[1:]] == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n"]


def test_limits_book_is_the_single_process_limiter():
    now = [0.0]
    book = LimitsBook({"rpm": 2, "tpm": 1000}, clock=lambda: now[0])
    a = book.admit("k", None, 400)
    assert a["tokens"] == 400 and a["headers"]["x-ratelimit-remaining-requests-minute"] == "1"
    book.settle("k", None, 400, 100)  # 300 unused tokens flow back
    assert book.headers("k", None)["x-ratelimit-remaining-tokens-minute"] == "900"
    assert "tokens" in book.admit("k", None, 100)
    refused = book.admit("k", None, 100)
    assert refused["error"]["status"] == 429 and refused["error"]["code"] == "request_quota_exceeded"
    assert refused["error"]["headers"]["retry-after"]
    assert book.admit("other", {"rpm": 5}, 10)["headers"]["x-ratelimit-limit-requests-minute"] == "5"


class _Remote:
    """Stands in for a Ray actor handle: ``actor.method.remote(...)`` awaits the book's answer."""

    def __init__(self, book):
        self.book = book
        self.calls = []

    def __getattr__(self, name):
        outer = self

        class M:
            @staticmethod
            def remote(*args):
                outer.calls.append(name)
                fut = asyncio.get_event_loop().create_future()
                fut.set_result(getattr(outer.book, name)(*args))
                return fut

        return M


def test_shared_key_limits_raise_the_429_and_carry_headers():
    actor = _Remote(LimitsBook({"rpm": 1}))

    async def go():
        kl = SharedKeyLimits(actor, "k", None)
        await kl.refresh()
        assert kl.headers()["x-ratelimit-remaining-requests-minute"] == "1"
        ticket = await kl.admit(10)
        kl.settle(ticket, 5)
        with pytest.raises(APIError) as e:
            await kl.admit(10)
        assert e.value.status == 429 and kl.headers()["x-ratelimit-remaining-requests-minute"] == "0"

    asyncio.run(go())
    assert actor.calls == ["headers", "admit", "settle", "admit"]


def test_merge_stats_sums_and_renumbers_streams():
    def one(running, occupied):
        return {"m": {"model": "m", "ctx_size": 4096, "slots": 4, "free_slots": 4 - running,
                      "running_requests": running, "kv_slots_occupied": occupied, "cache_holder_slots": occupied,
                      "cache": {"lookups": 2, "hits": 1, "hit_rate": 0.5, "token_hit_rate": 0.25,
                                "hits_by_source": {"resident": 1}},
                      "step_costs": {"x": 1}}}

    merged = merge_stats([one(1, [0, 2]), one(0, [1])])["m"]
    assert merged["ctx_size"] == 4096 and merged["slots"] == 8 and merged["free_slots"] == 7
    assert merged["running_requests"] == 1 and merged["replicas"] == 2
    assert merged["kv_slots_occupied"] == [0, 2, 5] == merged["cache_holder_slots"]
    assert merged["cache"]["hits"] == 2 and merged["cache"]["hit_rate"] == 0.5
    assert merged["cache"]["hits_by_source"] == {"resident": 2}
    assert "step_costs" not in merged


def test_merge_metrics_labels_every_sample_once_per_family():
    a = ("# HELP wafer_requests_total Requests.\n# TYPE wafer_requests_total counter\n"
         'wafer_requests_total{route="/v1/models",status="200"} 3\n'
         "# HELP wafer_ttft_seconds TTFT.\n# TYPE wafer_ttft_seconds histogram\n"
         'wafer_ttft_seconds_bucket{le="0.1"} 1\nwafer_ttft_seconds_sum 0.05\nwafer_ttft_seconds_count 1\n')
    b = "# HELP wafer_requests_total Requests.\n# TYPE wafer_requests_total counter\nwafer_requests_total 1\n"
    text = merge_metrics({"r1": a, "r2": b})
    lines = text.splitlines()
    assert lines.count("# TYPE wafer_requests_total counter") == 1
    assert 'wafer_requests_total{replica="r1",route="/v1/models",status="200"} 3' in lines
    assert 'wafer_requests_total{replica="r2"} 1' in lines
    assert lines.index('wafer_requests_total{replica="r2"} 1') < lines.index("# HELP wafer_ttft_seconds TTFT.")
    assert 'wafer_ttft_seconds_bucket{replica="r1",le="0.1"} 1' in lines
    assert 'wafer_ttft_seconds_count{replica="r1"} 1' in lines


def test_replicas_without_ray_is_a_clear_error(monkeypatch, capsys):
    import sys

    from wafer.cli.main import main

    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "ray.serve", None)
    assert main(["serve", "--replicas", "2"]) == 1
    assert "pip install 'wafer[ray]'" in capsys.readouterr().err
