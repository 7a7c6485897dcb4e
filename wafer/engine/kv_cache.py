"""The one owner of KV memory: one llama.cpp KV stream per running sequence, and prefix reuse.

llama.cpp runs with ``kv_unified = false``: sequence id i is stream i, a fixed block of ``n_ctx_seq``
cells that only sequence i attends to, so a decode pays for its own cells only. The scheduler asks this
object to admit a request (streams for its sequences), to prepare a sequence before its first chunk
(reuse a cached prefix), to fork ``n > 1`` children from their parent, and to release a sequence. Nothing
else touches llama.cpp's memory.

Prefix reuse, three ways, all counted in the same exact ``cached_tokens``:

- **resident**: a finished sequence's tokens stay in its stream. A new request takes the lowest free
  id, which keeps running sequences on a packed range of ids (one ubatch per decode step); the prefix
  that stream already holds is kept in place (cut with ``seq_rm``), and a longer one held by another
  stream is copied (below).
- **host memory** (``HostCache``): before a stream's content would be lost (a request takes the stream
  and keeps less than ``save_min`` tokens short of all of it, or a request is preempted), it is saved as
  a snapshot (``llama_state_seq_get_data_ext``); a later request restores the snapshot sharing the
  longest prefix (``set_data_ext``) and cuts it back.
- **another stream**: a prefix held by another stream (running or idle) is copied, with the whole-stream
  ``seq_cp(src, dst, -1, -1)`` + ``seq_rm(dst, n, -1)`` or with a snapshot of the source restored into
  the destination, whichever is cheaper: measured here, the whole-stream copy moves about ten times
  more bytes per second than a snapshot round trip, so it wins unless the source uses less than a
  tenth of its stream (``SNAPSHOT_RATIO``). A request whose prefix a running sequence is still
  computing waits for it (``Sequence.wait``) instead of computing the same tokens twice; ``n > 1``
  children are forked from the parent's prompt the same way.

The llama.cpp rules this respects (several abort the process when broken): a sequence id is below the
stream count; a copy between streams is whole-stream only; such a copy happens at the start of the next
``llama_decode``, so until then the destination is not read (snapshot, copy source) and the source's
data is not overwritten (restore). ``decoded()`` marks that point.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from .host_cache import HostCache

MIN_GAIN = 16  # tokens a copy or restore must add over what the stream keeps in place
SAVE_MIN = 64  # tokens a stream must be about to lose to be saved to host memory
SNAPSHOT_RATIO = 10  # a snapshot copy is used when the stream is this many times the source's cells


def common_prefix(a, b, limit: int | None = None) -> int:
    n = min(len(a), len(b)) if limit is None else min(len(a), len(b), limit)
    if n == 0:
        return 0
    x = np.asarray(a[:n], dtype=np.int64)
    y = np.asarray(b[:n], dtype=np.int64)
    diff = np.flatnonzero(x != y)
    return int(diff[0]) if len(diff) else n


class Stream:
    __slots__ = ("id", "tokens", "owner", "last_used")

    def __init__(self, sid: int, now: float):
        self.id = sid
        self.tokens: list[int] = []  # what its cells hold while idle (positions 0..len-1)
        self.owner = None  # the running Sequence using it
        self.last_used = now

    def content(self) -> list[int]:
        """Tokens whose cells the stream holds: a prepared owner's computed tokens, else what it held
        when idle (an owner that has not been prepared yet has not touched the cells)."""
        o = self.owner
        return o.tokens[: o.num_computed] if o is not None and o.prepared else self.tokens


class KVCache:
    def __init__(self, ctx, enabled: bool = True, cache_ram: int = 2 << 30, ttl_min: float = 300.0,
                 ttl_max: float = 3600.0, clock: Callable[[], float] = time.monotonic):
        self.ctx = ctx
        self.enabled = enabled
        self.clock = clock
        self.ttl_min = ttl_min
        self.ttl_max = ttl_max
        now = clock()
        self.streams = [Stream(i, now) for i in range(ctx.n_seq)]
        self.host = HostCache(cache_ram, ttl_min, ttl_max, clock) if enabled and cache_ram > 0 else None
        self.pending_src: set[int] = set()  # streams copied from since the last decode
        self.pending_dst: set[int] = set()  # streams copied into since the last decode
        self._next_expiry = 0.0
        self.lookups = self.hits = self.lookup_tokens = self.hit_tokens = 0
        self.hits_by = {"resident": 0, "stream": 0, "host": 0}
        self.tokens_by = {"resident": 0, "stream": 0, "host": 0}
        self.stream_copies = self.snapshot_copies = self.restore_failures = 0
        self.expired = 0

    # -- capacity ----------------------------------------------------------------------------
    @property
    def n_streams(self) -> int:
        return len(self.streams)

    def free(self) -> list[Stream]:
        return [st for st in self.streams if st.owner is None]

    @property
    def used_cells(self) -> int:
        return sum(len(st.content()) for st in self.streams)

    @property
    def running_cells(self) -> int:
        return sum(st.owner.num_computed for st in self.streams if st.owner is not None and st.owner.prepared)

    @property
    def resident_cells(self) -> int:
        return sum(len(st.tokens) for st in self.streams if st.owner is None)

    # -- admission ---------------------------------------------------------------------------
    def admit(self, seqs: list) -> bool:
        """Give each sequence of a request a stream, or none of them (False: not enough free). They
        take the lowest free ids, which keeps running sequences on a packed range (a decode step of
        sequences with consecutive ids is one ubatch; a gap costs another pass over the weights, more
        than copying a cached prefix from wherever it is). Contents change only when a sequence is
        prepared."""
        free = self.free()
        if len(free) < len(seqs):
            return False
        for s, st in zip(seqs, free):
            self._own(st, s)
        return True

    def _own(self, st: Stream, seq) -> None:
        st.owner = seq
        seq.seq_id = st.id
        seq.num_computed = 0

    # -- prefix reuse ------------------------------------------------------------------------
    def prepare(self, seq, share: bool = True) -> bool:
        """Before a sequence's first chunk: put the longest available prefix of its tokens into its
        stream (at least one token is left to compute). False: wait for a running sequence that is
        computing a longer prefix (``seq.wait``). Sets ``seq.num_computed`` and ``seq.prepared``."""
        st = self.streams[seq.seq_id]
        tokens = seq.tokens
        limit = len(tokens) - 1
        if not (self.enabled and share):
            self._save_before_loss(st, 0)
            self.ctx.seq_rm(st.id, 0, -1)
            st.tokens = []
            seq.num_computed = 0
            seq.prepared = True
            return True
        keep = common_prefix(st.tokens, tokens, limit)
        src, m_stream = None, 0  # the best prefix in another stream (running or idle)
        for other in self.streams:
            o = other.owner
            if other is st or other.id in self.pending_dst or (o is not None and not o.prepared):
                continue
            m = common_prefix(o.tokens if o is not None else other.tokens, tokens, limit)
            if m > m_stream:
                src, m_stream = other, m
        entry, m_host = None, 0
        if self.host is not None and st.id not in self.pending_src:
            entry, m_host = self.host.lookup(tokens, limit)
        how, n = "resident", keep
        if max(m_stream, m_host) >= keep + MIN_GAIN:
            if m_stream >= m_host:
                if src.owner is not None and src.owner.num_computed < m_stream:
                    seq.wait = (src.owner, m_stream)  # it is computing them: take them when done
                    return False
                how, n = "stream", m_stream
            else:
                how, n = "host", m_host
        seq.wait = None
        self.lookups += 1
        self.lookup_tokens += len(tokens)
        if how == "resident":
            self._save_before_loss(st, keep)
            self.ctx.seq_rm(st.id, keep, -1)
        elif how == "stream":
            self._save_before_loss(st, 0)
            self._copy(src, st, n)
        else:
            self._save_before_loss(st, 0)
            if self.ctx.state_set(st.id, entry.data) == 0:  # llama.cpp cleared the stream
                self.restore_failures += 1
                n = 0
            else:
                self.ctx.seq_rm(st.id, n, -1)
                self.host.touch(entry)
        st.tokens = []
        seq.num_computed = n
        seq.prepared = True
        if n:
            self.hits += 1
            self.hit_tokens += n
            self.hits_by[how] += 1
            self.tokens_by[how] += n
        return True

    def _copy(self, src: Stream, dst: Stream, n: int) -> None:
        """Copy the first n cells of ``src`` into ``dst`` (replacing dst's content): the whole-stream
        copy (deferred to the next decode) or a snapshot, whichever moves fewer bytes."""
        used = len(src.content())
        if self.ctx.n_ctx_seq <= SNAPSHOT_RATIO * used or dst.id in self.pending_src:
            self.ctx.seq_cp(src.id, dst.id, -1, -1)
            self.pending_src.add(src.id)
            self.pending_dst.add(dst.id)
            self.stream_copies += 1
        else:
            self.ctx.state_set(dst.id, self.ctx.state_get(src.id))
            self.snapshot_copies += 1
        self.ctx.seq_rm(dst.id, n, -1)

    def fork(self, parent, child) -> None:
        """``n > 1``: give a child its parent's computed prompt."""
        st = self.streams[child.seq_id]
        self._save_before_loss(st, 0)
        st.tokens = []
        self._copy(self.streams[parent.seq_id], st, parent.num_computed)
        child.num_computed = parent.num_computed
        child.prepared = True

    def _save_before_loss(self, st: Stream, keep: int) -> None:
        """Snapshot an idle stream's content to host memory when more than SAVE_MIN tokens of it are
        about to go and no entry has them yet."""
        toks = st.tokens
        if (self.host is None or len(toks) - keep < SAVE_MIN or st.id in self.pending_dst
                or self.host.covers(toks)):
            return
        self.host.insert(toks, self.ctx.state_get(st.id))

    # -- release -----------------------------------------------------------------------------
    def release(self, seq) -> None:
        """A sequence stops running: its computed tokens stay in its stream as resident cache."""
        sid = seq.seq_id
        if sid is None:
            return
        st = self.streams[sid]
        st.owner = None
        seq.seq_id = None
        if not seq.prepared:  # it never touched the stream: what was there stays
            return
        st.last_used = self.clock()
        if self.enabled and sid not in self.pending_dst:
            st.tokens = list(seq.tokens[: seq.num_computed])
            self.ctx.seq_rm(sid, seq.num_computed, -1)  # drafted cells past what was kept, if any
        else:  # nothing to keep, or a copy into it is still in flight
            st.tokens = []
            self.ctx.seq_rm(sid, 0, -1)

    def preempt(self, seq) -> None:
        """Take a running sequence off its stream, keeping its cells in host memory as well as
        resident, so it resumes without recomputing."""
        st = self.streams[seq.seq_id]
        if (self.host is not None and seq.prepared and seq.num_computed >= SAVE_MIN
                and st.id not in self.pending_dst):
            toks = list(seq.tokens[: seq.num_computed])
            if not self.host.covers(toks):
                self.host.insert(toks, self.ctx.state_get(st.id))
        self.release(seq)

    def decoded(self) -> None:
        """A llama_decode ran: deferred stream copies are done."""
        self.pending_src.clear()
        self.pending_dst.clear()

    # -- retention ---------------------------------------------------------------------------
    def expire(self) -> None:
        """Drop resident content and host entries unused for ttl_max (checked once a second)."""
        now = self.clock()
        if now < self._next_expiry:
            return
        self._next_expiry = now + 1.0
        for st in self.streams:
            if st.owner is None and st.tokens and now - st.last_used >= self.ttl_max and st.id not in self.pending_src:
                self.ctx.seq_rm(st.id, 0, -1)
                st.tokens = []
                self.expired += 1
        if self.host is not None:
            self.expired += self.host.expire()

    def clear(self) -> None:
        """Forget everything no running sequence uses (resident content and host entries)."""
        for st in self.streams:
            if st.owner is None and st.id not in self.pending_src:
                self.ctx.seq_rm(st.id, 0, -1)
                st.tokens = []
        if self.host is not None:
            self.host.clear()

    def reset(self) -> None:
        """After a failed decode: nothing in llama.cpp's memory is trusted any more."""
        self.ctx.clear()
        for st in self.streams:
            st.tokens = []
        self.decoded()
        if self.host is not None:
            self.host.clear()

    # -- introspection -----------------------------------------------------------------------
    def stats(self) -> dict:
        host = self.host.stats() if self.host is not None else {}
        resident = [st for st in self.streams if st.owner is None and st.tokens]
        return {
            "enabled": self.enabled,
            "cached_cells": self.resident_cells,
            "entries": len(resident) + host.get("host_entries", 0),
            "resident_streams": len(resident),
            "lookups": self.lookups,
            "hits": self.hits,
            "hit_rate": self.hits / self.lookups if self.lookups else 0.0,
            "hit_tokens": self.hit_tokens,
            "token_hit_rate": self.hit_tokens / self.lookup_tokens if self.lookup_tokens else 0.0,
            "hits_by_source": dict(self.hits_by),
            "hit_tokens_by_source": dict(self.tokens_by),
            "stream_copies": self.stream_copies,
            "snapshot_copies": self.snapshot_copies,
            "restore_failures": self.restore_failures,
            "evictions": self.expired + host.get("host_evictions", 0),
            "ttl_min": self.ttl_min,
            "ttl_max": self.ttl_max,
            **host,
        }

    def check(self) -> None:
        """Assert that what this object believes matches llama.cpp's memory (tests)."""
        for st in self.streams:
            if st.id in self.pending_dst:
                continue
            assert self.ctx.seq_pos_max(st.id) == len(st.content()) - 1, (st.id, self.ctx.seq_pos_max(st.id),
                                                                           len(st.content()))
            if st.owner is not None:
                assert st.owner.seq_id == st.id
        if self.host is not None:
            self.host.check()
