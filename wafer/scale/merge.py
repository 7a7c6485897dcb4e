"""One view of many replicas: engine stats summed per model, Prometheus texts with a replica label.

``merge_stats`` keeps the single-process shape of ``/wafer/stats`` (model id -> stats), so what reads
one server reads a deployment: counters and gauges are summed (streams, running requests, KV cells,
cache hits, tokens), settings that every replica shares are kept (``ctx_size``, TTLs), rates are
recomputed from the sums, and stream-id lists are renumbered per replica (replica 1's stream 0 comes
after replica 0's last stream). Per-step timings do not add up: they stay per replica
(``/wafer/replicas``).
"""

from __future__ import annotations

import re

SHARED = {"model", "ctx_size", "ctx_limited_by", "kv_cells_per_stream", "ttl_min", "ttl_max", "enabled"}
PER_REPLICA = {"step_costs", "grammar"}
STREAM_LISTS = {"kv_slots_occupied", "cache_holder_slots"}


def merge_stats(replicas: list[dict[str, dict]]) -> dict[str, dict]:
    """Per model: the stats of every replica that serves it, merged."""
    out: dict[str, dict] = {}
    for model in dict.fromkeys(m for r in replicas for m in r):
        parts = [r[model] for r in replicas if model in r]
        merged = _merge([{k: v for k, v in p.items() if k not in PER_REPLICA} for p in parts])
        offset = 0
        for key in STREAM_LISTS & merged.keys():
            merged[key] = []
        for p in parts:
            for key in STREAM_LISTS & p.keys():
                merged[key] += [offset + i for i in p[key]]
            offset += p.get("slots", 0)
        cache = merged.get("cache")
        if isinstance(cache, dict) and cache.get("lookups"):
            cache["hit_rate"] = cache["hits"] / cache["lookups"]
            weights = [(p.get("cache") or {}).get("lookups", 0) for p in parts]
            rates = [(p.get("cache") or {}).get("token_hit_rate", 0.0) for p in parts]
            cache["token_hit_rate"] = sum(w * r for w, r in zip(weights, rates)) / max(1, sum(weights))
        merged["replicas"] = len(parts)
        out[model] = merged
    return out


def _merge(parts: list[dict]) -> dict:
    out: dict = {}
    for key in dict.fromkeys(k for p in parts for k in p):
        values = [p[key] for p in parts if key in p]
        first = values[0]
        if key in SHARED:
            out[key] = first
        elif isinstance(first, bool):
            out[key] = any(values)
        elif isinstance(first, (int, float)):
            out[key] = sum(v for v in values if isinstance(v, (int, float)))
        elif isinstance(first, dict):
            out[key] = _merge([v for v in values if isinstance(v, dict)])
        elif isinstance(first, list):
            out[key] = [x for v in values if isinstance(v, list) for x in v]
        else:
            out[key] = first
    return out


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(.*)$")


def _label(line: str, replica: str) -> str:
    m = _SAMPLE.match(line)
    if m is None:
        return line
    name, labels, value = m.groups()
    pair = f'replica="{replica}"'
    labels = "{" + pair + ("," + labels[1:] if labels and labels != "{}" else "}")
    return f"{name}{labels} {value}"


def merge_metrics(texts: dict[str, str]) -> str:
    """Prometheus text expositions of several replicas as one: each family's HELP and TYPE once, every
    sample with a ``replica`` label."""
    families: dict[str, tuple[list[str], list[str]]] = {}
    for replica, text in texts.items():
        family = None
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith("# "):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    family = parts[2]
                    head, _ = families.setdefault(family, ([], []))
                    if not any(h.split(None, 2)[1] == parts[1] for h in head):
                        head.append(line)
                continue
            m = _SAMPLE.match(line)
            name = m.group(1) if m else line
            fam = family if family and name.startswith(family) else name
            families.setdefault(fam, ([], []))[1].append(_label(line, replica))
    out = []
    for head, samples in families.values():
        out += head + samples
    return "\n".join(out) + "\n"
