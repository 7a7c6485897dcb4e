"""Concurrency, disconnects and admission control through HTTP."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from conftest import MODEL_ID, Server, serve_args


def test_16_concurrent_streams(base_url, server):
    async def one(client: httpx.AsyncClient, i: int):
        body = {
            "model": MODEL_ID,
            "messages": [{"role": "user", "content": f"Count from {i} to {i + 20}."}],
            "max_completion_tokens": 24 + i,
            "temperature": 0,
            "stream": True,
        }
        chunks = []
        async with client.stream("POST", "/v1/chat/completions", json=body) as r:
            assert r.status_code == 200
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    chunks.append(json.loads(line[6:]))
        return i, chunks

    async def main():
        async with httpx.AsyncClient(base_url=base_url, timeout=300) as c:
            return await asyncio.gather(*(one(c, i) for i in range(16)))

    results = asyncio.run(main())
    ids = set()
    for i, chunks in results:
        assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
        final = chunks[-1]
        assert final["choices"][0]["finish_reason"] in ("stop", "length")
        n = final["usage"]["completion_tokens"]
        assert 0 < n <= 24 + i
        if final["choices"][0]["finish_reason"] == "length":
            assert n == 24 + i
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
        assert text.strip()
        ids.add(final["id"])
        assert all(c["id"] == final["id"] for c in chunks)
    assert len(ids) == 16
    st = server.wait_idle()
    assert st["kv_slots_occupied"] == st["cache_holder_slots"] and st["free_slots"] == st["slots"]


def test_stream_disconnect_frees_everything(base_url, server):
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Tell me a long story."}],
            "max_completion_tokens": 2000, "min_completion_tokens": 2000, "stream": True}
    with httpx.Client(base_url=base_url, timeout=60) as c:
        with c.stream("POST", "/v1/chat/completions", json=body) as r:
            got = 0
            for line in r.iter_lines():
                if line.startswith("data: "):
                    got += 1
                if got >= 5:
                    st = server.stats()  # still connected: the request holds a sequence and KV cells
                    assert st["running_requests"] == 1 and st["kv_cells_running"] > 0
                    break
    st = server.wait_idle(timeout=10)
    assert st["running_requests"] == 0 and st["kv_cells_running"] == 0
    assert st["kv_slots_occupied"] == st["cache_holder_slots"]
    assert st["free_slots"] == st["slots"]


def test_non_stream_disconnect_frees_everything(base_url, server):
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Tell me a long story."}],
            "max_completion_tokens": 2000, "min_completion_tokens": 2000}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(base_url + "/v1/chat/completions", json=body, timeout=httpx.Timeout(2.0, connect=5))
    st = server.wait_idle(timeout=10)
    assert st["running_requests"] == 0 and st["kv_cells_running"] == 0
    assert st["kv_slots_occupied"] == st["cache_holder_slots"]


def test_mid_prefill_disconnect(base_url, server):
    long = "word " * 3000
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": long}], "max_completion_tokens": 5, "stream": True}
    with httpx.Client(base_url=base_url, timeout=60) as c:
        with c.stream("POST", "/v1/chat/completions", json=body) as r:
            for _ in r.iter_lines():
                break  # the role chunk arrives before the prefill is done
    st = server.wait_idle(timeout=15)
    assert st["running_requests"] == 0 and st["kv_slots_occupied"] == st["cache_holder_slots"]


@pytest.fixture(scope="module")
def tiny_server(resolved_model, tmp_path_factory):
    s = Server(serve_args(resolved_model) + ["--parallel", "1", "--max-queue", "1"],
               tmp_path_factory.mktemp("tiny") / "server.log")
    yield s
    s.stop()


def test_queue_exceeded_429(tiny_server):
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Tell me a story."}],
            "max_completion_tokens": 400, "min_completion_tokens": 400}

    async def main():
        async with httpx.AsyncClient(base_url=tiny_server.url, timeout=120) as c:
            first = asyncio.create_task(c.post("/v1/chat/completions", json=body))
            await asyncio.sleep(0.5)  # running (1 slot)
            second = asyncio.create_task(c.post("/v1/chat/completions", json=body))
            await asyncio.sleep(0.3)  # waiting (queue of 1)
            third = await c.post("/v1/chat/completions", json=body)
            return third, await first, await second

    third, first, second = asyncio.run(main())
    assert third.status_code == 429
    b = third.json()
    assert b["code"] == "queue_exceeded" and b["type"] == "too_many_requests_error"
    assert first.status_code == 200 and second.status_code == 200
    assert second.json()["time_info"]["queue_time"] > 0.1
