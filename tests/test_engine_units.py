"""Engine pieces without a server: sampler, detokenizer, stop strings, scheduler and engine."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from wafer.engine.detokenizer import IncrementalDetokenizer
from wafer.engine.sampler import SamplingParams, SequenceSampler, log_softmax
from wafer.engine.stops import StopMatcher

EOG = np.array([0])


@pytest.mark.model_free
def test_greedy_and_bias():
    row = np.array([0.0, 1.0, 5.0, 2.0], dtype=np.float32)
    s = SequenceSampler(SamplingParams(temperature=0), EOG)
    assert s.sample(row)[0] == 2
    s = SequenceSampler(SamplingParams(temperature=0, logit_bias={2: -100.0}), EOG)
    assert s.sample(row)[0] == 3
    assert row[2] == 5.0  # the engine's logits are not modified


@pytest.mark.model_free
def test_block_eog():
    row = np.array([9.0, 1.0, 0.0], dtype=np.float32)
    s = SequenceSampler(SamplingParams(temperature=0), EOG)
    assert s.sample(row, block_eog=True)[0] == 1
    assert s.sample(row)[0] == 0


@pytest.mark.model_free
def test_penalties():
    row = np.array([0.0, 3.0, 2.9], dtype=np.float32)
    s = SequenceSampler(SamplingParams(temperature=0, frequency_penalty=0.5), EOG)
    assert [s.sample(row)[0] for _ in range(4)] == [1, 2, 1, 2]  # 1 falls by 0.5 per use
    s = SequenceSampler(SamplingParams(temperature=0, presence_penalty=1.0), EOG)
    assert [s.sample(row)[0] for _ in range(4)] == [1, 2, 1, 1]  # both fall by 1.0, once


@pytest.mark.model_free
def test_top_p_restricts_support():
    row = np.log(np.array([0.5, 0.3, 0.15, 0.05], dtype=np.float32))
    s = SequenceSampler(SamplingParams(temperature=1.0, top_p=0.7, seed=0), EOG)
    seen = {s.sample(row)[0] for _ in range(300)}
    assert seen == {0, 1}


@pytest.mark.model_free
def test_temperature_distribution_and_seed():
    row = np.log(np.array([0.7, 0.2, 0.1], dtype=np.float32))
    s = SequenceSampler(SamplingParams(temperature=1.0, seed=123), EOG)
    draws = [s.sample(row)[0] for _ in range(3000)]
    freq = np.bincount(draws, minlength=3) / 3000
    assert np.allclose(freq, [0.7, 0.2, 0.1], atol=0.04)
    a = SequenceSampler(SamplingParams(temperature=1.0, seed=9), EOG)
    b = SequenceSampler(SamplingParams(temperature=1.0, seed=9), EOG)
    assert [a.sample(row)[0] for _ in range(50)] == [b.sample(row)[0] for _ in range(50)]


@pytest.mark.model_free
def test_logprobs_are_the_models():
    row = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    s = SequenceSampler(SamplingParams(temperature=0.5, logprobs=True, top_logprobs=2, logit_bias={0: 50.0}, seed=1), EOG)
    tok, lp = s.sample(row)
    ls = log_softmax(row)
    assert tok == 0 and abs(lp.logprob - ls[0]) < 1e-6
    assert [t for t, _ in lp.top] == [2, 1]


@pytest.mark.model_free
def test_detokenizer_never_splits_utf8():
    pieces = ["é".encode()[:1], "é".encode()[1:], b"a", "😀".encode()[:2], "😀".encode()[2:], b"\xff"]
    d = IncrementalDetokenizer(pieces)
    assert d.add(0) == ""
    assert d.add(1) == "é"
    assert d.add(2) == "a"
    assert d.add(3) == ""
    assert d.add(4) == "😀"
    assert d.add(5) == "\ufffd"
    d.add(3)
    assert d.flush() == "\ufffd"


@pytest.mark.model_free
def test_stop_matcher():
    m = StopMatcher(["END", "\n\n"])
    assert m.hold == 2
    assert m.find("abcEN", 3) == -1
    assert m.find("abcEND", 5) == 3
    assert m.safe_end(len("abcEN")) == 3
    assert StopMatcher([]).safe_end(5) == 5


@pytest.fixture(scope="module")
def engine(model_path):
    from wafer.engine.engine import Engine, EngineConfig

    e = Engine(model_path, EngineConfig(ctx_size=256, parallel=4, token_budget=64, prefill_budget=64), "t")
    yield e
    e.shutdown()


def run(engine, prompt, params):
    done = threading.Event()
    out = {"text": "", "events": []}

    def sink(evs):
        out["events"] += evs
        for ev in evs:
            if hasattr(ev, "text"):
                out["text"] += ev.text
            else:
                done.set()

    engine.submit(prompt, params, sink)
    return out, done


def test_preempted_request_resumes_with_the_same_output(engine):
    """A request taken off its stream mid-generation (what a failed decode does) goes back to the head
    of the queue with its cells saved in host memory, resumes without recomputing them, and finishes
    with the same greedy tokens as an uninterrupted run."""
    from wafer.engine.events import RequestDone
    from wafer.engine.sampler import SamplingParams
    from wafer.engine.sequence import GenerationParams

    engine.call(engine.scheduler.drop_cache)
    prompt = engine.tokenize("Write a long story about a dragon who learns to bake bread. " * 3, add_special=False)
    params = lambda: GenerationParams(SamplingParams(temperature=0), max_new_tokens=60, min_new_tokens=60)  # noqa: E731
    whole, done = run(engine, prompt, params())
    assert done.wait(120)
    engine.call(engine.scheduler.drop_cache)
    before = engine.stats()["preemptions"]
    out, done = run(engine, prompt, params())
    deadline = time.time() + 30
    while len(out["text"]) < 40 and time.time() < deadline:
        time.sleep(0.005)
    preempted = engine.call(lambda: [engine.scheduler.preempt(r) for r in list(engine.scheduler.running)])
    assert preempted and done.wait(120)
    final = out["events"][-1]
    assert isinstance(final, RequestDone) and final.usage.completion_tokens == 60
    assert out["text"] == whole["text"]
    st = engine.stats()
    assert st["preemptions"] == before + 1
    assert st["cache"]["host_saves"] >= 1 and st["cache"]["hits_by_source"]["resident"] >= 1
    assert st["kv_cells_running"] == 0 and st["kv_slots_occupied"] == st["cache_holder_slots"]
    engine.call(engine.kv.check)


def test_requests_beyond_the_streams_queue_and_finish_whole(engine):
    """6 requests on 4 streams of 256 cells: two wait for a stream; all finish with every token."""
    from wafer.engine.events import RequestDone
    from wafer.engine.sampler import SamplingParams
    from wafer.engine.sequence import GenerationParams

    prompts = [engine.tokenize(f"Write a long story about dragon number {i}.", add_special=False) for i in range(6)]
    runs = [
        run(engine, p, GenerationParams(SamplingParams(temperature=1.0, seed=i), max_new_tokens=100, min_new_tokens=100))
        for i, p in enumerate(prompts)
    ]
    for out, done in runs:
        assert done.wait(120)
        final = out["events"][-1]
        assert isinstance(final, RequestDone) and final.usage.completion_tokens == 100
    st = engine.stats()
    assert st["kv_cells_running"] == 0 and st["kv_slots_occupied"] == st["cache_holder_slots"]
    assert st["step_costs"]["ubatches_per_step"] >= 1
    engine.call(engine.kv.check)
    assert all(len(o["text"]) > 100 for o, _ in runs)


def test_chunked_prefill_matches_raw_loop(engine, model_path):
    """A prompt longer than the token budget (64) is prefilled in 64-token chunks; the greedy output
    equals the raw llama.cpp loop prefilling the same chunks (same numerics)."""
    from wafer.bench.rawloop import RawLoop
    from wafer.engine.sampler import SamplingParams
    from wafer.engine.sequence import GenerationParams

    # Start from an empty KV cache: the placement of cells changes llama.cpp's summation order.
    engine.call(engine.scheduler.drop_cache)
    prompt = engine.tokenize("The quick brown fox jumps over the lazy dog. " * 8, add_special=False)
    assert len(prompt) > 64
    out, done = run(engine, prompt, GenerationParams(SamplingParams(temperature=0), max_new_tokens=20, min_new_tokens=20))
    assert done.wait(60)
    got = [t for ev in out["events"] if hasattr(ev, "token_ids") for t in ev.token_ids]
    raw = RawLoop(model_path, n_ctx=engine.kv_cells, threads=engine.ctx.cfg.n_threads)
    try:
        expect = raw.greedy(prompt, 20, stop_at_eog=False, chunk=64)["tokens"]
    finally:
        raw.close()
    assert got == expect


def test_cancel_frees_slot(engine):
    from wafer.engine.sampler import SamplingParams
    from wafer.engine.sequence import GenerationParams

    prompt = engine.tokenize("Tell me a story.", add_special=False)
    import time

    out, done = run(engine, prompt, GenerationParams(SamplingParams(temperature=0), max_new_tokens=100, min_new_tokens=100))

    deadline = time.time() + 10
    while not out["text"] and time.time() < deadline:
        time.sleep(0.01)
    req = next(iter(engine.scheduler.running), None)
    assert req is not None
    engine.cancel(req)
    deadline = time.time() + 10
    while time.time() < deadline:
        st = engine.stats()
        if st["running_requests"] == 0:
            break
    assert st["running_requests"] == 0 and st["kv_slots_occupied"] == st["cache_holder_slots"]
    assert st["free_slots"] == st["slots"]
