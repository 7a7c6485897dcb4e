"""PNG plots per workload: aggregate output tok/s vs concurrency, and TTFT p50 (p90 dashed) vs concurrency."""

from __future__ import annotations

from pathlib import Path


def _series(results: dict, workload: str, key: str, stat: str | None = None) -> dict[str, tuple[list, list]]:
    out = {}
    for name, sysres in results["systems"].items():
        wl = sysres.get("workloads", {}).get(workload, {})
        xs, ys = [], []
        for lv in wl.get("levels", ()):
            v = lv.get(key)
            v = v.get(stat) if stat and v else v
            if v is not None:
                xs.append(lv["concurrency"])
                ys.append(v)
        if xs:
            out[name] = (xs, ys)
    return out


def plot(results: dict, out_dir: Path) -> dict[str, dict[str, str]]:
    """Write ``<workload>-throughput.png`` and ``<workload>-ttft.png``; returns their names per workload."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model = results.get("model", {}).get("id", "")
    written: dict[str, dict[str, str]] = {}
    for workload in results["config"]["workloads"]:
        tput = _series(results, workload, "aggregate_tok_s")
        if not tput:
            continue
        names = {"throughput": f"{workload}-throughput.png", "ttft": f"{workload}-ttft.png"}
        colors = {name: f"C{i}" for i, name in enumerate(results["systems"])}

        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for name, (xs, ys) in tput.items():
            ax.plot(xs, ys, marker="o", color=colors[name], label=name)
        _axes(ax, f"{workload} ({model}): throughput", "aggregate output tok/s")
        fig.savefig(out_dir / names["throughput"], dpi=110, bbox_inches="tight")
        plt.close(fig)

        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for name, (xs, ys) in _series(results, workload, "ttft_s", "p50").items():
            ax.plot(xs, [y * 1000 for y in ys], marker="o", color=colors[name], label=f"{name} p50")
        for name, (xs, ys) in _series(results, workload, "ttft_s", "p90").items():
            ax.plot(xs, [y * 1000 for y in ys], linestyle="--", color=colors[name], label=f"{name} p90")
        _axes(ax, f"{workload} ({model}): time to first token", "TTFT (ms)")
        fig.savefig(out_dir / names["ttft"], dpi=110, bbox_inches="tight")
        plt.close(fig)
        written[workload] = names
    return written


def _axes(ax, title: str, ylabel: str) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent streams")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.xaxis.set_major_formatter(lambda x, _: f"{x:g}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
