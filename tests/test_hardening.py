"""Hardening through HTTP: API keys, rate limits and their headers, request limits and timeouts,
disconnects, request ids, /ready and /metrics, and draining on SIGTERM/SIGINT."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from conftest import MODEL_ID, ROOT, Server, serve_args
from wafer.launch import free_port

KEYS = "csk-alpha alpha\ncsk-limited limited rpm=3\ncsk-tokens tokens tpm=600\n"
ALPHA = {"Authorization": "Bearer csk-alpha"}
RL_HEADERS = [f"x-ratelimit-{what}-{kind}-{window}" for what in ("limit", "remaining", "reset")
              for kind in ("requests", "tokens") for window in ("minute", "day")]


def chat_body(content="Hi", **kw) -> dict:
    return {"model": MODEL_ID, "messages": [{"role": "user", "content": content}], "max_completion_tokens": 2,
            "temperature": 0, **kw}


@pytest.fixture(scope="module")
def gated(resolved_model, tmp_path_factory):
    d = tmp_path_factory.mktemp("gated")
    (d / "keys").write_text(KEYS)
    old = os.environ.get("WAFER_API_KEYS")
    os.environ["WAFER_API_KEYS"] = "csk-env-1,csk-env-2"
    try:
        s = Server(serve_args(resolved_model) + [
            "--api-keys-file", str(d / "keys"), "--max-body-bytes", "65536", "--max-messages", "8",
            "--request-timeout", "8", "--body-timeout", "2", "--header-timeout", "2", "--parallel", "4"],
            d / "server.log")
    finally:
        if old is None:
            os.environ.pop("WAFER_API_KEYS")
        else:
            os.environ["WAFER_API_KEYS"] = old
    yield s
    s.stop()


@pytest.fixture(scope="module")
def g(gated):
    with httpx.Client(base_url=gated.url, timeout=60) as c:
        yield c


# -- API keys -------------------------------------------------------------------------------------

def test_missing_and_wrong_keys(g):
    r = g.get("/v1/models")
    assert r.status_code == 403 and r.json() == {"detail": "Not authenticated"}
    r = g.post("/v1/chat/completions", json=chat_body(), headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert r.status_code == 403 and r.json() == {"detail": "Invalid authentication credentials"}
    r = g.post("/v1/chat/completions", json=chat_body(), headers={"Authorization": "Bearer csk-wrong"})
    assert r.status_code == 401
    assert r.json() == {"message": "Wrong API Key", "type": "invalid_request_error", "param": "api_key",
                        "code": "wrong_api_key"}
    for key in ("csk-alpha", "csk-env-1", "csk-env-2"):
        assert g.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    for path in ("/health", "/ready", "/metrics"):  # probes and scrapes need no key
        assert g.get(path).status_code == 200


def test_official_sdks_see_auth_errors(gated):
    import cerebras.cloud.sdk as cb
    import openai

    with cb.Cerebras(api_key="csk-wrong", base_url=gated.url, max_retries=0) as c:
        with pytest.raises(cb.AuthenticationError) as e:
            c.chat.completions.create(**chat_body())
        assert e.value.body["code"] == "wrong_api_key"
    with openai.OpenAI(api_key="csk-wrong", base_url=gated.url + "/v1", max_retries=0) as c:
        with pytest.raises(openai.AuthenticationError):
            c.chat.completions.create(**chat_body())
    with cb.Cerebras(api_key="csk-alpha", base_url=gated.url, max_retries=0, _strict_response_validation=True) as c:
        raw = c.chat.completions.with_raw_response.create(**chat_body())
        assert raw.headers["x-ratelimit-limit-requests-day"] == "1000000000"
        assert raw.parse().choices[0].message.content


def test_keys_never_logged(g, gated):
    g.post("/v1/chat/completions", json=chat_body(), headers={"Authorization": "Bearer csk-secret-wrong"})
    g.post("/v1/chat/completions", json=chat_body(), headers=ALPHA)
    log = gated.log_path.read_text()
    for secret in ("csk-alpha", "csk-secret-wrong", "csk-env-1", "csk-limited"):
        assert secret not in log
    lines = [json.loads(x.split("wafer.access: ", 1)[1]) for x in log.splitlines() if "wafer.access: " in x]
    assert any(x["key"] == "alpha" and x["status"] == 200 and x.get("model") == MODEL_ID for x in lines)


def test_open_server_warns_off_loopback(resolved_model, tmp_path):
    log = tmp_path / "open.log"
    with open(log, "w") as f:
        p = subprocess.Popen([sys.executable, "-m", "wafer", "serve", "--host", "0.0.0.0", "--port", str(free_port()),
                              *serve_args(resolved_model)], stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.time() + 60
        while "WARNING" not in log.read_text() and time.time() < deadline and p.poll() is None:
            time.sleep(0.1)
        assert "no API key is configured" in log.read_text()
    finally:
        p.kill()
        p.wait()


# -- rate limits ----------------------------------------------------------------------------------

def test_ratelimit_headers_on_every_v1_response(g):
    responses = [
        g.get("/v1/models", headers=ALPHA),
        g.get("/v1/models/nope", headers=ALPHA),
        g.post("/v1/chat/completions", content=b"{bad", headers=ALPHA),
        g.post("/v1/chat/completions", json=chat_body(), headers=ALPHA),
        g.post("/v1/completions", json={"model": MODEL_ID, "prompt": "a", "max_tokens": 2, "stream": True},
               headers=ALPHA),
    ]
    assert [r.status_code for r in responses] == [200, 404, 400, 200, 200]
    for r in responses:
        for h in RL_HEADERS:
            assert h in r.headers, (r.request.url, h)
        float(r.headers["x-ratelimit-reset-tokens-minute"])
        assert r.headers["x-request-id"]


def test_request_quota_429(g, gated):
    import cerebras.cloud.sdk as cb

    lim = {"Authorization": "Bearer csk-limited"}
    remaining = []
    for _ in range(3):
        r = g.post("/v1/chat/completions", json=chat_body(), headers=lim)
        assert r.status_code == 200
        remaining.append(r.headers["x-ratelimit-remaining-requests-minute"])
    assert remaining == ["2", "1", "0"] and r.headers["x-ratelimit-limit-requests-minute"] == "3"
    r = g.post("/v1/chat/completions", json=chat_body(), headers=lim)
    assert r.status_code == 429
    assert r.json() == {"message": "Requests per minute limit exceeded - too many requests sent.",
                        "type": "too_many_requests_error", "param": "quota", "code": "request_quota_exceeded"}
    assert 1 <= int(r.headers["retry-after"]) <= 20
    assert r.headers["x-ratelimit-remaining-requests-minute"] == "0"
    with cb.Cerebras(api_key="csk-limited", base_url=gated.url, max_retries=0) as c:
        with pytest.raises(cb.RateLimitError) as e:
            c.chat.completions.create(**chat_body())
        assert e.value.body["code"] == "request_quota_exceeded"
    assert g.post("/v1/chat/completions", json=chat_body(), headers=ALPHA).status_code == 200  # other keys unaffected


def test_token_quota_estimate_and_settlement(g):
    tok = {"Authorization": "Bearer csk-tokens"}
    r = g.post("/v1/chat/completions", json=chat_body(max_completion_tokens=2000), headers=tok)
    assert r.status_code == 429 and r.json()["code"] == "token_quota_exceeded"
    assert r.json()["type"] == "too_many_tokens_error" and "retry-after" not in r.headers
    assert r.json()["message"].startswith("Tokens per minute limit exceeded - too many tokens processed.")
    r = g.post("/v1/chat/completions", json=chat_body("Say hi.", max_completion_tokens=300, stop=["."]), headers=tok)
    assert r.status_code == 200
    used = r.json()["usage"]["total_tokens"]
    left = int(r.headers["x-ratelimit-remaining-tokens-minute"])
    assert used < 300 and 600 - used <= left <= 600 - used + 60  # the unused part of the estimate flowed back
    r = g.post("/v1/chat/completions", json=chat_body(max_completion_tokens=left), headers=tok)
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60


# -- request limits -------------------------------------------------------------------------------

def test_body_size_limits(g):
    big = json.dumps(chat_body("x" * 70000)).encode()
    r = g.post("/v1/chat/completions", content=big, headers={**ALPHA, "content-type": "application/json"})
    assert r.status_code == 413 and r.json()["code"] == "request_too_large"
    r = g.post("/v1/chat/completions", content=iter([big[:40000], big[40000:]]), headers=ALPHA)  # chunked
    assert r.status_code == 413 and r.json()["code"] == "request_too_large"
    bomb = gzip.compress(b'{"model": "' + b"a" * 5_000_000 + b'"}')
    r = g.post("/v1/chat/completions", content=bomb, headers={**ALPHA, "content-encoding": "gzip"})
    assert r.status_code == 413
    ok = gzip.compress(json.dumps(chat_body()).encode())
    r = g.post("/v1/chat/completions", content=ok, headers={**ALPHA, "content-encoding": "gzip"})
    assert r.status_code == 200


def test_message_count_limit(g):
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}] * 4 + [
        {"role": "user", "content": "bye"}]
    r = g.post("/v1/chat/completions", json={**chat_body(), "messages": msgs}, headers=ALPHA)
    assert r.status_code == 400 and r.json()["param"] == "messages" and "at most 8" in r.json()["message"]
    r = g.post("/v1/chat/completions", json={**chat_body(), "messages": msgs[1:]}, headers=ALPHA)
    assert r.status_code == 200


def test_request_timeout_504(g, gated):
    long = chat_body("Tell a long story.", max_completion_tokens=3000, min_completion_tokens=3000)
    t0 = time.time()
    r = g.post("/v1/chat/completions", json=long, headers=ALPHA)
    assert r.status_code == 504 and r.json()["code"] == "request_timeout"
    assert "8 s" in r.json()["message"] and time.time() - t0 < 14
    events = []
    with g.stream("POST", "/v1/chat/completions", json={**long, "stream": True}, headers=ALPHA) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append(json.loads(line[6:]))
    assert events[-1]["status_code"] == 504 and events[-1]["error"]["code"] == "request_timeout"
    st = gated.wait_idle()
    assert st["running_requests"] == 0 and st["kv_cells_running"] == 0


def _raw(gated, data: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", gated.port))
    s.settimeout(10)
    s.sendall(data)
    return s


def _read_all(s: socket.socket) -> bytes:
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    return data


def test_slow_body_408(gated):
    s = _raw(gated, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer csk-alpha\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"model\"")
    t0 = time.time()
    resp = _read_all(s)
    assert resp.startswith(b"HTTP/1.1 408") and b"request_timeout" in resp and 1.5 < time.time() - t0 < 6


def test_slow_headers_408(gated):
    s = _raw(gated, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
    t0 = time.time()
    resp = _read_all(s)  # answered, then closed
    assert resp.startswith(b"HTTP/1.1 408") and b"request_timeout" in resp and 1.5 < time.time() - t0 < 6


# -- request ids, probes, metrics -----------------------------------------------------------------

def test_request_id(g, gated):
    r = g.post("/v1/chat/completions", json=chat_body(), headers={**ALPHA, "x-request-id": "trace-42.a"})
    assert r.headers["x-request-id"] == "trace-42.a"
    r = g.get("/v1/models", headers={**ALPHA, "x-request-id": "bad id with spaces"})
    assert r.headers["x-request-id"].startswith("req_")
    r2 = g.get("/v1/models", headers=ALPHA)
    assert r2.headers["x-request-id"] != r.headers["x-request-id"]
    assert g.get("/v1/models").headers["x-request-id"]  # errors too (403)
    lines = [json.loads(x.split("wafer.access: ", 1)[1]) for x in gated.log_path.read_text().splitlines()
             if "wafer.access: " in x]
    mine = [x for x in lines if x["request_id"] == "trace-42.a"]
    assert mine and mine[0]["path"] == "/v1/chat/completions" and mine[0]["completion_tokens"] == 2


def test_ready_and_metrics(g):
    assert g.get("/ready").json()["status"] == "ready"
    g.post("/v1/chat/completions", json=chat_body(), headers=ALPHA)
    text = g.get("/metrics").text
    assert 'wafer_requests_total{route="/v1/chat/completions",status="200"}' in text
    assert 'wafer_requests_total{route="/v1/models",status="403"}' in text
    count = [x for x in text.splitlines() if x.startswith("wafer_time_to_first_token_seconds_count")]
    assert count and int(count[0].split()[-1]) >= 1
    for name in ("wafer_time_per_output_token_seconds", "wafer_queue_time_seconds", "wafer_running_sequences",
                 "wafer_waiting_requests", "wafer_kv_cells_used", "wafer_prefix_cache_hits_total",
                 "wafer_prompt_tokens_total", "wafer_generation_tokens_total", "process_resident_memory_bytes"):
        assert f"# TYPE {name} " in text, name


# -- disconnects ----------------------------------------------------------------------------------

def test_disconnect_frees_grammar_and_queue_slot(gated):
    long = chat_body("Write JSON about cats.", max_completion_tokens=3000, stream=True,
                     response_format={"type": "json_object"})
    with httpx.Client(base_url=gated.url, timeout=60, headers=ALPHA) as c:
        with c.stream("POST", "/v1/chat/completions", json=long) as r:
            assert r.status_code == 200
            for i, _ in enumerate(r.iter_lines()):
                if i > 8:
                    break
        t0 = time.time()
        st = gated.wait_idle(timeout=5)
        assert st["running_requests"] == 0 and st["kv_cells_running"] == 0 and time.time() - t0 < 2
    # a queued request that goes away gives its queue place back
    fill = chat_body("Tell a story.", max_completion_tokens=300, min_completion_tokens=300)

    def post(body):
        with httpx.Client(base_url=gated.url, timeout=60, headers=ALPHA) as c:
            c.post("/v1/chat/completions", json=body)

    threads = [threading.Thread(target=post, args=(fill,)) for _ in range(4)]  # --parallel 4
    for t in threads:
        t.start()
    time.sleep(0.5)
    s = _raw(gated, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer csk-alpha\r\n"
                    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
             % (len(json.dumps(fill)), json.dumps(fill).encode()))
    deadline = time.time() + 5
    while gated.stats()["waiting_requests"] == 0 and time.time() < deadline:
        time.sleep(0.05)
    assert gated.stats()["waiting_requests"] == 1
    s.close()
    deadline = time.time() + 2
    while gated.stats()["waiting_requests"] and time.time() < deadline:
        time.sleep(0.05)
    assert gated.stats()["waiting_requests"] == 0
    for t in threads:
        t.join()
    gated.wait_idle()


# -- draining -------------------------------------------------------------------------------------

def _stream_lines(url: str, body: dict, out: list) -> None:
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as r:
        out.append(r.status_code)
        for line in r.iter_lines():
            if line.startswith("data: "):
                out.append(line[6:])


def _streaming(resolved_model, tmp_path, grace: str, tokens: int) -> tuple[Server, threading.Thread, list]:
    """A server with ``--grace-period grace`` and a stream of ``tokens`` tokens under way on it."""
    s = Server(serve_args(resolved_model) + ["--grace-period", grace], tmp_path / "server.log")
    out: list = []
    body = chat_body("Tell a story.", max_completion_tokens=tokens, min_completion_tokens=tokens, stream=True)
    t = threading.Thread(target=_stream_lines, args=(s.url, body, out))
    t.start()
    deadline = time.time() + 20
    while len(out) < 5 and time.time() < deadline:
        time.sleep(0.02)
    return s, t, out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_drain_on_signal(resolved_model, tmp_path, sig):
    s, t, out = _streaming(resolved_model, tmp_path, "30", 150)
    s.proc.send_signal(sig)
    time.sleep(0.3)
    with pytest.raises(httpx.ConnectError):  # no longer accepting
        httpx.get(s.url + "/health", timeout=2)
    t.join(60)
    assert s.proc.wait(60) == 0
    s.stop()
    final = json.loads(out[-1])
    assert out[0] == 200 and final["usage"]["completion_tokens"] == 150  # the in-flight stream completed
    assert final["choices"][0]["finish_reason"] == "length"


def test_drain_past_grace_period_ends_streams_with_503(resolved_model, tmp_path):
    s, t, out = _streaming(resolved_model, tmp_path, "2", 4000)
    t0 = time.time()
    s.proc.send_signal(signal.SIGTERM)
    t.join(30)
    assert s.proc.wait(30) == 0 and time.time() - t0 < 10
    s.stop()
    last = json.loads(out[-1])
    assert last["status_code"] == 503 and last["error"]["code"] == "server_shutting_down"


def test_max_connections_refuses_beyond_the_limit(resolved_model, tmp_path):
    s = Server(serve_args(resolved_model) + ["--max-connections", "3"], tmp_path / "server.log")
    try:
        held = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(3)]
        time.sleep(0.2)
        r = httpx.get(s.url + "/health", timeout=10)
        assert r.status_code == 503  # refused before any work, not queued or stalled
        for c in held:
            c.close()
        time.sleep(0.2)
        assert httpx.get(s.url + "/health", timeout=10).status_code == 200
    finally:
        s.stop()
