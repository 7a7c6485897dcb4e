"""The deployment's shared state, one named Ray actor: the rate-limit book and the replicas' reports.

Every replica charges its requests here (``limits.py``) and reports itself every half second: its
process id, node, engine stats per model and its Prometheus text. The ingress reads the reports for
``/health``, ``/ready``, ``/metrics``, ``/wafer/stats`` and ``/wafer/replicas``; a replica that stops
reporting (it died, or was drained away) drops out after ``stale_s``.
"""

from __future__ import annotations

import time

from .limits import LimitsBook

NAME = "wafer-state"
NAMESPACE = "wafer"


class WaferState:
    def __init__(self, rate_limits: dict[str, int] | None = None, stale_s: float = 5.0):
        self.book = LimitsBook(rate_limits)
        self.stale_s = stale_s
        self._reports: dict[str, dict] = {}

    # -- rate limits (limits.SharedKeyLimits) --
    def admit(self, key: str, own: dict | None, tokens: int) -> dict:
        return self.book.admit(key, own, tokens)

    def settle(self, key: str, own: dict | None, charged: int, used: int) -> None:
        self.book.settle(key, own, charged, used)

    def headers(self, key: str, own: dict | None) -> dict:
        return self.book.headers(key, own)

    # -- replica reports --
    def report(self, replica: str, payload: dict) -> None:
        self._reports[replica] = {**payload, "at": time.time()}

    def forget(self, replica: str) -> None:
        self._reports.pop(replica, None)

    def reports(self) -> dict[str, dict]:
        now = time.time()
        for rid in [r for r, p in self._reports.items() if now - p["at"] > self.stale_s]:
            del self._reports[rid]
        return {rid: {**p, "age_s": round(now - p["at"], 3)} for rid, p in sorted(self._reports.items())}

    def ping(self) -> bool:
        return True
