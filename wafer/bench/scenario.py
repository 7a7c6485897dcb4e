"""What the focused benchmarks (``wafer bench SCENARIO``) share.

The model, resolved as ``wafer serve`` resolves it; wafer and llama-server started on loopback as
the sweep starts them (``systems.Wafer``, ``systems.LlamaServer``); requests one at a time through
the bench's SSE client; and one results file per scenario and model, with its provenance (command,
date, machine), that the scenario's ``render`` turns into the tables the docs show.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .client import Record, stream_one

RESULTS = Path("bench") / "results"


def add_common(p, default_model: str = "smollm2-135m", peer: bool = False) -> None:
    p.add_argument("--model", "-m", default=default_model, help=f"catalogue name or GGUF path (default {default_model})")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="llama.cpp threads of every system")
    p.add_argument("--out", default=None, help="results file (default bench/results/<name>-<model>.json)")
    p.add_argument("--cache-dir", default=None, help="model cache directory")
    if peer:
        p.add_argument("--no-peer", action="store_true", help="skip llama-server (built in the bench cache if needed)")


@dataclass
class Run:
    """One scenario run: the model and where its results and logs go."""

    scenario: str
    spec: str
    id: str
    path: str
    threads: int
    out: Path
    cache_dir: str | None

    @classmethod
    def from_args(cls, scenario: str, args, stem: str | None = None) -> "Run":
        """The run of ``scenario``; its results go to ``--out`` or bench/results/<stem>-<model>.json."""
        from ..models import resolve_model

        resolved = resolve_model(args.model, cache_dir=Path(args.cache_dir) if args.cache_dir else None)
        out = Path(args.out) if args.out else RESULTS / f"{stem or scenario}-{resolved.id}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        return cls(scenario, args.model, resolved.id, str(resolved.path), args.threads, out, args.cache_dir)

    def header(self, **config) -> dict:
        """The results' first keys: model, file, threads, date, command, machine and the scenario's settings."""
        from .report import machine_info

        return {"scenario": self.scenario, "model": self.id, "file": Path(self.path).name, "threads": self.threads,
                "date": time.strftime("%Y-%m-%d %H:%M"), "command": "wafer " + shlex.join(sys.argv[1:]),
                "machine": machine_info(), **config}

    def log_dir(self) -> Path:
        d = self.out.parent
        d.mkdir(parents=True, exist_ok=True)
        return d

    def wafer(self, parallel: int, extra: list[str] = ()):
        """wafer on this model (not started): ``extra`` are more ``wafer serve`` options."""
        from .systems import Wafer

        w = Wafer(self.spec, self.id, self.threads, parallel, self.cache_dir, extra=list(extra))
        w.log_prefix = f"{self.out.stem}-"  # its log: <results>-wafer.log
        return w

    def llama_server(self, slot_ctx: int = 8192):
        """llama-server on this model's GGUF, one slot (not started)."""
        from .systems import LlamaServer

        s = LlamaServer(self.path, self.id, self.threads, 1, slot_ctx)
        s.log_prefix = f"{self.out.stem}-"
        return s

    def on(self, system, measure) -> dict:
        """``measure(system)`` with the system started (and stopped after); {"skipped": why} when it cannot start."""
        from .systems import Skipped

        try:
            system.start(self.log_dir())
        except Skipped as e:
            system.stop()
            return {"skipped": str(e)}
        try:
            return measure(system)
        finally:
            system.stop()

    def peer(self, enabled: bool, measure) -> dict:
        """``measure`` on llama-server, or why it was skipped."""
        return self.on(self.llama_server(), measure) if enabled else {"skipped": "--no-peer"}

    def write(self, results: dict, rendered: str) -> None:
        self.out.write_text(json.dumps(results, indent=2))
        print(rendered)
        print(f"\nwafer bench {self.scenario}: wrote {self.out}")


def ask(system, body: dict, timeout: float = 1800.0) -> Record:
    """One streamed request to a started HTTP system; RuntimeError unless it answered 200 with usage."""
    rec = stream_one(system.base_url, {**body, "model": system.model_id}, timeout=timeout)
    if rec.status != 200 or rec.usage is None:
        raise RuntimeError(f"{system.name}: {rec.error or 'no usage in the stream'}")
    return rec


def ttft(rec: Record) -> float:
    """Request sent -> first content chunk (the whole request when no content came)."""
    return rec.ttft if rec.t_first else rec.e2e
