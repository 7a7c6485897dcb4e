"""``<!-- bench:scale-out FILE... -->``: the same sweep against deployments of different sizes.

Each FILE is the ``results.json`` of ``wafer bench --url URL --label LABEL`` against one deployment
(``wafer serve`` alone, ``--replicas 1``, ``--replicas 2`` ...). Per workload and concurrency: aggregate
output tok/s and TTFT p50 of each, its ratio to the first file, and the prompt-cache hit rate
(cached prompt tokens / prompt tokens, from the responses' ``usage``) — with prefix routing, what the
router keeps on the replica that holds the prefix.
"""

from __future__ import annotations

from .report import md_table

NAME = "scale-out"


def _levels(res: dict) -> dict[tuple[str, int], dict]:
    out = {}
    for system in res["systems"].values():
        for wl, w in (system.get("workloads") or {}).items():
            for lv in w.get("levels") or ():
                out[(wl, lv["concurrency"])] = lv
    return out


def _hit_rate(lv: dict) -> str:
    p, c = lv.get("prompt_tokens") or {}, lv.get("cached_tokens") or {}
    if not p.get("n") or not c.get("n") or not p.get("mean"):
        return "–"
    return f"{c['mean'] / p['mean']:.0%}"


def render(results: list[dict]) -> str:
    labels = [r["config"].get("label") or r["config"].get("url") or "?" for r in results]
    levels = [_levels(r) for r in results]
    keys = [k for k in levels[0] if all(k in lv for lv in levels)] if levels else []
    rows = []
    for wl, c in keys:
        base = levels[0][(wl, c)].get("aggregate_tok_s") or 0
        row = [wl, str(c)]
        for lv in (x[(wl, c)] for x in levels):
            tps = lv.get("aggregate_tok_s") or 0
            ttft = (lv.get("ttft_s") or {}).get("p50")
            row += [f"{tps:.1f}", f"{tps / base:.2f}" if base else "–",
                    "–" if ttft is None else f"{ttft * 1000:.0f}", _hit_rate(lv)]
        rows.append(row)
    head = ["workload", "C"]
    for lab in labels:
        head += [f"{lab} tok/s", "ratio", "TTFT p50 ms", "cache hit"]
    r0 = results[0] if results else {}
    m = r0.get("machine") or {}
    runs = "; ".join(f"{lab}: `{r['command']}` ({r['created']})" for lab, r in zip(labels, results))
    return (f"{md_table(head, rows)}\n\nModel {r0.get('model', {}).get('id', '?')}, {m.get('cores', '?')} cores "
            f"{m.get('cpu', '')}. Runs: {runs}.\n")
