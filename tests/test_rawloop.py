"""The raw loop on one KV stream per sequence: its layout, llama.cpp's ubatch split, and the shared prefix
copied between streams giving the single-sequence reference's tokens."""

from __future__ import annotations

import pytest

from wafer.bench.rawloop import RawLoop


@pytest.fixture(scope="module")
def loop(model_path):
    r = RawLoop(model_path, n_ctx=17 * 300, threads=2, n_seq=17)
    yield r
    r.close()


def test_streams_layout(loop):
    assert loop.n_ctx_seq == 512  # 300 cells per stream, padded to a multiple of 256
    assert loop.n_ctx == 17 * 512


def test_ubatch_split(loop):
    decode16 = [(s, 1) for s in range(16)]
    assert loop.ubatches(decode16) == 1
    assert loop.ubatches(decode16 + [(16, 255)]) == 2  # one token of every seq, then the chunk's other 254
    with_chunk_of_5 = [(s, 256 if s == 5 else 1) for s in range(16)]
    assert loop.ubatches(with_chunk_of_5) == 2  # in seq-id order
    assert loop.ubatches([(s, 256 if s == 5 else 1) for s in range(16) if s != 5] + [(5, 256)]) == 3  # out of order
    assert loop.ubatches([(s, 1) for s in (0, 1, 2, 5, 6)]) == 2  # ids not packed
    assert loop.ubatches([(s, 1) for s in (3, 2, 1, 0)]) == 4  # reversed


def test_shared_prefix_copied_between_streams(loop, model_path):
    base = loop.tokenize("The history of sailing ships is long and full of the people who built them. " * 5)
    prompts = [base + loop.tokenize(q) for q in (" What about the oars?", " Tell me about the sails, please.")]
    ref = RawLoop(model_path, n_ctx=1024, threads=2)
    try:  # the same split: the prefix in one llama_decode, the rest in another
        expect = [ref.greedy(p, 12, chunk=len(base))["tokens"] for p in prompts]
    finally:
        ref.close()
    for concurrency in (1, 4):
        out, _ = loop.batched(prompts * 2, [12] * 4, concurrency, ban_eog=False)
        assert [o["tokens"] for o in out] == expect * 2, concurrency
        assert [o["cached_tokens"] for o in out] == [0, len(base), len(base), len(base)]
    with pytest.raises(ValueError):
        loop.batched(prompts * 9, [4] * 18, 17)  # 17 running + the prefix's stream > 17 streams


def test_step_costs_on_the_raw_loop(loop):
    from wafer.bench.step_costs import Shape, measure, raw_setup

    tokens = loop.tokenize("The history of sailing ships is long and full of the people who built them. " * 12)
    rows = measure(raw_setup(loop, tokens[:64], tokens[:100]), [Shape(3, 0), Shape(3, 100)], steps=2, warmup=1)
    assert [(r["decoding"], r["chunk"], r["ubatches"]) for r in rows] == [(3, 0, 1), (3, 100, 2)]
    assert all(r["ms"]["n"] == 2 and r["ms"]["min"] > 0 for r in rows)
    assert loop.ubatches([(0, 1), (1, 1), (2, 1), (3, 100)]) == 2
    with pytest.raises(ValueError):
        raw_setup(loop, tokens[:64], tokens[:100])(Shape(17, 10))  # 18 streams needed
