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


if __name__ == "__main__":
    print(llama_server())
