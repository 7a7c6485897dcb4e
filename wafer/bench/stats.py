"""Percentiles (linear interpolation, numpy's default) and the metrics of one concurrency level."""

from __future__ import annotations

import math
from typing import Iterable

PERCENTILES = (50, 90, 99)


def percentile(values: Iterable[float], p: float) -> float | None:
    """The ``p``-th percentile (0..100) by linear interpolation between closest ranks; None when empty."""
    xs = sorted(values)
    if not xs:
        return None
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {p}")
    rank = p / 100 * (len(xs) - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (rank - lo)


def summary(values: Iterable[float]) -> dict | None:
    """n, mean, min, max and p50/p90/p99 of ``values``; None when there are none."""
    xs = sorted(values)
    if not xs:
        return None
    out = {"n": len(xs), "mean": sum(xs) / len(xs), "min": xs[0], "max": xs[-1]}
    out.update({f"p{p}": percentile(xs, p) for p in PERCENTILES})
    return out


def level_metrics(records: list, wall: float, concurrency: int) -> dict:
    """Metrics of one level from its request records (client.Record) and its wall time.

    TTFT: request sent -> first content token. TPOT: (last token - first token) / (tokens - 1).
    ITL: every gap between consecutive content chunks, all requests pooled. Per-stream tok/s: 1 / TPOT.
    Aggregate tok/s: output tokens of all successful requests / the level's wall time.
    """
    ok = [r for r in records if r.ok]
    errors = [r for r in records if not r.ok]
    decoding = [r for r in ok if r.output_tokens > 1 and r.t_last > r.t_first]
    tpot = [(r.t_last - r.t_first) / (r.output_tokens - 1) for r in decoding]
    out_tokens = sum(r.output_tokens for r in ok)
    samples: list[str] = []
    for r in errors:
        if r.error not in samples and len(samples) < 5:
            samples.append(r.error)
    return {
        "concurrency": concurrency,
        "requests": len(records),
        "ok": len(ok),
        "errors": len(errors),
        "error_samples": samples,
        "wall_s": wall,
        "output_tokens": out_tokens,
        "aggregate_tok_s": out_tokens / wall if wall > 0 and ok else None,
        "per_stream_tok_s": summary(1 / t for t in tpot if t > 0),
        "ttft_s": summary(r.ttft for r in ok if r.ttft is not None),
        "tpot_s": summary(tpot),
        "itl_s": summary(g for r in ok for g in r.itl),
        "e2e_s": summary(r.e2e for r in ok),
        "output_tokens_per_request": summary(r.output_tokens for r in ok),
        "prompt_tokens": summary(r.prompt_tokens for r in ok if r.prompt_tokens is not None),
        "cached_tokens": summary(r.cached_tokens for r in ok if r.cached_tokens is not None),
        "accepted_prediction_tokens": summary(r.accepted_prediction_tokens for r in ok
                                              if r.accepted_prediction_tokens is not None),
    }
