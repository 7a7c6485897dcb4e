"""The host-memory prompt cache: KV snapshots of token sequences in a radix tree over token ids.

An entry is the KV content of one stream (``llama_state_seq_get_data_ext``: every cell of the
sequence, positions 0..len-1) together with its tokens. Any entry restores into any stream
(``llama_state_seq_set_data_ext``) and is then cut back to the prefix the new request shares with it,
so a lookup returns the entry sharing the longest prefix with a prompt (the shortest such entry: it
restores fastest).

- bounded in bytes (``--cache-ram``): least recently used entries go first, those unused for at least
  ``ttl_min`` before younger ones; a snapshot larger than the whole budget is not kept;
- entries unused for ``ttl_max`` are dropped (``expire``);
- an entry that is a prefix of a newer one is dropped (the newer one serves every lookup it served),
  and a snapshot already covered by an entry is not stored twice (``covers``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass(eq=False)
class Entry:
    tokens: list[int]
    data: bytearray
    last_access: float
    node: "Node | None" = field(default=None, repr=False)

    @property
    def nbytes(self) -> int:
        return len(self.data)


class Node:
    __slots__ = ("parent", "children", "tokens", "entry")

    def __init__(self, parent: "Node | None", tokens: list[int]):
        self.parent = parent
        self.children: dict[int, Node] = {}
        self.tokens = tokens  # the edge from the parent
        self.entry: Entry | None = None


def _match(edge: list[int], tokens: list[int], pos: int, limit: int) -> int:
    n = min(len(edge), limit - pos)
    k = 0
    while k < n and edge[k] == tokens[pos + k]:
        k += 1
    return k


class HostCache:
    def __init__(self, capacity_bytes: int, ttl_min: float = 300.0, ttl_max: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic):
        self.capacity = capacity_bytes
        self.ttl_min = ttl_min
        self.ttl_max = ttl_max
        self.clock = clock
        self.root = Node(None, [])
        self.entries: list[Entry] = []
        self.nbytes = 0
        self.saves = 0
        self.restores = 0
        self.evictions = 0
        self.dropped_prefixes = 0

    # -- lookups -----------------------------------------------------------------------------
    def _descend(self, tokens: list[int], limit: int) -> tuple[Node, int, Node | None]:
        """Walk ``tokens[:limit]`` down the tree. Returns the last node fully matched, the matched
        length, and the child the walk stopped inside (None when it stopped on a node boundary)."""
        node, pos = self.root, 0
        while pos < limit:
            child = node.children.get(tokens[pos])
            if child is None:
                return node, pos, None
            k = _match(child.tokens, tokens, pos, limit)
            pos += k
            if k < len(child.tokens):
                return node, pos, child
            node = child
        return node, pos, None

    @staticmethod
    def _entries_below(node: Node) -> list[Entry]:
        out, stack = [], [node]
        while stack:
            n = stack.pop()
            if n.entry is not None:
                out.append(n.entry)
            stack.extend(n.children.values())
        return out

    def lookup(self, tokens: list[int], limit: int) -> tuple[Entry | None, int]:
        """The entry sharing the longest prefix with ``tokens[:limit]`` and that length."""
        node, pos, inside = self._descend(tokens, limit)
        if pos == 0:
            return None, 0
        below = self._entries_below(inside if inside is not None else node)
        if not below:
            return None, 0
        return min(below, key=lambda e: len(e.tokens)), pos

    def covers(self, tokens: list[int]) -> bool:
        """Whether an entry starts with all of ``tokens`` (a snapshot of them would add nothing)."""
        node, pos, inside = self._descend(tokens, len(tokens))
        return pos == len(tokens) and bool(self._entries_below(inside if inside is not None else node))

    def touch(self, entry: Entry) -> None:
        entry.last_access = self.clock()
        self.restores += 1

    # -- changes -----------------------------------------------------------------------------
    def insert(self, tokens: list[int], data: bytearray) -> Entry | None:
        """Keep a snapshot of ``tokens``; returns the entry, or None when it cannot be kept."""
        if not tokens or len(data) > self.capacity or self.covers(tokens):
            return None
        self._make_room(len(data))
        node, pos = self.root, 0
        while pos < len(tokens):
            child = node.children.get(tokens[pos])
            if child is None:
                child = Node(node, list(tokens[pos:]))
                node.children[tokens[pos]] = child
                node, pos = child, len(tokens)
                break
            k = _match(child.tokens, tokens, pos, len(tokens))
            if k < len(child.tokens):  # split the edge after k tokens
                upper = Node(node, child.tokens[:k])
                node.children[tokens[pos]] = upper
                child.tokens = child.tokens[k:]
                child.parent = upper
                upper.children[child.tokens[0]] = child
                child = upper
            node, pos = child, pos + k
            if node.entry is not None and pos < len(tokens):  # a prefix of the new entry
                self._remove(node.entry, prune=False)
                self.dropped_prefixes += 1
        entry = Entry(list(tokens), data, self.clock(), node)
        node.entry = entry
        self.entries.append(entry)
        self.nbytes += entry.nbytes
        self.saves += 1
        return entry

    def _remove(self, entry: Entry, prune: bool = True) -> None:
        node = entry.node
        node.entry = None
        entry.node = None
        self.entries.remove(entry)
        self.nbytes -= entry.nbytes
        while prune and node is not self.root and node.entry is None and not node.children:
            parent = node.parent
            del parent.children[node.tokens[0]]
            node = parent

    def _make_room(self, nbytes: int) -> None:
        now = self.clock()
        for young in (False, True):
            for e in sorted(self.entries, key=lambda e: e.last_access):
                if self.nbytes + nbytes <= self.capacity:
                    return
                if young or now - e.last_access >= self.ttl_min:
                    self._remove(e)
                    self.evictions += 1

    def expire(self) -> int:
        """Drop the entries unused for ttl_max; returns how many."""
        now = self.clock()
        old = [e for e in self.entries if now - e.last_access >= self.ttl_max]
        for e in old:
            self._remove(e)
        self.evictions += len(old)
        return len(old)

    def clear(self) -> None:
        for e in list(self.entries):
            self._remove(e)

    # -- introspection -----------------------------------------------------------------------
    @property
    def tokens(self) -> int:
        return sum(len(e.tokens) for e in self.entries)

    def stats(self) -> dict:
        return {
            "host_entries": len(self.entries),
            "host_tokens": self.tokens,
            "host_bytes": self.nbytes,
            "host_capacity_bytes": self.capacity,
            "host_saves": self.saves,
            "host_restores": self.restores,
            "host_evictions": self.evictions,
            "host_dropped_prefixes": self.dropped_prefixes,
        }

    def check(self) -> None:
        """Assert the tree's invariants (tests)."""
        seen = []
        stack = [(self.root, [])]
        while stack:
            n, path = stack.pop()
            if n.entry is not None:
                assert n.entry.tokens == path and n.entry.node is n
                seen.append(n.entry)
            for t, c in n.children.items():
                assert c.parent is n and c.tokens and c.tokens[0] == t
                assert c.entry is not None or c.children, "a node without entry or children"
                stack.append((c, path + c.tokens))
        assert sorted(map(id, seen)) == sorted(map(id, self.entries))
        assert self.nbytes == sum(e.nbytes for e in self.entries) <= self.capacity
