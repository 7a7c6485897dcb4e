"""Automatic prefix caching on llama.cpp's unified KV cache: a radix tree over token ids.

Every node is a run of tokens at known positions whose KV cells exist once in llama.cpp's cache. A
node's ``holder`` is a sequence id whose cells cover the whole path from the root to the node's end,
so ``llama_memory_seq_cp(holder, seq, 0, end)`` shares that path with another sequence without
computing anything (unified KV cells can belong to several sequences).

- Sequences insert what they compute after every step, so a prefix is findable as soon as it is
  in the KV cache (requests running at the same time share it) and generated tokens are cacheable
  (turn N+1 of a conversation).
- A finished sequence's id stays as the holder of its leaf: its cells are the cache. When an
  inserted run duplicates cells the tree already has (two requests computed the same tokens), the
  sequence is re-linked onto the tree's cells and its own copies are freed.
- Eviction removes least recently used leaves whose holder is not running and that no running
  sequence has locked: first those unused for ``ttl_min`` seconds, then — only when running
  requests need the memory or a sequence id — younger ones. Leaves unused for ``ttl_max`` are
  dropped. Cells a running request uses are never evicted (its lock protects its path).
- ``cells`` is exact: the tree's spans are the KV cells the cache holds.
"""

from __future__ import annotations

import time
from typing import Callable


def _run(node_tokens: list[int], tokens: list[int], pos: int, limit: int) -> int:
    """How many of a node's tokens match ``tokens[pos:limit]`` (the first is known to match)."""
    n = min(len(node_tokens), limit - pos)
    k = 1
    while k < n and node_tokens[k] == tokens[pos + k]:
        k += 1
    return k


class Node:
    __slots__ = ("parent", "children", "tokens", "start", "holder", "lockers", "last_access")

    def __init__(self, parent: "Node | None", start: int, tokens: list[int], holder: int, now: float):
        self.parent = parent
        self.children: dict[int, Node] = {}
        self.tokens = tokens
        self.start = start
        self.holder = holder
        self.lockers: list[int] = []  # ids of running sequences whose shared path ends here
        self.last_access = now

    @property
    def end(self) -> int:
        return self.start + len(self.tokens)


class PrefixCache:
    def __init__(
        self,
        seq_cp: Callable[[int, int, int, int], None],
        seq_rm: Callable[[int, int, int], None],
        ttl_min: float = 300.0,
        ttl_max: float = 3600.0,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.seq_cp = seq_cp
        self.seq_rm = seq_rm
        self.ttl_min = ttl_min
        self.ttl_max = ttl_max
        self.enabled = enabled
        self.clock = clock
        self.root = Node(None, 0, [], -1, clock())
        self.cells = 0
        self.holds: dict[int, int] = {}  # sequence id -> nodes it holds
        self.active: set[int] = set()  # sequence ids of running sequences
        self.lookups = 0
        self.hits = 0
        self.hit_tokens = 0
        self.lookup_tokens = 0
        self.evictions = 0
        self.evicted_cells = 0
        self.relinked_cells = 0
        self._next_expiry = 0.0

    # -- bookkeeping -------------------------------------------------------------------------
    def _hold(self, node: Node, slot: int) -> None:
        node.holder = slot
        self.holds[slot] = self.holds.get(slot, 0) + 1

    def _unhold(self, slot: int) -> None:
        self.holds[slot] -= 1
        if self.holds[slot] == 0:
            del self.holds[slot]

    def holder_slots(self) -> set[int]:
        """Sequence ids kept only as cache holders (not running)."""
        return set(self.holds) - self.active

    def _split(self, node: Node, k: int) -> Node:
        """Split ``node`` after its first k tokens; returns the new upper node (node keeps the rest)."""
        upper = Node(node.parent, node.start, node.tokens[:k], -1, node.last_access)
        self._hold(upper, node.holder)
        node.parent.children[node.tokens[0]] = upper
        node.tokens = node.tokens[k:]
        node.start += k
        node.parent = upper
        upper.children[node.tokens[0]] = node
        return upper

    def _walk(self, tokens: list[int], start_node: Node, pos: int, limit: int, on_node=None) -> tuple[Node, int]:
        """Follow ``tokens[pos:limit]`` down from ``start_node``; the match is made to end on a node
        boundary (splitting a node if needed). ``on_node(node, a, b)`` sees each matched run."""
        node = start_node
        while pos < limit:
            child = node.children.get(tokens[pos])
            if child is None:
                break
            k = _run(child.tokens, tokens, pos, limit)
            if k < len(child.tokens):
                child = self._split(child, k)
            if on_node is not None:
                on_node(child, pos, pos + k)
            node = child
            pos += k
        return node, pos

    def _touch(self, node: Node, now: float) -> None:
        while node is not None:
            node.last_access = now
            node = node.parent

    def _lock(self, seq, node: Node | None) -> None:
        if seq.node is not None:
            seq.node.lockers.remove(seq.slot)
        seq.node = node if node is not self.root else None
        if seq.node is not None:
            seq.node.lockers.append(seq.slot)

    # -- what the scheduler calls --------------------------------------------------------------
    def peek(self, tokens: list[int]) -> int:
        """Length of the cached prefix of ``tokens`` (at most len - 1), without changing anything."""
        if not self.enabled:
            return 0
        node, pos, limit = self.root, 0, len(tokens) - 1
        while pos < limit:
            child = node.children.get(tokens[pos])
            if child is None:
                break
            k = _run(child.tokens, tokens, pos, limit)
            pos += k
            if k < len(child.tokens):
                break
            node = child
        return pos

    def acquire(self, seq, share: bool = True) -> int:
        """Share the longest cached prefix of ``seq.tokens`` (leaving at least one token to compute).
        Returns the number of tokens ``seq`` does not have to compute. ``share=False``: compute
        everything (prompt logprobs need the logits of every prompt position)."""
        self.active.add(seq.slot)
        if not (self.enabled and share):
            return 0
        now = self.clock()
        self.lookups += 1
        self.lookup_tokens += len(seq.tokens)
        node, pos = self._walk(seq.tokens, self.root, 0, len(seq.tokens) - 1)
        if pos == 0:
            return 0
        self.seq_cp(node.holder, seq.slot, 0, pos)
        self._lock(seq, node)
        self._touch(node, now)
        seq.num_computed = seq.shared = seq.tree_end = pos
        self.hits += 1
        self.hit_tokens += pos
        return pos

    def insert(self, seq) -> None:
        """Add what ``seq`` has computed since its last insert."""
        upto = seq.num_computed
        if not self.enabled or upto <= seq.tree_end:
            return
        now = self.clock()
        tokens = seq.tokens
        node = seq.node or self.root
        pos = seq.tree_end
        if node is not self.root and not node.children and node.holder == seq.slot and node.end == pos:
            node.tokens.extend(tokens[pos:upto])  # the common case: a sequence growing its own leaf
            self.cells += upto - pos
            seq.tree_end = upto
            node.last_access = now
            return
        own_from = max(seq.tree_end, seq.shared)

        def relink(n: Node, a: int, b: int) -> None:
            a = max(a, own_from)
            if n.holder != seq.slot and b > a:  # same tokens, other cells: use the tree's, free ours
                self.seq_rm(seq.slot, a, b)
                self.seq_cp(n.holder, seq.slot, a, b)
                self.relinked_cells += b - a

        node, pos = self._walk(tokens, node, pos, upto, relink)
        if pos < upto:
            leaf = Node(node, pos, tokens[pos:upto], -1, now)
            self._hold(leaf, seq.slot)
            node.children[tokens[pos]] = leaf
            self.cells += upto - pos
            node = leaf
        self._lock(seq, node)
        self._touch(node, now)
        seq.tree_end = upto

    def release(self, seq) -> bool:
        """A sequence stops running. Returns True when its id is free (its cells were cleared or
        belong to the tree through other holders); False when it stays as a cache holder."""
        slot = seq.slot
        self._lock(seq, None)
        self.active.discard(slot)
        end, seq.tree_end = seq.tree_end, 0
        if slot in self.holds:
            self.seq_rm(slot, end, -1)  # cells past what the tree knows are not part of the cache
            return False
        self.seq_rm(slot, 0, -1)
        return True

    # -- eviction ----------------------------------------------------------------------------
    def _leaves(self) -> list[Node]:
        out, stack = [], [self.root]
        while stack:
            n = stack.pop()
            if n.children:
                stack.extend(n.children.values())
            elif n is not self.root:
                out.append(n)
        return out

    def _evictable(self) -> list[Node]:
        return sorted(
            (n for n in self._leaves() if not n.lockers and n.holder not in self.active),
            key=lambda n: n.last_access,
        )

    def _evict_leaf(self, leaf: Node) -> list[int]:
        """Remove one leaf (and ancestors left without use); returns the sequence ids now free."""
        freed_before = set(self.holds)
        h = leaf.holder
        node = leaf
        while node is not self.root and not node.children and not node.lockers:
            parent = node.parent
            del parent.children[node.tokens[0]]
            self.cells -= len(node.tokens)
            self.evicted_cells += len(node.tokens)
            self._unhold(node.holder)
            node = parent
        while node is not self.root:  # survivors that h held get another holder
            if node.holder == h:
                self._unhold(h)
                if node.children:
                    self._hold(node, next(iter(node.children.values())).holder)
                else:  # locked by running sequences, whose cells cover it
                    self._hold(node, node.lockers[0])
            node = node.parent
        self.evictions += 1
        free = [s for s in freed_before if s not in self.holds and s not in self.active]
        for s in free:
            self.seq_rm(s, 0, -1)
        return free

    def evict(self, cells: int = 0, slots: int = 0, allow_young: bool = False) -> tuple[int, list[int]]:
        """Evict LRU leaves until ``cells`` cells and ``slots`` sequence ids are freed (or nothing
        evictable is left). Young leaves (used within ttl_min) go only when ``allow_young``."""
        now = self.clock()
        got_cells, got_slots = 0, []
        for leaf in self._evictable():
            if got_cells >= cells and len(got_slots) >= slots:
                break
            if not allow_young and now - leaf.last_access < self.ttl_min:
                break
            before = self.cells
            got_slots += self._evict_leaf(leaf)
            got_cells += before - self.cells
        return got_cells, got_slots

    def expire(self) -> list[int]:
        """Drop leaves unused for ttl_max (checked at most once a second). Returns the ids freed."""
        now = self.clock()
        if now < self._next_expiry or not self.holds:
            return []
        self._next_expiry = now + 1.0
        freed: list[int] = []
        for leaf in self._evictable():
            if now - leaf.last_access < self.ttl_max:
                break
            freed += self._evict_leaf(leaf)
        return freed

    def clear(self) -> list[int]:
        """Forget everything that is not in use; returns the sequence ids freed."""
        freed: list[int] = []
        for leaf in self._evictable():
            if leaf.parent is not None:
                freed += self._evict_leaf(leaf)
        return freed

    # -- introspection -----------------------------------------------------------------------
    def stats(self) -> dict:
        return {
            "enabled": self.enabled,
            "cached_cells": self.cells,
            "entries": len(self._leaves()),
            "holder_sequences": len(self.holder_slots()),
            "lookups": self.lookups,
            "hits": self.hits,
            "hit_rate": self.hits / self.lookups if self.lookups else 0.0,
            "hit_tokens": self.hit_tokens,
            "token_hit_rate": self.hit_tokens / self.lookup_tokens if self.lookup_tokens else 0.0,
            "evictions": self.evictions,
            "evicted_cells": self.evicted_cells,
            "relinked_cells": self.relinked_cells,
            "ttl_min": self.ttl_min,
            "ttl_max": self.ttl_max,
        }

    def check(self) -> None:
        """Assert the tree's invariants (tests)."""
        total = 0
        holds: dict[int, int] = {}
        stack = [self.root]
        while stack:
            n = stack.pop()
            for t, c in n.children.items():
                assert c.parent is n and c.tokens and c.tokens[0] == t and c.start == n.end
                stack.append(c)
            if n is not self.root:
                total += len(n.tokens)
                holds[n.holder] = holds.get(n.holder, 0) + 1
                assert n.children or n.lockers or n.holder in holds
        assert total == self.cells, (total, self.cells)
        assert holds == self.holds, (holds, self.holds)
