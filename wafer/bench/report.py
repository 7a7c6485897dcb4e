"""Results: machine info, ratios wafer/peer, the console table, report.md and the ratio overview.

Ratios per workload and level: throughput = wafer's aggregate tok/s / the peer's (above 1: wafer
is faster); TTFT = wafer's TTFT p50 / the peer's (below 1: wafer answers sooner). Only levels where
both systems have numbers get a ratio.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

SCHEMA = "wafer-bench/1"
BASE = "wafer"
COLUMNS = ("system", "C", "ok/err", "agg tok/s", "stream tok/s p50", "TTFT p50 ms", "TTFT p90 ms", "TTFT p99 ms",
           "TPOT p50 ms", "ITL p50 ms", "ITL p99 ms", "out tok/req")


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_info() -> dict:
    from .. import __version__
    from .systems import package_version

    return {"cores": os.cpu_count(), "cpu": cpu_model(), "os": platform.platform(), "arch": platform.machine(),
            "python": platform.python_version(), "llama_cpp_python": package_version("llama-cpp-python"),
            "wafer": __version__}


def ratios(results: dict, base: str = BASE) -> dict:
    """{peer: {workload: [{concurrency, tok_s_ratio, ttft_ratio}]}} against ``base``."""
    systems = results["systems"]
    if base not in systems or systems[base].get("status") != "ok":
        return {}
    out: dict = {}
    for peer, res in systems.items():
        if peer == base or res.get("status") != "ok":
            continue
        for wl, mine in systems[base]["workloads"].items():
            theirs = res["workloads"].get(wl, {})
            by_level = {lv["concurrency"]: lv for lv in theirs.get("levels", ())}
            rows = []
            for lv in mine.get("levels", ()):
                other = by_level.get(lv["concurrency"])
                if other is None:
                    continue
                rows.append({"concurrency": lv["concurrency"],
                             "tok_s_ratio": _div(lv["aggregate_tok_s"], other["aggregate_tok_s"]),
                             "ttft_ratio": _div(_p(lv, "ttft_s", "p50"), _p(other, "ttft_s", "p50"))})
            if rows:
                out.setdefault(peer, {})[wl] = rows
    return out


def _div(a, b):
    return a / b if a is not None and b else None


def _p(level: dict, key: str, stat: str):
    v = level.get(key)
    return v.get(stat) if v else None


def _f(v, scale: float = 1.0, digits: int = 1) -> str:
    return "–" if v is None else f"{v * scale:.{digits}f}"


def level_row(name: str, lv: dict) -> list[str]:
    def ms(key: str, stat: str, digits: int = 1) -> str:
        return _f(_p(lv, key, stat), 1000, digits)

    return [name, str(lv["concurrency"]), f"{lv['ok']}/{lv['errors']}", _f(lv["aggregate_tok_s"]),
            _f(_p(lv, "per_stream_tok_s", "p50")), ms("ttft_s", "p50"), ms("ttft_s", "p90"), ms("ttft_s", "p99"),
            ms("tpot_s", "p50", 2), ms("itl_s", "p50", 2), ms("itl_s", "p99", 2),
            _f(_p(lv, "output_tokens_per_request", "mean"))]


def workload_rows(results: dict, workload: str) -> list[list[str]]:
    """Table rows of one workload: a row per system and level, or one saying why it was skipped."""
    rows = []
    for name, res in results["systems"].items():
        wl = res.get("workloads", {}).get(workload)
        if res.get("status") != "ok":
            rows.append([name, "", f"skipped: {res.get('reason')}"] + [""] * (len(COLUMNS) - 3))
        elif wl is None or wl.get("status") != "ok":
            reason = wl.get("reason") if wl else "not run"
            rows.append([name, "", f"n/a: {reason}"] + [""] * (len(COLUMNS) - 3))
        else:
            rows.extend(level_row(name, lv) for lv in wl["levels"])
    return rows


def ratio_rows(results: dict, workload: str) -> tuple[list[str], list[list[str]]]:
    rat = results.get("ratios") or ratios(results)
    peers = [p for p in rat if workload in rat[p]]
    header = ["C"] + [h for p in peers for h in (f"tok/s {BASE}/{p}", f"TTFT {BASE}/{p}")]
    levels = sorted({r["concurrency"] for p in peers for r in rat[p][workload]})
    rows = []
    for c in levels:
        row = [str(c)]
        for p in peers:
            r = next((r for r in rat[p][workload] if r["concurrency"] == c), {})
            row += [_f(r.get("tok_s_ratio"), digits=2), _f(r.get("ttft_ratio"), digits=2)]
        rows.append(row)
    return header, rows


def ratio_overview(results_list: list[dict]) -> str:
    """One table of wafer's aggregate tok/s ratio to each peer: a row per model, workload and peer, a column per level."""
    levels = sorted({c for res in results_list for c in res["config"]["concurrency"]})
    rows = []
    for res in results_list:
        rat = res.get("ratios") or ratios(res)
        for wl in res["config"]["workloads"]:
            for peer in rat:
                by_level = {r["concurrency"]: r["tok_s_ratio"] for r in rat[peer].get(wl, ())}
                if by_level:
                    rows.append([f"{res['model']['id']}, {wl}", peer]
                                + [_f(by_level[c], digits=2) if c in by_level else "" for c in levels])
    return md_table(["model, workload", "peer"] + [f"C={c}" for c in levels], rows) + "\n"


def _note_row(row: list[str]) -> bool:
    return len(row) > 2 and row[2].startswith(("skipped", "n/a"))


def text_table(header, rows) -> str:
    widths = [max(len(x) for x in col) for col in zip(header, *(r for r in rows if not _note_row(r)))]

    def fmt(r):
        if _note_row(r):
            return f"{r[0].ljust(widths[0])}  {r[2]}"
        return "  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(r, widths)))

    return "\n".join(fmt(r) for r in [list(header)] + rows)


def md_table(header, rows) -> str:
    align = "|".join("---" if i == 0 else "---:" for i in range(len(header)))
    lines = ["| " + " | ".join(header) + " |", f"|{align}|"]
    lines += ["| " + " | ".join(str(x).replace("|", "\\|") for x in r) + " |" for r in rows]
    return "\n".join(lines)


def console(results: dict) -> str:
    """The console summary: a table per workload, then the ratios."""
    parts = []
    for wl in results["config"]["workloads"]:
        parts.append(f"\n== {wl}: {results['workloads'][wl]}")
        parts.append(text_table(COLUMNS, workload_rows(results, wl)))
        header, rows = ratio_rows(results, wl)
        if rows:
            parts.append(text_table(header, rows))
    return "\n".join(parts)


def _machine_lines(results: dict) -> list[str]:
    m, model, cfg = results["machine"], results["model"], results["config"]
    size = f", {model['size_bytes'] / 2**20:.1f} MiB" if model.get("size_bytes") else ""
    rate = f" at {cfg['rate']} req/s" if cfg["mode"] == "rate" else ""
    server = results["systems"].get("llama-server", {}).get("version")
    versions = f"wafer {m['wafer']}, llama-cpp-python {m['llama_cpp_python']}"
    versions += f", llama-server {server}" if server else ""
    return [
        f"- machine: {m['cores']} cores, {m.get('cpu') or 'unknown CPU'}, {m['os']}, Python {m['python']}",
        f"- model: {model['id']} ({model.get('file') or 'remote'}{size}); threads {cfg['threads']}",
        f"- versions: {versions}",
        f"- mode: {cfg['mode']}{rate}, "
        f"concurrency {', '.join(map(str, cfg['concurrency']))}, requests per level "
        f"{_per_level(cfg)}, seed {cfg['seed']}; {results['created']}",
    ]


def _per_level(cfg: dict) -> str:
    if cfg["requests_per_level"]:
        return str(cfg["requests_per_level"])
    return f"max(2, {cfg['rounds']} x C)" if cfg.get("rounds") else "max(4, 2 x C)"


def _workload_md(results: dict, workload: str, plot_prefix: str, level: int) -> list[str]:
    h = "#" * level
    out = [f"{h} {workload}", "", results["workloads"][workload], "",
           md_table(COLUMNS, workload_rows(results, workload))]
    notes = [f"{n}: {note}" for n, res in results["systems"].items()
             for note in res.get("workloads", {}).get(workload, {}).get("notes", ())]
    if notes:
        out += [""] + [f"- {n}" for n in notes]
    header, rows = ratio_rows(results, workload)
    if rows:
        out += ["", "Ratios (tok/s: above 1 = wafer faster; TTFT: below 1 = wafer sooner):", "", md_table(header, rows)]
    plots = results.get("plots", {}).get(workload)
    if plots:
        out += ["", f"![{workload} throughput]({plot_prefix}{plots['throughput']}) "
                    f"![{workload} TTFT]({plot_prefix}{plots['ttft']})"]
    return out + [""]


def _systems_md(results: dict) -> list[str]:
    out = []
    for name, res in results["systems"].items():
        if res.get("status") != "ok":
            out.append(f"- **{name}**: skipped: {res.get('reason')}")
        else:
            version = f" {res['version']}" if res.get("version") else ""
            notes = "; ".join(res.get("notes") or ())
            out.append(f"- **{name}**{version}{f': {notes}' if notes else ''}")
    return out


def markdown(results: dict, plot_prefix: str = "", level: int = 1) -> str:
    """report.md: machine, command, systems, a table, notes, ratios and plots per workload."""
    h = "#" * level
    lines = [f"{h} wafer bench: {results['model']['id']}", "", *_machine_lines(results), "",
             "Command:", "", "```", results["command"], "```", "", *_systems_md(results), ""]
    for wl in results["config"]["workloads"]:
        lines += _workload_md(results, wl, plot_prefix, level + 1)
    return "\n".join(lines).rstrip() + "\n"
