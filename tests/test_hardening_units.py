"""Units of the server's gate: API keys, token buckets, rate-limit headers, Prometheus text."""

from __future__ import annotations

import re

import pytest

from wafer.protocol.errors import APIError
from wafer.server.auth import KeySet, NotAuthenticated, parse_limits
from wafer.server.metrics import Metrics
from wafer.server.ratelimit import UNLIMITED, KeyLimits, RateLimiter

pytestmark = pytest.mark.model_free  # needs no model file


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_keys_from_flags_env_and_file(tmp_path):
    f = tmp_path / "keys"
    f.write_text("# team keys\ncsk-alice alice rpm=60 tpm=1000\ncsk-bob  # no name\n\ncsk-carol carol tpd=5\n")
    ks = KeySet.load(["csk-flag"], "csk-env1, csk-env2", str(f))
    assert len(ks.keys) == 6 and not ks.open
    assert ks.check("Bearer csk-alice").name == "alice"
    assert ks.check("Bearer csk-alice").limits == {"rpm": 60, "tpm": 1000}
    assert ks.check("bearer   csk-env2 ").name.startswith("key-")
    assert ks.check("Bearer csk-carol").limits == {"tpd": 5}
    assert "csk-" not in ks.check("Bearer csk-bob").name  # only a digest prefix names an unnamed key


def test_key_answers_are_cerebras():
    ks = KeySet.load(["csk-good"])
    with pytest.raises(NotAuthenticated) as e:
        ks.check(None)
    assert e.value.detail == "Not authenticated"
    with pytest.raises(NotAuthenticated) as e:
        ks.check("Basic Zm9vOmJhcg==")
    assert e.value.detail == "Invalid authentication credentials"
    with pytest.raises(APIError) as e:
        ks.check("Bearer csk-bad")
    assert e.value.status == 401
    assert e.value.body() == {"message": "Wrong API Key", "type": "invalid_request_error", "param": "api_key",
                              "code": "wrong_api_key"}
    assert KeySet.load().check(None) is None  # no keys: open


def test_bad_key_config(tmp_path):
    with pytest.raises(ValueError, match="twice"):
        KeySet.load(["a", "a"])
    f = tmp_path / "keys"
    f.write_text("csk-x x rpm=ten\n")
    with pytest.raises(ValueError, match="keys:1"):
        KeySet.load(path=str(f))
    with pytest.raises(ValueError):
        parse_limits(["rph=3"], "--rate-limit")
    assert parse_limits(["rpm=1,tpd=2"], "x") == {"rpm": 1, "tpd": 2}


def test_request_bucket_refills_continuously():
    clock = Clock()
    kl = KeyLimits({"rpm": 2}, clock)
    kl.admit(0)
    kl.admit(0)
    with pytest.raises(APIError) as e:
        kl.admit(0)
    err = e.value
    assert err.status == 429 and err.code == "request_quota_exceeded" and err.type == "too_many_requests_error"
    assert err.message == "Requests per minute limit exceeded - too many requests sent." and err.param == "quota"
    assert err.headers["retry-after"] == "30" and err.headers["retry-after-ms"] == "30000"  # 1 of 2 per 60 s
    clock.t += 30
    kl.admit(0)  # one request back after 30 s, not at a window edge
    h = kl.headers()
    assert h["x-ratelimit-limit-requests-minute"] == "2"
    assert h["x-ratelimit-remaining-requests-minute"] == "0"
    assert float(h["x-ratelimit-reset-requests-minute"]) == pytest.approx(60.0)
    assert h["x-ratelimit-limit-tokens-day"] == str(UNLIMITED) and h["x-ratelimit-reset-tokens-day"] == "0.0"


def test_token_estimate_and_settlement():
    clock = Clock()
    kl = KeyLimits({"tpm": 1000, "tpd": 5000}, clock)
    t = kl.admit(900)
    with pytest.raises(APIError) as e:
        kl.admit(200)  # 100 left
    assert e.value.code == "token_quota_exceeded" and e.value.type == "too_many_tokens_error"
    assert e.value.message.startswith("Tokens per minute limit exceeded")
    kl.settle(t, 150)  # used 150 of the 900 charged: 750 flow back
    assert kl.headers()["x-ratelimit-remaining-tokens-minute"] == "850"
    assert kl.headers()["x-ratelimit-remaining-tokens-day"] == "4850"
    kl.admit(200)
    with pytest.raises(APIError) as e:
        kl.admit(5000)  # larger than the minute bucket: can never pass
    assert "retry-after" not in e.value.headers and "more than the limit of 1000" in e.value.message


def test_refusal_charges_nothing_and_day_limits():
    clock = Clock()
    kl = KeyLimits({"rpd": 1, "tpm": 100}, clock)
    with pytest.raises(APIError):
        kl.admit(500)
    assert kl.headers()["x-ratelimit-remaining-requests-day"] == "1"
    kl.admit(10)
    with pytest.raises(APIError) as e:
        kl.admit(10)
    assert e.value.message == "Requests per day limit exceeded - too many requests sent."
    assert e.value.headers["retry-after"] == "86400"


def test_limiter_keys_are_separate_and_override_defaults():
    rl = RateLimiter({"rpm": 1}, Clock())
    a, b = rl.for_key("a"), rl.for_key("b", {"rpm": 5})
    a.admit(0)
    with pytest.raises(APIError):
        a.admit(0)
    for _ in range(5):
        b.admit(0)
    assert rl.for_key("a") is a


PROM_LINE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_]+="[^"]*",?)*\})? -?[0-9.e+Inf-]+$')


def test_metrics_text_format():
    from wafer.engine.events import RequestDone, TimeInfo, Usage

    m = Metrics()
    m.requests.inc("/v1/chat/completions", "200")
    m.observe_done("m", RequestDone(Usage(10, 5, 4), TimeInfo(0.01, 0.2, 0.4, 0.61, 0.0)))
    st = {"running_requests": 1, "running_sequences": 2, "waiting_requests": 0, "kv_cells_used": 9, "kv_cells_running": 5,
          "kv_cells": 100, "preemptions": 0, "free_slots": 3,
          "step_costs": {"steps": 7, "ubatches": 9, "last_ubatches": 2},
          "cache": {"lookups": 3, "hits": 1, "hit_tokens": 4, "cached_cells": 4, "host_bytes": 4096}}
    text = m.render({"m": st}, draining=False)
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or PROM_LINE.match(line), line
    assert 'wafer_time_to_first_token_seconds_bucket{model="m",le="0.25"} 1' in text
    assert 'wafer_time_to_first_token_seconds_bucket{model="m",le="0.1"} 0' in text
    assert 'wafer_time_per_output_token_seconds_sum{model="m"} 0.1' in text  # 0.4 s over 4 tokens after the first
    assert 'wafer_prompt_cached_tokens_total{model="m"} 4' in text
    assert 'wafer_kv_cells_used{model="m"} 9' in text
    assert 'wafer_engine_ubatches_total{model="m"} 9' in text and 'wafer_engine_last_step_ubatches{model="m"} 2' in text
    assert "process_resident_memory_bytes " in text
