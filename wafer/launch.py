"""Server subprocesses on loopback: a free port, the process with its log, ready or not, stopped.

One way to start ``python -m wafer serve`` (and any other server) for everything that needs a live
one: ``wafer bench`` (wafer and its peers), the test suite and the scripts in scripts/ (fuzz, soak).
The subprocess runs from the directory that holds the imported ``wafer`` package, so it serves the
same checkout's code as the process that starts it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NotReady(RuntimeError):
    """The process exited, or was not ready in time (then it is stopped); the message ends with its log's tail."""


class Process:
    """A subprocess whose stdout and stderr go to ``log_path``."""

    def __init__(self, cmd: list[str], log_path: Path, env: dict | None = None, cwd: Path | None = None):
        self.cmd = cmd
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=cwd)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, n: int = 5) -> str:
        lines = [line for line in self.log_text().splitlines() if line.strip()]
        return " | ".join(lines[-n:]) or "(no output)"

    def wait_ready(self, ready: Callable[[], bool], what: str, timeout: float = 300.0) -> None:
        """Poll ``ready()`` until true; NotReady when the process exits or the time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise NotReady(f"{what} exited with status {self.proc.returncode}: {self.tail()}")
            if ready():
                return
            time.sleep(0.1)
        self.stop()
        raise NotReady(f"{what} was not ready after {timeout:g} s: {self.tail()}")

    def stop(self, timeout: float = 30.0) -> None:
        """Terminate (kill after ``timeout`` s) unless it has exited; close the log. Safe to call twice."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class WaferServer(Process):
    """``python -m wafer serve --port P ARGS`` on 127.0.0.1, returned once it logs "ready on"."""

    def __init__(self, args: list[str], log_path: Path, timeout: float = 300.0, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__([sys.executable, "-m", "wafer", "serve", "--port", str(self.port), *args], log_path, env,
                         cwd=ROOT)
        self.wait_ready(lambda: "ready on" in self.log_text(), "wafer serve", timeout)
