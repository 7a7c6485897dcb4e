"""Running levels: closed loop or Poisson arrivals, and one system's whole plan.

Closed loop: C workers issue scripts back to back until the level's scripts are done. Rate mode:
scripts arrive as a seeded Poisson process at ``rate`` per second, at most C in flight (an arrival
waits while C are running; its TTFT counts from when it is sent). Every level of every system runs
the same scripts; each workload starts with one probe request (its own prompt): a warm-up, and
the check of whether the system accepts the workload's fields.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from .stats import level_metrics
from .workloads import Request, Script, WorkloadConfig, generate, probe

OPTIONAL_FIELDS = ("prediction",)  # dropped, with a note, when a system rejects them


def arrivals(n: int, rate: float, seed: int) -> list[float]:
    """Offsets (s) of ``n`` Poisson arrivals at ``rate`` per second; the first at 0."""
    rng = random.Random(f"{seed}:arrivals:{rate}")
    out, t = [], 0.0
    for _ in range(n):
        out.append(t)
        t += rng.expovariate(rate)
    return out


async def run_level(send: Callable[[Request], Awaitable], scripts: list[Script], concurrency: int,
                    mode: str = "closed", rate: float | None = None, seed: int = 0,
                    on_request: Callable | None = None) -> tuple[list, float]:
    """Run ``scripts`` through ``send``; returns every request's record and the level's wall time."""
    records: list = []

    async def run_script(script: Script) -> None:
        for req in script:
            rec = await send(req)
            records.append(rec)
            if on_request:
                on_request(rec)

    t0 = time.perf_counter()
    if mode == "closed":
        queue = iter(scripts)

        async def worker() -> None:
            for script in queue:
                await run_script(script)

        await asyncio.gather(*(worker() for _ in range(min(concurrency, len(scripts)))))
    elif mode == "rate":
        if not rate or rate <= 0:
            raise ValueError("rate mode needs a positive --rate")
        slots = asyncio.Semaphore(concurrency)
        tasks = []

        async def guarded(script: Script) -> None:
            try:
                await run_script(script)
            finally:
                slots.release()

        for offset, script in zip(arrivals(len(scripts), rate, seed), scripts):
            delay = t0 + offset - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await slots.acquire()
            tasks.append(asyncio.create_task(guarded(script)))
        await asyncio.gather(*tasks)
    else:
        raise ValueError(f"unknown mode {mode!r} (closed or rate)")
    return records, time.perf_counter() - t0


@dataclass
class Plan:
    """What one run measures, the same for every system: workloads, levels, request counts, mode."""

    workloads: list[str]
    levels: list[int]
    requests_per_level: int | None = None
    rounds: int | None = None  # requests per level = rounds x concurrency (at least 2)
    seed: int = 0
    mode: str = "closed"
    rate: float | None = None
    cfg: WorkloadConfig = field(default_factory=WorkloadConfig)

    def count(self, level: int) -> int:
        """Scripts per level (conversations for multi-turn): default max(4, 2 x concurrency)."""
        if self.requests_per_level:
            return self.requests_per_level
        return max(2, self.rounds * level) if self.rounds else max(4, 2 * level)

    def scripts(self, workload: str, level: int) -> list[Script]:
        return generate(workload, self.count(level), self.seed, level, self.cfg)

    def total_requests(self, workloads: list[str] | None = None) -> int:
        """Requests the plan sends per system (probes aside)."""
        return sum((self.cfg.turns if w == "multi-turn" else 1) * self.count(c)
                   for w in (workloads or self.workloads) for c in self.levels)


def _probe(system, workload: str, plan: Plan) -> tuple[tuple[str, ...], list[str], str | None]:
    """(fields to drop, notes, skip reason) for ``workload`` on ``system`` from one probe request."""
    req = probe(workload, plan.seed, plan.cfg)
    rec = system.run_level([[req]], 1, "closed", None, plan.seed)[0][0]
    if rec.ok:
        return (), [], None
    optional = [f for f in OPTIONAL_FIELDS if f in req.body]
    if rec.status and 400 <= rec.status < 500 and optional:
        retry = system.run_level([[req.without(*optional)]], 1, "closed", None, plan.seed)[0][0]
        if retry.ok:
            return tuple(optional), [f"no {', '.join(optional)} support (rejected: {rec.error}); sent without it"], None
    return (), [], f"probe request failed: {rec.error}"


def measure(system, plan: Plan, progress=None) -> dict:
    """Every workload and level of ``plan`` on a started ``system``: its part of the results."""
    out = {"workloads": {}}
    tick = (lambda rec: progress.update(1)) if progress is not None else None
    for wl in plan.workloads:
        if progress is not None:
            progress.set_postfix_str(f"{system.name} {wl}")
        reason = system.unsupported(wl)
        drop: tuple[str, ...] = ()
        notes: list[str] = []
        if reason is None:
            drop, notes, reason = _probe(system, wl, plan)
        if reason is not None:
            out["workloads"][wl] = {"status": "skipped", "reason": reason}
            if progress is not None:
                progress.update(plan.total_requests([wl]))
            continue
        levels = []
        for c in plan.levels:
            scripts = plan.scripts(wl, c)
            if drop:
                scripts = [[r.without(*drop) for r in s] for s in scripts]
            records, wall = system.run_level(scripts, c, plan.mode, plan.rate, plan.seed, tick)
            levels.append(level_metrics(records, wall, c))
        if any(lv["ok"] and lv["prompt_tokens"] is None for lv in levels):
            notes.append("no usage in the stream: output tokens counted as content chunks")
        out["workloads"][wl] = {"status": "ok", "notes": notes + system.workload_notes(wl), "levels": levels}
    return out
