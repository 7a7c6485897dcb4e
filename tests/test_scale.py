"""Scale-out on Ray Serve, live: ``wafer serve --replicas 2`` on a local Ray instance, SmolLM2.

Two deployments, one after the other (each starts its own local Ray instance):

* prefix routing (the default) — the API test subset passes through the ingress unchanged
  (``WAFER_TEST_URL``); 10 conversations x 3 turns keep hitting the replica holding their prefix;
  /health, /ready, /metrics and /wafer/stats cover both replicas; SIGHUP rolls the replicas while
  streams in flight finish;
* round robin (the baseline) — the same conversations lose most of their cached prefix; a key's rate
  limit holds across replicas; a replica killed mid-stream ends only its own streams, with an error
  event, a request it had not answered yet is sent to the other replica, and the deployment recovers
  with no 5xx for new requests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from conftest import MODEL_ID, ROOT, Server, serve_args

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'wafer[ray]')")

REPLICA_ARGS = ["--replicas", "2", "--threads", "1", "--parallel", "16", "--ctx-size", "4096"]
CONVERSATIONS = 10
SUBSET = ["tests/test_api_chat.py", "tests/test_api_completions.py", "tests/test_api_errors.py",
          "tests/test_stream_errors.py", "tests/test_msgpack.py", "tests/test_client_live.py"]


def start(resolved_model, tmp_path, *extra) -> Server:
    return Server(serve_args(resolved_model) + REPLICA_ARGS + list(extra), tmp_path / "scale.log", timeout=300)


@pytest.fixture(scope="module")
def prefix_deployment(resolved_model, tmp_path_factory):
    s = start(resolved_model, tmp_path_factory.mktemp("scale-prefix"))
    wait_replicas(s.url, 2)
    yield s
    s.stop(timeout=90)


def wait_replicas(url: str, n: int, timeout: float = 180, exclude: set[int] = frozenset()) -> dict:
    """Until ``n`` replicas (none with a pid in ``exclude``) report; their reports."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            reps = httpx.get(url + "/wafer/replicas", timeout=10).json()["replicas"]
        except (httpx.HTTPError, ValueError, KeyError):
            reps = {}
        live = {k: v for k, v in reps.items() if v["pid"] not in exclude}
        if len(live) >= n:
            return live
        assert time.monotonic() < deadline, f"{len(live)} of {n} replicas after {timeout} s: {reps}"
        time.sleep(0.5)


def chat(url: str, messages: list[dict], key: str = "test-key", **kw) -> httpx.Response:
    body = {"model": MODEL_ID, "messages": messages, "max_completion_tokens": 12, "temperature": 0, **kw}
    return httpx.post(url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"},
                      timeout=120)


def conversations(url: str) -> tuple[list[float], set[str]]:
    """10 conversations x 3 turns, the turns of all conversations interleaved (10 at once); per turn 2
    and 3, cached_tokens / the previous turn's prompt tokens; the replicas that took first turns."""
    topics = ["volcanoes", "tides", "bread", "chess", "rivers", "owls", "glass", "comets", "tea", "bridges"]
    convs = [[{"role": "system", "content": f"You are a guide on {t}. Conversation {i}: " + "Answer briefly. " * 30},
              {"role": "user", "content": f"Tell me one fact about {t}."}] for i, t in enumerate(topics)]
    prev = [0] * CONVERSATIONS
    coverage, first_replicas = [], set()
    with ThreadPoolExecutor(CONVERSATIONS) as pool:
        for turn in range(3):
            rs = list(pool.map(lambda c: chat(url, c), convs))
            for i, r in enumerate(rs):
                assert r.status_code == 200, r.text
                usage = r.json()["usage"]
                if turn == 0:
                    first_replicas.add(r.headers["x-wafer-replica"])
                else:
                    coverage.append(usage["prompt_tokens_details"]["cached_tokens"] / prev[i])
                prev[i] = usage["prompt_tokens"]
                convs[i] += [{"role": "assistant", "content": r.json()["choices"][0]["message"]["content"]},
                             {"role": "user", "content": f"And another one, number {turn + 2}?"}]
    return coverage, first_replicas


def finished(events: list[str]) -> int | None:
    """The completion tokens of a stream that ended normally (its last event carries the usage), else None."""
    if any('"error"' in e for e in events) or not events:
        return None
    last = json.loads(events[-1][6:])
    return (last.get("usage") or {}).get("completion_tokens") if last["choices"][0].get("finish_reason") else None


def test_api_subset_through_the_ingress(prefix_deployment):
    env = {**os.environ, "WAFER_TEST_URL": prefix_deployment.url}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *SUBSET],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


def test_prefix_routing_keeps_conversations_on_their_replica(prefix_deployment):
    coverage, first = conversations(prefix_deployment.url)
    print(f"prefix routing: cached/previous prompt per later turn: min {min(coverage):.3f}, "
          f"mean {sum(coverage) / len(coverage):.3f}; first turns on {len(first)} replicas")
    assert len(first) == 2  # new conversations spread over both replicas
    assert min(coverage) >= 0.9, coverage


def test_health_ready_metrics_and_stats_cover_the_deployment(prefix_deployment):
    url = prefix_deployment.url
    assert chat(url, [{"role": "user", "content": "hi"}]).status_code == 200
    reps = wait_replicas(url, 2)
    assert httpx.get(url + "/health").json()["replicas"] == 2
    ready = httpx.get(url + "/ready").json()
    assert ready["status"] == "ready" and MODEL_ID in ready["models"]
    text = httpx.get(url + "/metrics").text
    for rid in reps:
        assert f'replica="{rid}"' in text
    assert "wafer_replicas_reporting 2" in text and text.count("# TYPE wafer_requests_total ") == 1
    stats = prefix_deployment.stats()
    assert stats["replicas"] == 2 and stats["slots"] == 32 and stats["ctx_size"] == 4096


def test_sighup_rolls_the_replicas_and_streams_in_flight_finish(prefix_deployment):
    url = prefix_deployment.url
    before = {v["pid"] for v in wait_replicas(url, 2).values()}
    results = []

    def stream() -> None:
        body = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Count slowly."}], "stream": True,
                "max_completion_tokens": 300, "min_completion_tokens": 300, "temperature": 0}
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=300) as r:
            events = [line for line in r.iter_lines() if line.startswith("data: ")]
        results.append((r.status_code, events))

    threads = [threading.Thread(target=stream) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(3)
    prefix_deployment.proc.send_signal(signal.SIGHUP)
    during = [chat(url, [{"role": "user", "content": f"hello {i}"}]) for i in range(6)]
    for t in threads:
        t.join(300)
    after = wait_replicas(url, 2, exclude=before)
    assert not {v["pid"] for v in after.values()} & before  # every replica was replaced
    assert [r.status_code for r in during] == [200] * 6
    for status, events in results:
        assert status == 200 and finished(events) == 300, events[-2:]


@pytest.fixture(scope="module")
def round_robin_deployment(resolved_model, tmp_path_factory, prefix_deployment):
    prefix_deployment.stop(timeout=90)  # one local Ray instance at a time
    tmp = tmp_path_factory.mktemp("scale-rr")
    keys = tmp / "keys"
    keys.write_text("test-key tests\nlimited-key limited rpm=4\n")
    s = start(resolved_model, tmp, "--routing", "round-robin", "--api-keys-file", str(keys))
    wait_replicas(s.url, 2)
    yield s
    s.stop(timeout=90)


def test_round_robin_baseline_loses_the_prefix(round_robin_deployment):
    coverage, _ = conversations(round_robin_deployment.url)
    mean = sum(coverage) / len(coverage)
    print(f"round robin: cached/previous prompt per later turn: min {min(coverage):.3f}, mean {mean:.3f}")
    assert mean < 0.9  # what prefix routing wins (the shared system prompt prefix still hits half the time)


def test_rate_limit_holds_across_replicas(round_robin_deployment):
    url = round_robin_deployment.url
    rs = [chat(url, [{"role": "user", "content": "hi"}], key="limited-key", max_completion_tokens=2) for _ in range(6)]
    assert [r.status_code for r in rs] == [200] * 4 + [429] * 2  # per replica it would have been 6 x 200
    assert len({r.headers.get("x-wafer-replica") for r in rs[:4]}) == 2
    assert rs[3].headers["x-ratelimit-remaining-requests-minute"] == "0"
    assert rs[4].json()["code"] == "request_quota_exceeded"
    assert chat(url, [{"role": "user", "content": "hi"}], key="wrong").status_code in (401, 403)


def test_killed_replica_ends_only_its_streams_and_recovers(round_robin_deployment):
    url = round_robin_deployment.url
    reps = wait_replicas(url, 2)
    results: dict[int, tuple] = {}

    def stream(i: int) -> None:
        body = {"model": MODEL_ID, "messages": [{"role": "user", "content": f"Story {i}."}], "stream": True,
                "max_completion_tokens": 400, "min_completion_tokens": 400, "temperature": 0}
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=300,
                          headers={"authorization": "Bearer test-key"}) as r:
            events = [line for line in r.iter_lines() if line.startswith("data: ")]
        results[i] = (r.status_code, r.headers.get("x-wafer-replica"), events)

    def whole(i: int) -> None:  # not streamed: nothing reaches the client before the end
        r = chat(url, [{"role": "user", "content": f"Essay {i}."}], max_completion_tokens=300,
                 min_completion_tokens=300)
        results[i] = (r.status_code, r.headers.get("x-wafer-replica"), r.json())

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(4)]
    threads += [threading.Thread(target=whole, args=(i,)) for i in (4, 5)]
    for t in threads:
        t.start()
        time.sleep(0.3)
    time.sleep(4)
    victim_id, victim = sorted(reps.items())[0]
    os.kill(victim["pid"], signal.SIGKILL)
    killed = time.monotonic()
    for t in threads:
        t.join(300)
    assert len(results) == 6
    for i in (4, 5):  # the one the victim held was sent again to the other replica: the client sees a 200
        status, rid, body = results.pop(i)
        assert status == 200 and rid != victim_id and body["usage"]["completion_tokens"] == 300, body
    assert httpx.get(url + "/wafer/replicas").json()["ingress"]["retries"] >= 1
    for status, rid, events in results.values():
        assert status == 200
        if rid == victim_id:  # cut: a clean error event in the Cerebras shape, then the end
            err = json.loads(events[-1][6:])
            assert err["status_code"] == 503 and err["error"]["code"] == "service_unavailable", events[-2:]
        else:
            assert finished(events) == 400, events[-2:]
    assert {rid for _, rid, _ in results.values()} == set(reps)  # round robin: both replicas had streams
    # new requests while Ray replaces the replica, then after: no 5xx
    during = [chat(url, [{"role": "user", "content": f"hi {i}"}]).status_code for i in range(4)]
    wait_replicas(url, 2, exclude={victim["pid"]})
    recovered = time.monotonic() - killed
    print(f"replica killed: recovered (2 replicas reporting) in {recovered:.1f} s")
    after = [chat(url, [{"role": "user", "content": f"hello {i}"}]).status_code for i in range(6)]
    assert during == [200] * 4 and after == [200] * 6
    assert recovered < 120
