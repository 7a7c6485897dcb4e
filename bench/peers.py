"""Peers the benchmarks compare against, built in the bench's own cache directory.

`llama-server` is built from the llama.cpp sources that ship in llama-cpp-python's sdist on PyPI
(the same llama.cpp wafer runs on), with CMake, only the `llama-server` target. The first build
takes several minutes on 2 cores; later runs reuse it. Nothing is built by the test suite.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"


def cache_dir() -> Path:
    base = os.environ.get("WAFER_BENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "wafer", "bench"
    )
    p = Path(base)
    p.mkdir(parents=True, exist_ok=True)
    return p


def llama_server(build: bool = True) -> Path | None:
    """Path of a llama-server binary, building it if needed (None when it cannot be built here)."""
    root = cache_dir() / "llama.cpp"
    binary = root / "build" / "bin" / "llama-server"
    if binary.exists():
        return binary
    if not build or shutil.which("cmake") is None:
        return None
    src = root / "src"
    if not src.exists():
        dl = cache_dir() / "sdist"
        dl.mkdir(exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", str(dl),
                        LLAMA_CPP_PYTHON], check=True, stdout=subprocess.DEVNULL)
        tgz = glob.glob(str(dl / "llama_cpp_python-*.tar.gz"))[0]
        with tarfile.open(tgz) as t:
            t.extractall(dl, filter="data")
        vendor = glob.glob(str(dl / "llama_cpp_python-*" / "vendor" / "llama.cpp"))[0]
        shutil.move(vendor, src)
    subprocess.run(["cmake", "-S", str(src), "-B", str(root / "build"), "-DCMAKE_BUILD_TYPE=Release",
                    "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
                    "-DLLAMA_BUILD_SERVER=ON", "-DBUILD_SHARED_LIBS=OFF"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(root / "build"), "--target", "llama-server", "-j", str(os.cpu_count() or 2)],
                   check=True, stdout=subprocess.DEVNULL)
    return binary if binary.exists() else None


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
