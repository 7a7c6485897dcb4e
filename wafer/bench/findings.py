"""What sweeps' numbers say, computed from results.json files (never typed): per model and workload,
wafer's throughput and TTFT ratio range against each peer and the levels where wafer is behind, each
system's peak throughput and how much of it is left at the highest level, and what was not measured."""

from __future__ import annotations

from .report import BASE, ratios
from .workloads import WORKLOADS


def _x(v: float) -> str:
    return f"{v:.2f}x"


def _levels(cs: list[int]) -> str:
    return ", ".join(f"C={c}" for c in cs)


def _range(rows: list[dict], key: str) -> tuple[dict, dict] | None:
    have = [r for r in rows if r.get(key) is not None]
    if not have:
        return None
    return min(have, key=lambda r: r[key]), max(have, key=lambda r: r[key])


def peer_line(peer: str, rows: list[dict]) -> str:
    """wafer vs ``peer`` on one workload: the tok/s ratio range, where it is below 1.0x, the TTFT ratio range."""
    parts = []
    tok = _range(rows, "tok_s_ratio")
    if tok:
        lo, hi = tok
        parts.append(f"throughput {_x(lo['tok_s_ratio'])} (C={lo['concurrency']}) to {_x(hi['tok_s_ratio'])} "
                     f"(C={hi['concurrency']})")
        measured = [r for r in rows if r.get("tok_s_ratio") is not None]
        behind = [r["concurrency"] for r in measured if round(r["tok_s_ratio"], 2) < 1]  # as shown
        if not behind:
            parts.append("at or above 1.00x at every level")
        else:
            parts.append("below 1.00x at " + ("every level" if len(behind) == len(measured) else _levels(behind)))
    ttft = _range(rows, "ttft_ratio")
    if ttft:
        lo, hi = ttft
        parts.append(f"TTFT p50 {_x(lo['ttft_ratio'])} (C={lo['concurrency']}) to {_x(hi['ttft_ratio'])} "
                     f"(C={hi['concurrency']})")
    return f"{BASE} / {peer}: " + ("; ".join(parts) or "no level with numbers on both")


def peak_line(results: dict, workload: str) -> str | None:
    """Each system's peak aggregate tok/s on ``workload`` and the share of it left at its highest level."""
    parts = []
    for name, res in results["systems"].items():
        levels = [lv for lv in (res.get("workloads", {}).get(workload) or {}).get("levels", ())
                  if lv.get("aggregate_tok_s")]
        if not levels:
            continue
        peak, last = max(levels, key=lambda lv: lv["aggregate_tok_s"]), levels[-1]
        text = f"{name} {peak['aggregate_tok_s']:.1f} at C={peak['concurrency']}"
        if last is not peak:
            text += f" ({_x(last['aggregate_tok_s'] / peak['aggregate_tok_s'])} of it at C={last['concurrency']})"
        parts.append(text)
    return "peak aggregate tok/s: " + ", ".join(parts) if parts else None


def tally(rat: dict) -> list[str]:
    """Per peer: in how many workload levels wafer's throughput is at least the peer's."""
    out = []
    for peer, by_wl in rat.items():
        cells = [r["tok_s_ratio"] for rows in by_wl.values() for r in rows if r.get("tok_s_ratio") is not None]
        if cells:
            ahead = sum(round(v, 2) >= 1 for v in cells)
            out.append(f"{BASE}'s throughput is at least {peer}'s in {ahead} of {len(cells)} workload levels")
    return out


def not_measured(results: dict) -> list[str]:
    out = []
    missing = [w for w in WORKLOADS if w not in results["config"]["workloads"]]
    if missing:
        out.append(f"not in this run: {', '.join(missing)}")
    for name, res in results["systems"].items():
        if res.get("status") != "ok":
            out.append(f"{name} skipped: {res.get('reason')}")
            continue
        for wl, part in res.get("workloads", {}).items():
            if part.get("status") != "ok":
                out.append(f"{name} n/a on {wl}: {part.get('reason')}")
    return out


def model_findings(results: dict) -> list[str]:
    """Markdown bullets for one results file."""
    m, cfg = results["machine"], results["config"]
    head = (f"**{results['model']['id']}** ({results['created'][:16]}, {m['cores']} cores {m.get('cpu') or ''}, "
            f"{cfg['threads']} threads, concurrency {', '.join(map(str, cfg['concurrency']))}):")
    rat = results.get("ratios") or ratios(results)
    lines = [f"- {head}"]
    for wl in cfg["workloads"]:
        sub = [peer_line(p, rat[p][wl]) for p in rat if wl in rat[p]]
        peak = peak_line(results, wl)
        if peak:
            sub.append(peak)
        if sub:
            lines.append(f"  - {wl}:")
            lines += [f"    - {s}" for s in sub]
    lines += [f"  - {s}" for s in tally(rat) + not_measured(results)]
    return lines


def findings(results_list: list[dict]) -> str:
    """The findings section: bullets per results file (model)."""
    lines = [line for res in results_list for line in model_findings(res)]
    return "\n".join(lines) + "\n" if lines else "No results yet.\n"
