"""A short soak (scripts/soak.py): 16 streaming clients for ~20 s, a fifth of them hanging up on purpose.

The full run is `.venv/bin/python scripts/soak.py --clients 64 --duration 600`.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest
from conftest import ROOT, Server, serve_args

_spec = importlib.util.spec_from_file_location("soak", ROOT / "scripts" / "soak.py")
soak = sys.modules["soak"] = importlib.util.module_from_spec(_spec)  # dataclasses look the module up
_spec.loader.exec_module(soak)


@pytest.fixture(scope="module")
def soak_server(resolved_model, tmp_path_factory):
    s = Server(serve_args(resolved_model) + ["--parallel", "16", "--ctx-size", "2048", "--cache-ram", "64"],
               tmp_path_factory.mktemp("soak") / "server.log")
    yield s
    s.stop()


def test_soak_short(soak_server):
    r = soak.run_soak(
        soak_server.url, clients=16, duration=20, disconnect=0.2, seed=0, pid=soak_server.proc.pid,
        grace=10, idle_timeout=20, max_rss_growth=0.15, log_path=soak_server.log_path,
        max_prompt_words=300, max_tokens=64,  # shorter requests: enough of them finish in 20 s on 2 cores
    )
    soak.print_table(r)  # shown with -s
    summary = {k: r[k] for k in ("requests", "completed", "disconnected", "cut_at_end", "error_kinds",
                                 "error_samples", "idle_checks", "rss_kb", "server_log_problems")}
    assert r["errors"] == 0, summary
    assert r["idle"], summary
    assert r["server_alive"] and not r["server_log_problems"], summary
    assert r["completed"] > 0 and r["disconnected"] > 0, summary
    assert r["rss_kb"]["growth"] is not None and r["rss_kb"]["growth"] < 0.15, summary
    assert r["host_cache_bytes_peak"] <= r["host_cache_capacity_bytes"] == 64 << 20, summary
    assert r["passed"], r["failures"]
