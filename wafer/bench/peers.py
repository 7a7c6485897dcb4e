"""Peers, built or installed in the bench's own cache directory (never by the test suite).

``llama-server`` is built from the llama.cpp sources that ship in llama-cpp-python's sdist on PyPI
(the same llama.cpp wafer runs on), with CMake, only the ``llama-server`` target: several minutes
on 2 cores the first time, reused afterwards. llama-cpp-python's OpenAI server runs on wafer's own
interpreter and llama-cpp-python; its extra dependencies are pip-installed with ``--target`` into
the cache and put on that subprocess's PYTHONPATH only.
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
SERVER_DEPS = ("sse-starlette", "starlette-context", "pydantic-settings", "python-dotenv")


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
    subprocess.run(["cmake", "--build", str(root / "build"), "--target", "llama-server",
                    "-j", str(os.cpu_count() or 2)], check=True, stdout=subprocess.DEVNULL)
    return binary if binary.exists() else None


def pythonpath(extra: Path) -> str:
    """PYTHONPATH with ``extra`` first."""
    return os.pathsep.join(filter(None, [str(extra), os.environ.get("PYTHONPATH")]))


def llama_cpp_python_server() -> Path:
    """The directory to put on PYTHONPATH so that ``python -m llama_cpp.server`` runs (RuntimeError: why not).

    Installs only what wafer's environment lacks (``--no-deps``), so nothing there is shadowed.
    """
    target = cache_dir() / "pydeps"
    env = {**os.environ, "PYTHONPATH": pythonpath(target)}
    check = [sys.executable, "-c", "import llama_cpp.server.app"]
    if subprocess.run(check, env=env, capture_output=True).returncode == 0:
        return target
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                        "--upgrade", "--target", str(target), *SERVER_DEPS], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"pip could not install {', '.join(SERVER_DEPS)}: {_tail(r.stderr)}")
    r = subprocess.run(check, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"llama_cpp.server does not import: {_tail(r.stderr)}")
    return target


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"
