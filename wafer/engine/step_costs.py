"""What engine steps cost: ubatches (passes over the weights) and wall time, by step shape.

Every step is recorded with the number of sequences it decoded, whether it carried prefill tokens, the
ubatches llama.cpp split it into (``ubatch.split``) and the time ``llama_decode`` took. /wafer/stats
and /metrics report the totals and, per shape (running sequences bucketed 1, 2-4, 5-8, 9-16, 17-32,
33+; with or without prefill), the mean ubatches and median milliseconds of the recent steps.
"""

from __future__ import annotations

from collections import deque

import numpy as np

BUCKETS = ((1, 1), (2, 4), (5, 8), (9, 16), (17, 32), (33, 256))
RECENT = 256  # steps kept per shape


def bucket(n: int) -> str:
    for lo, hi in BUCKETS:
        if lo <= n <= hi:
            return str(lo) if lo == hi else f"{lo}-{hi}"
    return "0"


class StepCosts:
    def __init__(self):
        self.steps = 0
        self.ubatches = 0
        self.decode_s = 0.0
        self.last_ubatches = 0
        self._recent: dict[tuple[str, bool], deque] = {}

    def record(self, seqs: int, prefill: bool, ubatches: int, seconds: float) -> None:
        self.steps += 1
        self.ubatches += ubatches
        self.decode_s += seconds
        self.last_ubatches = ubatches
        key = (bucket(seqs), prefill)
        self._recent.setdefault(key, deque(maxlen=RECENT)).append((ubatches, seconds))

    def stats(self) -> dict:
        shapes = []
        for (b, prefill), rows in sorted(self._recent.items(), key=lambda kv: (int(kv[0][0].split("-")[0]), kv[0][1])):
            u = np.array([r[0] for r in rows], dtype=float)
            ms = np.array([r[1] for r in rows]) * 1000
            shapes.append({"sequences": b, "prefill": prefill, "steps": len(rows),
                           "ubatches_mean": round(float(u.mean()), 3), "ms_p50": round(float(np.median(ms)), 3)})
        return {
            "steps": self.steps,
            "ubatches": self.ubatches,
            "ubatches_per_step": self.ubatches / self.steps if self.steps else 0.0,
            "last_ubatches": self.last_ubatches,
            "decode_seconds": self.decode_s,
            "by_shape": shapes,
        }
