"""A fake llama.cpp context with one KV stream per sequence, for the model-free engine tests.

It enforces the rules llama.cpp enforces (or silently breaks) with ``kv_unified = false``, raising
``Abort`` where the real library would abort the process or hand back garbage:

- a sequence id must be below the stream count;
- a copy between streams is whole-stream only (``seq_cp(src, dst, -1, -1)``);
- such a copy happens at the next ``decode``: until then the destination must not be read (snapshot,
  copy source) and the source's data must not be overwritten (snapshot restore);
- a token at position p needs exactly cells 0..p-1 in its stream (llama.cpp: "the sequence positions
  must remain consecutive"), holding real data (not metadata copied ahead of its data).

The "KV data" of a cell is the token computed there. The fake model's next token after a position is
a hash of the data in cells 0..p of the stream, so a sequence whose cells hold the wrong tokens samples
differently from ``reference(tokens)``: tests compare outputs with it to prove prefix reuse exact.
"""

from __future__ import annotations

import hashlib
import pickle

from wafer.engine import ubatch

VOCAB = 1000


class Abort(AssertionError):
    """What would abort the process (or corrupt the KV cache) in llama.cpp."""


def next_token(context: list[int]) -> int:
    h = hashlib.blake2b(repr(list(context)).encode(), digest_size=4).digest()
    return int.from_bytes(h, "little") % VOCAB


def reference(prompt: list[int], n: int) -> list[int]:
    """What a sequence generates from ``prompt``, computed without any KV cache."""
    toks = list(prompt)
    for _ in range(n):
        toks.append(next_token(toks))
    return toks[len(prompt):]


class FakeContext:
    def __init__(self, n_seq: int, n_ctx_seq: int, n_ubatch: int = 512):
        self.n_seq = n_seq
        self.n_ctx_seq = n_ctx_seq
        self.n_ctx = n_seq * n_ctx_seq
        self.n_ubatch = n_ubatch
        self.meta: list[dict[int, int]] = [{} for _ in range(n_seq)]  # cells the metadata says exist
        self.data: list[dict[int, int]] = [{} for _ in range(n_seq)]  # what the cells really hold
        self.pending: list[tuple[int, int]] = []
        self.decodes = 0
        self.ubatch_log: list[int] = []
        self.computed = 0  # tokens decoded in all

    def _id(self, sid: int) -> None:
        if not 0 <= sid < self.n_seq:
            raise Abort(f"sequence id {sid} out of range (n_seq_max {self.n_seq})")

    def _pending_dst(self) -> set[int]:
        return {d for _, d in self.pending}

    def _pending_src(self) -> set[int]:
        return {s for s, _ in self.pending}

    def seq_rm(self, sid: int, p0: int = 0, p1: int = -1) -> None:
        self._id(sid)
        p0 = max(p0, 0)
        p1 = float("inf") if p1 < 0 else p1
        self.meta[sid] = {p: t for p, t in self.meta[sid].items() if not p0 <= p < p1}

    def seq_cp(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None:
        self._id(src)
        self._id(dst)
        if src == dst:
            return
        if (p0 > 0 and p0 + 1 < self.n_ctx_seq) or (p1 > 0 and p1 + 1 < self.n_ctx_seq):
            raise Abort(f"partial cross-stream copy seq_cp({src}, {dst}, {p0}, {p1})")
        if src in self._pending_dst():
            raise Abort(f"copy from stream {src} before its own copy happened")
        self.meta[dst] = dict(self.meta[src])
        self.pending.append((src, dst))

    def seq_pos_max(self, sid: int) -> int:
        self._id(sid)
        return max(self.meta[sid], default=-1)

    def state_get(self, sid: int) -> bytearray:
        self._id(sid)
        if sid in self._pending_dst():
            raise Abort(f"snapshot of stream {sid} before the copy into it happened")
        cells = {p: self.data[sid][p] for p in self.meta[sid]}
        return bytearray(pickle.dumps(cells))

    def state_set(self, sid: int, blob: bytearray) -> int:
        self._id(sid)
        if sid in self._pending_src():
            raise Abort(f"restore into stream {sid} before the copy out of it happened")
        cells = pickle.loads(bytes(blob))
        self.meta[sid] = dict(cells)
        self.data[sid] = dict(cells)
        return len(blob)

    def decode(self, entries: list[tuple[int, int, list[int]]]) -> tuple[int, list[list[int]]]:
        """Decode (seq id, first position, tokens) runs. Returns (status, per run the fake model's
        next token after each of its positions)."""
        for src, dst in self.pending:  # deferred copies happen first, in order
            self.data[dst] = dict(self.data[src])
        self.pending = []
        self.decodes += 1
        self.ubatch_log.append(ubatch.count([(sid, len(toks)) for sid, _, toks in entries], self.n_ubatch))
        out = []
        for sid, pos, toks in entries:
            self._id(sid)
            meta, data = self.meta[sid], self.data[sid]
            if max(meta, default=-1) + 1 != pos or any(p not in meta for p in range(pos)):
                raise Abort(f"stream {sid}: position {pos} does not follow its cells (pos max {max(meta, default=-1)})")
            for p in range(pos):
                if data.get(p) != meta[p]:
                    raise Abort(f"stream {sid}: cell {p} has metadata but not the data (read before copy?)")
            if pos + len(toks) > self.n_ctx_seq:
                return 1, []
            nxt = []
            for i, t in enumerate(toks):
                meta[pos + i] = data[pos + i] = t
                nxt.append(next_token([data[p] for p in range(pos + i + 1)]))
            self.computed += len(toks)
            out.append(nxt)
        return 0, out

    def clear(self) -> None:
        self.meta = [{} for _ in range(self.n_seq)]
        self.data = [{} for _ in range(self.n_seq)]
        self.pending = []
