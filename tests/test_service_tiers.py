"""Service tiers: the echo of service_tier (and service_tier_used for auto), the waiting queue ordered
priority > default > flex, the queue_threshold header's 429s (up front from the recent queue times, and
for a request that waits too long), priority only on a dedicated endpoint. Units of the scheduler's
queue order, and HTTP through both official SDKs and raw httpx on a one-slot server."""

from __future__ import annotations

import threading
import time
from collections import deque
from types import SimpleNamespace

import httpx
import pytest
from conftest import MODEL_ID, Server, sdk_clients, serve_args

from wafer.engine.scheduler import enqueue, over_queue_threshold, queue_threshold_exceeded
from wafer.protocol.errors import APIError
from wafer.server.tiers import QueueTimes, Tier, resolve

MSG = [{"role": "user", "content": "Hi"}]


# -- units ----------------------------------------------------------------------------------------
def fake(name: str, priority: int, threshold: float | None = None, arrival: float = 0.0, admitted=None):
    return SimpleNamespace(name=name, params=SimpleNamespace(priority=priority, queue_threshold=threshold),
                           arrival=arrival, admitted=admitted)


@pytest.mark.model_free
def test_enqueue_orders_tiers_and_keeps_arrival_order_within_one():
    q: deque = deque()
    for name, p in [("f1", 2), ("d1", 1), ("f2", 2), ("p1", 0), ("d2", 1), ("p2", 0), ("f3", 2), ("d3", 1)]:
        enqueue(q, fake(name, p))
    assert [r.name for r in q] == ["p1", "p2", "d1", "d2", "d3", "f1", "f2", "f3"]
    q = deque([fake("preempted-flex", 2)])  # a preempted request goes back to the head; later ones queue as usual
    enqueue(q, fake("d", 1))
    assert [r.name for r in q] == ["d", "preempted-flex"]


@pytest.mark.model_free
def test_queue_threshold_applies_while_waiting_only():
    assert over_queue_threshold(fake("a", 2, threshold=0.5, arrival=10.0), 10.6)
    assert not over_queue_threshold(fake("a", 2, threshold=0.5, arrival=10.0), 10.4)
    assert not over_queue_threshold(fake("a", 2, threshold=0.5, arrival=10.0, admitted=10.1), 20.0)
    assert not over_queue_threshold(fake("a", 1, threshold=None, arrival=10.0), 99.0)
    ev = queue_threshold_exceeded(fake("a", 2, threshold=0.25))
    assert (ev.status, ev.code, ev.type, ev.param) == (429, "queue_exceeded", "too_many_requests_error", "queue")
    assert "250 ms" in ev.message


def request_with(headers: dict) -> SimpleNamespace:
    return SimpleNamespace(headers=headers)


@pytest.mark.model_free
def test_tier_resolution():
    none = request_with({})
    assert resolve(none, None, False) == Tier(None, "default") and Tier(None, "default").response_fields() == {}
    assert resolve(none, "auto", False).response_fields() == {"service_tier": "auto", "service_tier_used": "default"}
    assert resolve(none, "auto", True).response_fields() == {"service_tier": "auto", "service_tier_used": "priority"}
    assert resolve(none, "priority", True).order == 0 and resolve(none, "flex", False).order == 2
    with pytest.raises(APIError) as e:
        resolve(none, "priority", False)
    assert (e.value.status, e.value.param) == (400, "service_tier")
    assert resolve(request_with({"queue_threshold": "250"}), "flex", False).queue_threshold == 0.25
    assert resolve(request_with({"queue_threshold": "250"}), "default", False).queue_threshold is None  # flex/auto only
    for bad in ("49", "20001", "abc", "1.5", "", "-100"):
        with pytest.raises(APIError) as e:
            resolve(request_with({"queue_threshold": bad}), "auto", False)
        assert (e.value.status, e.value.param) == (400, "queue_threshold")


@pytest.mark.model_free
def test_queue_times_window_and_admission():
    now = [0.0]
    qt = QueueTimes(window=10.0, clock=lambda: now[0])
    assert qt.average() == 0.0
    qt.add(0.1)
    qt.add(0.5)
    assert qt.average() == pytest.approx(0.3)
    flex = Tier("flex", "flex", queue_threshold=0.2)
    with pytest.raises(APIError) as e:
        qt.admit(flex)
    assert (e.value.status, e.value.code) == (429, "queue_exceeded") and "300 ms" in e.value.message
    qt.admit(Tier("flex", "flex", queue_threshold=0.4))
    qt.admit(Tier(None, "default"))  # no threshold, no check
    now[0] = 11.0  # the window has passed: nothing recent, nothing expected
    qt.admit(flex)


# -- HTTP -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def one_slot(resolved_model, tmp_path_factory):
    """One sequence slot, so requests queue behind a long one; a dedicated endpoint (priority served)."""
    args = serve_args(resolved_model) + ["--parallel", "1", "--dedicated-endpoint", "--ctx-size", "2048",
                                         "--kv-size", "4096"]
    s = Server(args, tmp_path_factory.mktemp("tiers") / "server.log")
    yield s
    s.stop()


def chat(url: str, tier: str | None = None, threshold: int | None = None, tokens: int = 2, stream: bool = False,
         **extra) -> httpx.Response:
    body = {"model": MODEL_ID, "messages": MSG, "max_completion_tokens": tokens, "stream": stream, **extra}
    if tier:
        body["service_tier"] = tier
    headers = {"queue_threshold": str(threshold)} if threshold else {}
    return httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=300)


class Blocker:
    """A long streamed request holding the server's only slot (its end-of-text token masked) while others
    queue; ``release`` disconnects it, which cancels it and frees the slot."""

    def __init__(self, server: Server, tokens: int = 1800):
        self.server = server
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(tokens,), daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while server.stats()["running_requests"] < 1:
            assert time.time() < deadline, "the blocking request never started"
            time.sleep(0.02)

    def _run(self, tokens: int) -> None:
        body = {"model": MODEL_ID, "messages": MSG, "max_completion_tokens": tokens, "min_completion_tokens": tokens,
                "stream": True}
        with httpx.stream("POST", self.server.url + "/v1/chat/completions", json=body, timeout=300) as r:
            for _ in r.iter_raw():
                if self.stop.is_set():
                    break

    def running(self) -> bool:
        return self.thread.is_alive()

    def release(self) -> None:
        self.stop.set()
        self.thread.join(60)


def test_echo(one_slot):
    with sdk_clients(one_slot.url) as (cb, oa):
        r = cb.chat.completions.create(model=MODEL_ID, messages=MSG, max_completion_tokens=2)
        assert r.service_tier is None and "service_tier" not in r.to_dict()  # not asked: not echoed
        for tier in ("default", "flex", "priority"):
            r = cb.chat.completions.create(model=MODEL_ID, messages=MSG, max_completion_tokens=2, service_tier=tier)
            assert r.service_tier == tier and "service_tier_used" not in r.to_dict()
            assert oa.chat.completions.create(model=MODEL_ID, messages=MSG, max_completion_tokens=2,
                                              service_tier=tier).service_tier == tier
        r = cb.chat.completions.create(model=MODEL_ID, messages=MSG, max_completion_tokens=2, service_tier="auto")
        assert (r.service_tier, r.service_tier_used) == ("auto", "priority")  # the highest tier of a dedicated endpoint
        chunks = list(cb.chat.completions.create(model=MODEL_ID, messages=MSG, max_completion_tokens=2,
                                                 service_tier="auto", stream=True))
        assert all((c.service_tier, c.service_tier_used) == ("auto", "priority") for c in chunks)


def test_shared_endpoint(cerebras, http):
    """The default server is a shared endpoint: no priority tier; auto resolves to default."""
    from cerebras.cloud.sdk import BadRequestError

    with pytest.raises(BadRequestError) as e:
        cerebras.chat.completions.create(model=MODEL_ID, messages=MSG, max_completion_tokens=2, service_tier="priority")
    assert e.value.body["param"] == "service_tier" and "dedicated endpoints" in e.value.body["message"]
    r = cerebras.chat.completions.create(model=MODEL_ID, messages=MSG, max_completion_tokens=2, service_tier="auto")
    assert (r.service_tier, r.service_tier_used) == ("auto", "default")
    r = http.post("/v1/chat/completions", json={"model": MODEL_ID, "messages": MSG, "service_tier": "flex"},
                  headers={"queue_threshold": "5"})
    assert r.status_code == 400 and r.json()["param"] == "queue_threshold"


def test_queue_threshold_fails_a_request_that_waits_too_long(one_slot):
    from cerebras.cloud.sdk import RateLimitError

    blocker = Blocker(one_slot)
    t0 = time.time()
    r = chat(one_slot.url, "flex", threshold=1000)
    waited = time.time() - t0
    assert r.status_code == 429, r.text
    assert r.json() == {"message": "The request waited in the queue longer than its queue_threshold of 1000 ms.",
                        "type": "too_many_requests_error", "param": "queue", "code": "queue_exceeded"}
    assert 1.0 <= waited < 10 and blocker.running()
    assert chat(one_slot.url, "auto", threshold=1000).status_code == 429  # auto too
    with sdk_clients(one_slot.url) as (cb, _):
        with pytest.raises(RateLimitError) as e:  # streaming: the error event after the 200
            for _ in cb.chat.completions.create(model=MODEL_ID, messages=MSG, max_completion_tokens=2,
                                                service_tier="flex", stream=True,
                                                extra_headers={"queue_threshold": "1000"}):
                pass
        assert e.value.status_code == 429 and e.value.body["code"] == "queue_exceeded"
    # the header means nothing to a default-tier request: it waits its turn
    waiting = threading.Thread(target=lambda: done.append(chat(one_slot.url, "default", threshold=50)))
    done: list[httpx.Response] = []
    waiting.start()
    time.sleep(1.5)
    assert not done and blocker.running()
    blocker.release()
    waiting.join(60)
    assert done[0].status_code == 200
    one_slot.wait_idle()


def test_queue_ordered_priority_default_flex(one_slot):
    blocker = Blocker(one_slot)
    done: list[str] = []
    threads = []
    for tier in ("flex", "default", "priority", "flex", "default"):  # arrival order
        name = f"{tier}{len(threads)}"
        t = threading.Thread(target=lambda n=name, t=tier: (chat(one_slot.url, t).raise_for_status(), done.append(n)))
        t.start()
        threads.append(t)
        deadline = time.time() + 20
        while one_slot.stats()["waiting_requests"] < len(threads):  # queued in this order
            assert time.time() < deadline
            time.sleep(0.02)
    assert blocker.running(), "the blocking request ended before the others were queued"
    blocker.release()
    for t in threads:
        t.join(300)
    assert done == ["priority2", "default1", "default4", "flex0", "flex3"]
    one_slot.wait_idle()


def test_queue_threshold_refuses_up_front_when_the_queue_is_slow(one_slot):
    blocker = Blocker(one_slot)
    waited = threading.Thread(target=chat, args=(one_slot.url,))  # will wait for the blocker: a slow queue time
    waited.start()
    time.sleep(1.5)
    blocker.release()
    waited.join(60)
    t0 = time.time()
    r = chat(one_slot.url, "flex", threshold=100)  # the queue is empty now, but recent waits were long
    assert r.status_code == 429 and r.json()["code"] == "queue_exceeded" and r.headers["retry-after"] == "1"
    assert "expected queue time" in r.json()["message"] and time.time() - t0 < 5
    assert chat(one_slot.url, "flex").status_code == 200  # no threshold: queued as usual
    assert chat(one_slot.url, "default", threshold=100).status_code == 200  # not flex or auto: no threshold
