"""Prometheus metrics in the text exposition format (0.0.4), no client library needed.

Request-level series are recorded as requests finish (the access gate counts statuses; the engine
bridge observes timings and tokens of every finished engine request); engine gauges (sequences,
queue, KV cells, prefix cache) are read from each engine when ``/metrics`` is scraped.
"""

from __future__ import annotations

import bisect
import os
import resource
import time

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56)


def _labels(names: tuple[str, ...], values: tuple) -> str:
    if not names:
        return ""
    inner = ",".join(f'{n}="{_escape(str(v))}"' for n, v in zip(names, values))
    return "{" + inner + "}"


def _escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(v: float) -> str:
    if v == float("inf"):
        return "+Inf"
    return repr(float(v)) if isinstance(v, float) and not v.is_integer() else str(int(v))


class Counter:
    kind = "counter"

    def __init__(self, name: str, help: str, labels: tuple[str, ...] = ()):
        self.name, self.help, self.labels = name, help, labels
        self.values: dict[tuple, float] = {}

    def inc(self, *labels, by: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + by

    def lines(self) -> list[str]:
        return [f"{self.name}{_labels(self.labels, k)} {_num(v)}" for k, v in sorted(self.values.items())]


class Histogram:
    kind = "histogram"

    def __init__(self, name: str, help: str, labels: tuple[str, ...] = (), buckets=LATENCY_BUCKETS):
        self.name, self.help, self.labels, self.buckets = name, help, labels, tuple(buckets)
        self.values: dict[tuple, list] = {}  # labels -> [counts per bucket..., sum, count]

    def observe(self, value: float, *labels) -> None:
        v = self.values.get(labels)
        if v is None:
            v = self.values[labels] = [0] * len(self.buckets) + [0.0, 0]
        i = bisect.bisect_left(self.buckets, value)
        if i < len(self.buckets):
            v[i] += 1
        v[-2] += value
        v[-1] += 1

    def lines(self) -> list[str]:
        out = []
        names = self.labels + ("le",)
        for k, v in sorted(self.values.items()):
            acc = 0
            for b, c in zip(self.buckets, v):
                acc += c
                out.append(f"{self.name}_bucket{_labels(names, k + (_num(b),))} {acc}")
            out.append(f"{self.name}_bucket{_labels(names, k + ('+Inf',))} {v[-1]}")
            out.append(f"{self.name}_sum{_labels(self.labels, k)} {_num(v[-2])}")
            out.append(f"{self.name}_count{_labels(self.labels, k)} {v[-1]}")
        return out


def _family(name: str, help: str, kind: str, lines: list[str]) -> str:
    return f"# HELP {name} {help}\n# TYPE {name} {kind}\n" + "".join(line + "\n" for line in lines)


class Metrics:
    def __init__(self) -> None:
        self.started = time.time()
        self.requests = Counter("wafer_requests_total", "HTTP requests by route and status code.", ("route", "status"))
        self.duration = Histogram("wafer_request_duration_seconds", "HTTP request time, to the last byte.", ("route",))
        self.ttft = Histogram("wafer_time_to_first_token_seconds", "Arrival to the first output token.", ("model",))
        self.tpot = Histogram("wafer_time_per_output_token_seconds",
                              "Decode time per output token after the first.", ("model",), TOKEN_BUCKETS)
        self.queue = Histogram("wafer_queue_time_seconds", "Time waiting for a sequence slot.", ("model",))
        self.e2e = Histogram("wafer_request_latency_seconds", "Engine time of a finished request.", ("model",))
        self.prompt_tokens = Counter("wafer_prompt_tokens_total", "Prompt tokens of finished requests.", ("model",))
        self.cached_tokens = Counter("wafer_prompt_cached_tokens_total",
                                     "Prompt tokens served from the prefix cache.", ("model",))
        self.output_tokens = Counter("wafer_generation_tokens_total", "Output tokens of finished requests.", ("model",))
        self.finished = Counter("wafer_engine_requests_total", "Engine requests by outcome.", ("model", "outcome"))
        self.refused = Counter("wafer_refused_total", "Requests refused before the engine, by code.", ("code",))
        self._series = [self.requests, self.duration, self.ttft, self.tpot, self.queue, self.e2e,
                        self.prompt_tokens, self.cached_tokens, self.output_tokens, self.finished, self.refused]

    def observe_done(self, model: str, done) -> None:
        """A finished engine request (``RequestDone``)."""
        t, u = done.time_info, done.usage
        self.finished.inc(model, "finished")
        self.queue.observe(t.queue_time, model)
        self.ttft.observe(t.queue_time + t.prompt_time, model)
        if u.completion_tokens > 1:
            self.tpot.observe(t.completion_time / (u.completion_tokens - 1), model)
        self.e2e.observe(t.total_time, model)
        self.prompt_tokens.inc(model, by=u.prompt_tokens)
        self.cached_tokens.inc(model, by=u.cached_tokens)
        self.output_tokens.inc(model, by=u.completion_tokens)

    def render(self, engines: dict[str, dict], draining: bool) -> str:
        """The exposition text; ``engines`` maps model id -> ``Engine.stats()``."""
        parts = [_family(s.name, s.help, s.kind, s.lines()) for s in self._series]
        per_model = {  # name: (help, how to read it from an engine's stats)
            "wafer_running_requests": ("Requests holding sequences.", lambda st: st["running_requests"]),
            "wafer_running_sequences": ("Sequences decoding or prefilling.", lambda st: st["running_sequences"]),
            "wafer_waiting_requests": ("Requests queued for a KV stream.", lambda st: st["waiting_requests"]),
            "wafer_kv_cells_used": ("KV cells held (running + resident cached prefixes).", lambda st: st["kv_cells_used"]),
            "wafer_kv_cells_running": ("KV cells held by running sequences.", lambda st: st["kv_cells_running"]),
            "wafer_kv_cells_total": ("KV cells of all streams.", lambda st: st["kv_cells"]),
            "wafer_kv_streams_free": ("KV streams no running sequence owns.", lambda st: st["free_slots"]),
            "wafer_preemptions_total": ("Requests preempted (after a failed decode).", lambda st: st["preemptions"]),
            "wafer_engine_steps_total": ("Engine steps (llama_decode calls).", lambda st: st["step_costs"]["steps"]),
            "wafer_engine_ubatches_total": ("ubatches (passes over the weights) of all steps.",
                                            lambda st: st["step_costs"]["ubatches"]),
            "wafer_engine_last_step_ubatches": ("ubatches of the latest step.",
                                                lambda st: st["step_costs"]["last_ubatches"]),
            "wafer_prefix_cache_host_bytes": ("Host memory held by KV snapshots.",
                                              lambda st: st["cache"].get("host_bytes", 0)),
            "wafer_prefix_cache_lookups_total": ("Prefix cache lookups.", lambda st: st["cache"]["lookups"]),
            "wafer_prefix_cache_hits_total": ("Lookups that reused cells.", lambda st: st["cache"]["hits"]),
            "wafer_prefix_cache_hit_tokens_total": ("Prompt tokens reused from the prefix cache.",
                                                    lambda st: st["cache"]["hit_tokens"]),
            "wafer_prefix_cache_cells": ("KV cells held by the prefix cache.", lambda st: st["cache"]["cached_cells"]),
        }
        for name, (help, read) in per_model.items():
            kind = "counter" if name.endswith("_total") else "gauge"
            parts.append(_family(name, help, kind, [f'{name}{{model="{_escape(m)}"}} {read(st)}'
                                                    for m, st in engines.items()]))
        parts.append(_family("wafer_draining", "1 while the server drains for shutdown.", "gauge",
                             [f"wafer_draining {int(draining)}"]))
        parts.append(_process(self.started))
        return "".join(parts)


def _process(started: float) -> str:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    rss = 0
    try:
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        rss = ru.ru_maxrss * 1024
    return (
        _family("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge",
                [f"process_resident_memory_bytes {rss}"])
        + _family("process_cpu_seconds_total", "User and system CPU time in seconds.", "counter",
                  [f"process_cpu_seconds_total {_num(ru.ru_utime + ru.ru_stime)}"])
        + _family("process_start_time_seconds", "Start time since the epoch in seconds.", "gauge",
                  [f"process_start_time_seconds {_num(started)}"])
    )

