"""llama.cpp runner: one model, one context with one KV stream per sequence.

Everything here is a thin layer over llama-cpp-python's low-level API (module ``llama_cpp``).
The batch is owned by us: its arrays are numpy buffers that llama.cpp reads through pointers, so
filling a step costs a few numpy slice assignments instead of a Python loop over ctypes fields.
"""

from __future__ import annotations

import ctypes
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import llama_cpp as lc
import numpy as np

_backend_lock = threading.Lock()
_backend_ready = False
_log_callback = None  # keep a reference: llama.cpp holds the raw pointer


def _quiet_logs() -> None:
    """Route llama.cpp's logging to nothing unless WAFER_LLAMA_LOG is set."""
    global _log_callback
    if os.environ.get("WAFER_LLAMA_LOG"):
        return

    @lc.llama_log_callback
    def _cb(level, text, user_data):  # pragma: no cover - C callback
        return None

    _log_callback = _cb
    lc.llama_log_set(_log_callback, ctypes.c_void_p(0))


def init_backend() -> None:
    global _backend_ready
    with _backend_lock:
        if not _backend_ready:
            _quiet_logs()
            lc.llama_backend_init()
            _backend_ready = True


@dataclass
class ContextConfig:
    n_seq: int  # KV streams = sequence ids (kv_unified = false: sequence i is stream i)
    n_ctx_seq: int  # cells per stream (llama.cpp pads it to a multiple of 256)
    n_batch: int  # most tokens in one llama_decode
    n_threads: int
    flash_attn: bool = True  # also keeps V untransposed, so snapshots copy whole rows


class Batch:
    """A ``llama_batch`` whose arrays are numpy buffers (one sequence id per token)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.token = np.zeros(capacity, dtype=np.int32)
        self.pos = np.zeros(capacity, dtype=np.int32)
        self.n_seq_id = np.ones(capacity, dtype=np.int32)
        self.seq = np.zeros(capacity, dtype=np.int32)
        self.logits = np.zeros(capacity, dtype=np.int8)
        self._seq_ptrs = (ctypes.POINTER(lc.llama_seq_id) * capacity)()
        base = self.seq.ctypes.data
        for i in range(capacity):
            self._seq_ptrs[i] = ctypes.cast(base + 4 * i, ctypes.POINTER(lc.llama_seq_id))
        b = lc.llama_batch()
        b.n_tokens = 0
        b.token = self.token.ctypes.data_as(ctypes.POINTER(lc.llama_token))
        b.embd = ctypes.POINTER(ctypes.c_float)()
        b.pos = self.pos.ctypes.data_as(ctypes.POINTER(lc.llama_pos))
        b.n_seq_id = self.n_seq_id.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))
        b.seq_id = ctypes.cast(self._seq_ptrs, ctypes.POINTER(ctypes.POINTER(lc.llama_seq_id)))
        b.logits = self.logits.ctypes.data_as(ctypes.POINTER(ctypes.c_int8))
        self.struct = b
        self.n = 0

    def clear(self) -> None:
        self.n = 0

    def add(self, seq_id: int, tokens, start_pos: int, want_logits: bool) -> int:
        """Append ``tokens`` of one sequence at positions start_pos.. Returns the index of the
        last entry (the row of its logits when ``want_logits``)."""
        k = len(tokens)
        i = self.n
        j = i + k
        if j > self.capacity:
            raise ValueError("batch overflow")
        self.token[i:j] = tokens
        self.pos[i:j] = np.arange(start_pos, start_pos + k, dtype=np.int32)
        self.seq[i:j] = seq_id
        self.logits[i:j] = 0
        if want_logits:
            self.logits[j - 1] = 1
        self.n = j
        return j - 1

    def add_all_logits(self, seq_id: int, tokens, start_pos: int) -> int:
        """Like add(), with logits at every position (prompt logprobs). Returns the first index."""
        i = self.n
        self.add(seq_id, tokens, start_pos, True)
        self.logits[i : self.n] = 1
        return i


class LlamaModel:
    """A loaded GGUF model with its vocabulary helpers."""

    def __init__(self, path: str | Path):
        init_backend()
        self.path = str(path)
        params = lc.llama_model_default_params()
        params.n_gpu_layers = int(os.environ.get("WAFER_GPU_LAYERS", "0"))
        self.model = lc.llama_model_load_from_file(self.path.encode(), params)
        if not self.model:
            raise ValueError(f"llama.cpp could not load the model file {self.path}")
        self.vocab = lc.llama_model_get_vocab(self.model)
        self.n_vocab = lc.llama_vocab_n_tokens(self.vocab)
        self.n_ctx_train = lc.llama_model_n_ctx_train(self.model)
        self.add_bos = bool(lc.llama_vocab_get_add_bos(self.vocab))
        self.bos_id = lc.llama_vocab_bos(self.vocab)
        self.eos_id = lc.llama_vocab_eos(self.vocab)
        self.metadata = self._read_metadata()
        self._pieces: list[bytes] | None = None
        self._special_pieces: list[bytes] | None = None
        self.eog = np.array(
            [lc.llama_vocab_is_eog(self.vocab, t) for t in range(self.n_vocab)], dtype=bool
        )
        self.eog_ids = np.flatnonzero(self.eog)
        self.kv_bytes_per_token = self._kv_bytes_per_token()

    def _kv_bytes_per_token(self) -> int:
        """Bytes of K and V (f16) one token takes in the KV cache, over all layers."""
        n_layer = lc.llama_model_n_layer(self.model)
        n_head = max(1, lc.llama_model_n_head(self.model))
        n_head_kv = lc.llama_model_n_head_kv(self.model) or n_head
        arch = self.metadata.get("general.architecture", "")
        head = int(self.metadata.get(f"{arch}.attention.key_length", 0)) or lc.llama_model_n_embd(self.model) // n_head
        head_v = int(self.metadata.get(f"{arch}.attention.value_length", 0)) or head
        return n_layer * n_head_kv * (head + head_v) * 2

    def _read_metadata(self) -> dict[str, str]:
        out: dict[str, str] = {}
        n = lc.llama_model_meta_count(self.model)
        buf = ctypes.create_string_buffer(1 << 20)
        for i in range(n):
            k = lc.llama_model_meta_key_by_index(self.model, i, buf, len(buf))
            if k < 0:
                continue
            key = buf.value.decode("utf-8", "replace")
            v = lc.llama_model_meta_val_str_by_index(self.model, i, buf, len(buf))
            if v < 0:
                continue
            out[key] = buf.raw[: min(v, len(buf))].split(b"\0", 1)[0].decode("utf-8", "replace")
        return out

    # -- vocabulary -------------------------------------------------------------------------
    def _piece(self, token: int, special: bool) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = lc.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = lc.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
        return buf.raw[:n]

    @property
    def pieces(self) -> list[bytes]:
        """Bytes of every token as generated text (control tokens render as b"")."""
        if self._pieces is None:
            self._pieces = [self._piece(t, False) for t in range(self.n_vocab)]
        return self._pieces

    @property
    def special_pieces(self) -> list[bytes]:
        """Bytes of every token with control tokens rendered (for logprobs and echo)."""
        if self._special_pieces is None:
            self._special_pieces = [self._piece(t, True) for t in range(self.n_vocab)]
        return self._special_pieces

    def tokenize(self, text: str, add_special: bool, parse_special: bool = True) -> list[int]:
        data = text.encode("utf-8")
        cap = len(data) + 8
        buf = (lc.llama_token * cap)()
        n = lc.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special, parse_special)
        if n < 0:
            cap = -n
            buf = (lc.llama_token * cap)()
            n = lc.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special, parse_special)
        return list(buf[:n])

    def detokenize(self, tokens, special: bool = False) -> str:
        pieces = self.special_pieces if special else self.pieces
        return b"".join(pieces[t] for t in tokens).decode("utf-8", "replace")

    def token_text(self, token: int) -> str:
        return self.special_pieces[token].decode("utf-8", "replace")

    def close(self) -> None:
        if self.model:
            lc.llama_model_free(self.model)
            self.model = None


class LlamaContext:
    """A llama.cpp context with ``n_seq`` KV streams plus our batch; all calls from one thread."""

    def __init__(self, model: LlamaModel, cfg: ContextConfig):
        self.model = model
        self.cfg = cfg
        p = lc.llama_context_default_params()
        p.n_ctx = cfg.n_seq * cfg.n_ctx_seq
        p.n_batch = cfg.n_batch
        p.n_ubatch = min(cfg.n_batch, 512)
        p.n_seq_max = cfg.n_seq
        p.n_threads = cfg.n_threads
        p.n_threads_batch = cfg.n_threads
        p.kv_unified = False
        p.no_perf = True
        p.flash_attn_type = (
            lc.LLAMA_FLASH_ATTN_TYPE_ENABLED if cfg.flash_attn else lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        self.ctx = lc.llama_init_from_model(model.model, p)
        if not self.ctx:
            raise RuntimeError("llama.cpp could not create a context (out of memory?)")
        self.n_seq = lc.llama_n_seq_max(self.ctx)
        self.n_ctx_seq = lc.llama_n_ctx_seq(self.ctx)  # what llama.cpp really gives each stream
        self.n_ctx = lc.llama_n_ctx(self.ctx)
        self.n_ubatch = p.n_ubatch
        self.mem = lc.llama_get_memory(self.ctx)
        self.batch = Batch(cfg.n_batch)
        self.n_vocab = model.n_vocab
        self._row_type = ctypes.c_float * self.n_vocab

    def decode(self) -> int:
        """Run the current batch. Returns llama_decode's status (0 = ok, 1 = no KV slot)."""
        self.batch.struct.n_tokens = self.batch.n
        return lc.llama_decode(self.ctx, self.batch.struct)

    def logits(self, i: int) -> np.ndarray:
        """Zero-copy view of the logits row of batch entry ``i`` (valid until the next decode)."""
        ptr = lc.llama_get_logits_ith(self.ctx, i)
        if not ptr:
            raise RuntimeError(f"llama.cpp has no logits for batch entry {i}")
        addr = ctypes.cast(ptr, ctypes.c_void_p).value
        return np.frombuffer(self._row_type.from_address(addr), dtype=np.float32)

    def seq_rm(self, seq_id: int, p0: int = 0, p1: int = -1) -> None:
        lc.llama_memory_seq_rm(self.mem, seq_id, p0, p1)

    def seq_cp(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None:
        """Between streams only the whole stream (p0 = p1 = -1); the data moves at the next decode."""
        lc.llama_memory_seq_cp(self.mem, src, dst, p0, p1)

    def seq_pos_max(self, seq_id: int) -> int:
        return lc.llama_memory_seq_pos_max(self.mem, seq_id)

    def state_get(self, seq_id: int) -> bytearray:
        """A snapshot of every cell of one sequence, written straight into host memory."""
        size = lc.llama_state_seq_get_size_ext(self.ctx, seq_id, 0)
        data = bytearray(size)
        n = lc.llama_state_seq_get_data_ext(self.ctx, (ctypes.c_uint8 * size).from_buffer(data), size, seq_id, 0)
        if n < size:
            del data[n:]
        return data

    def state_set(self, seq_id: int, data: bytearray) -> int:
        """Restore a snapshot into a sequence (its cells are replaced), read in place. Returns the
        bytes read, 0 on failure (the sequence is then empty)."""
        n = len(data)
        return lc.llama_state_seq_set_data_ext(self.ctx, (ctypes.c_uint8 * n).from_buffer(data), n, seq_id, 0)

    def clear(self) -> None:
        lc.llama_memory_clear(self.mem, True)

    def close(self) -> None:
        if self.ctx:
            lc.llama_free(self.ctx)
            self.ctx = None
