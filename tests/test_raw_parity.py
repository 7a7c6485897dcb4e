"""Greedy output through HTTP equals the raw llama.cpp loop for the same prompt tokens."""

from __future__ import annotations

from conftest import MODEL_ID

from wafer.bench.rawloop import RawLoop


def test_greedy_parity_with_raw_loop(model_path, plain_server):
    from cerebras.cloud.sdk import Cerebras

    cerebras = Cerebras(api_key="k", base_url=plain_server.url, _strict_response_validation=True)
    # one stream: a lone sequence computes the same whatever the stream's size (attention spans its used cells)
    raw = RawLoop(model_path, n_ctx=2048, threads=2)
    try:
        for prompt in ["The history of the printing press", "def fibonacci(n):", "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"]:
            ids = raw.tokenize(prompt, add_special=True)
            expect = raw.greedy(ids, 48, stop_at_eog=True)["tokens"]
            r = cerebras.completions.create(model=MODEL_ID, prompt=ids, max_tokens=48, temperature=0,
                                            return_raw_tokens=True)
            got = r.choices[0].tokens
            if r.choices[0].finish_reason == "stop":
                got = got + [expect[-1]]  # the end-of-generation token is not returned as text
            assert got == expect, prompt
    finally:
        raw.close()
