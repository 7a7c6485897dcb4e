"""llama-server for the older benchmark scripts (one slot, 8k context); building it and the bench
cache live in wafer.bench.peers (`wafer bench` uses them too)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from wafer.bench.peers import cache_dir, llama_server  # noqa: F401


def run_llama_server(binary: Path, model_path: str, threads: int, log: Path):
    from bench.bench_serve import free_port

    port = free_port()
    f = open(log, "w")
    p = subprocess.Popen([str(binary), "-m", model_path, "--port", str(port), "-t", str(threads), "-c", "8192",
                          "--parallel", "1", "--jinja", "--cache-prompt"], stdout=f, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.time() + 120
    while time.time() < deadline:
        if p.poll() is not None:
            raise RuntimeError(log.read_text()[-2000:])
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return p, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    p.kill()
    raise RuntimeError("llama-server did not start")


def measure_llama_server(enabled: bool, model_path: str, threads: int, out_dir: Path, measure) -> dict:
    """``measure(url)`` against a llama-server on the same GGUF, or why it was skipped."""
    binary = llama_server(build=False) if enabled else None
    if binary is None:
        return {"skipped": "llama-server is not built (python bench/peers.py builds it)" if enabled else "--no-peer"}
    p, url = run_llama_server(binary, model_path, threads, out_dir / "llama-server.log")
    try:
        return measure(url)
    finally:
        p.terminate()
        p.wait(30)


if __name__ == "__main__":
    print(llama_server())
