"""How llama.cpp splits one ``llama_decode`` into ubatches when every sequence has its own KV stream.

With ``kv_unified = false`` llama.cpp splits a batch with ``split_equal(n_ubatch, sequential=true)``
(``src/llama-batch.cpp``): a ubatch takes, in batch order, sequences with consecutive ids (each next id
is the previous + 1) and the same number of tokens from each; what does not fit goes to further
ubatches. Every ubatch is a full pass over the weights, so the number of ubatches is the cost model of a
step. ``split`` replays that algorithm on the (seq id, token count) runs of a batch: the scheduler uses
it to report ubatches per step, the tests' fake context to check what the scheduler builds.
"""

from __future__ import annotations


def split(entries: list[tuple[int, int]], n_ubatch: int) -> list[list[tuple[int, int]]]:
    """The ubatches of a batch given as (seq id, tokens) runs in batch order (one run per sequence).
    Returns, per ubatch, the (seq id, tokens taken) pairs."""
    order = [sid for sid, n in entries if n > 0]
    left = {sid: n for sid, n in entries if n > 0}
    if len(left) != len(order):
        raise ValueError("one run per sequence expected")
    out: list[list[tuple[int, int]]] = []
    while any(left.values()):
        seqs: list[int] = []
        for sid in order:  # consecutive ids, in batch order, starting at the first with tokens left
            if not left[sid]:
                continue
            if not seqs or sid == seqs[-1] + 1:
                seqs.append(sid)
                if len(seqs) > n_ubatch:
                    break
        take = 0
        while all(left[s] > take for s in seqs):
            take += 1
            if (take + 1) * len(seqs) > n_ubatch:
                break
        for s in seqs:
            left[s] -= take
        out.append([(s, take) for s in seqs])
    return out


def count(entries: list[tuple[int, int]], n_ubatch: int) -> int:
    return len(split(entries, n_ubatch))
