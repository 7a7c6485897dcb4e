"""The raw llama.cpp low-level loop: the no-server ceiling wafer is measured against.

Deliberately independent of wafer's engine: its own batch, its own greedy argmax, one sequence.
Used by the benchmarks (speed ceiling) and by the tests (greedy parity).
"""

from __future__ import annotations

import ctypes
import os
import time

import llama_cpp as lc
import numpy as np


def _quiet() -> None:
    if os.environ.get("WAFER_LLAMA_LOG"):
        return
    cb = lc.llama_log_callback(lambda level, text, data: None)
    _quiet.cb = cb  # keep alive
    lc.llama_log_set(cb, ctypes.c_void_p(0))


class RawLoop:
    def __init__(self, path: str, n_ctx: int = 4096, threads: int | None = None, flash_attn: bool = True):
        _quiet()
        lc.llama_backend_init()
        mp = lc.llama_model_default_params()
        self.model = lc.llama_model_load_from_file(path.encode(), mp)
        self.vocab = lc.llama_model_get_vocab(self.model)
        self.n_vocab = lc.llama_vocab_n_tokens(self.vocab)
        cp = lc.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = 512
        cp.n_ubatch = 512
        cp.n_seq_max = 1
        cp.n_threads = cp.n_threads_batch = threads or os.cpu_count() or 1
        cp.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self.ctx = lc.llama_init_from_model(self.model, cp)
        self.batch = lc.llama_batch_init(512, 0, 1)

    def tokenize(self, text: str, add_special: bool = False) -> list[int]:
        data = text.encode()
        buf = (lc.llama_token * (len(data) + 8))()
        n = lc.llama_tokenize(self.vocab, data, len(data), buf, len(buf), add_special, True)
        return list(buf[:n])

    def _decode(self, tokens: list[int], pos0: int) -> None:
        b = self.batch
        for i, t in enumerate(tokens):
            b.token[i] = t
            b.pos[i] = pos0 + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            b.logits[i] = i == len(tokens) - 1
        b.n_tokens = len(tokens)
        if lc.llama_decode(self.ctx, b) != 0:
            raise RuntimeError("llama_decode failed")

    def greedy(self, prompt: list[int], n_new: int, stop_at_eog: bool = True, chunk: int = 512) -> dict:
        """Greedy-decode up to n_new tokens (prompt prefilled ``chunk`` tokens at a time);
        returns tokens, TTFT and decode time."""
        lc.llama_memory_clear(lc.llama_get_memory(self.ctx), True)
        t0 = time.perf_counter()
        for i in range(0, len(prompt), chunk):
            self._decode(prompt[i : i + chunk], i)
        out: list[int] = []
        pos = len(prompt)
        t_first = None
        while len(out) < n_new:
            row = np.ctypeslib.as_array(lc.llama_get_logits_ith(self.ctx, -1), shape=(self.n_vocab,))
            tok = int(row.argmax())
            if t_first is None:
                t_first = time.perf_counter()
            out.append(tok)
            if stop_at_eog and lc.llama_vocab_is_eog(self.vocab, tok):
                break
            if len(out) == n_new:
                break
            self._decode([tok], pos)
            pos += 1
        t_end = time.perf_counter()
        return {
            "tokens": out,
            "ttft": (t_first or t_end) - t0,
            "decode_time": t_end - (t_first or t_end),
            "decode_tok_s": (len(out) - 1) / (t_end - t_first) if t_first and len(out) > 1 and t_end > t_first else 0.0,
        }

    def close(self) -> None:
        lc.llama_batch_free(self.batch)
        lc.llama_free(self.ctx)
        lc.llama_model_free(self.model)
