"""Schemathesis hooks for ``scripts/fuzz.py``: bounded generation, one JSON line per request sent.

Loaded by the schemathesis CLI through ``SCHEMATHESIS_HOOKS=fuzz_hooks``; configured by the
environment:

``WAFER_FUZZ_LOG``
    file that gets one line per request: ``{"op", "phase", "status", "elapsed"}``, with
    ``status: "timeout"`` or ``"dropped"`` for a request that got no HTTP answer. Requests
    answered with a 5xx, those without an answer and those slower than ``WAFER_FUZZ_SLOW``
    seconds (default 10) also carry the request itself (method, URL, headers, body) so that they
    can be replayed.
``WAFER_FUZZ_SERVED``, ``WAFER_FUZZ_MAX_TOKENS``, ``WAFER_FUZZ_MAX_N``
    served model ids (comma separated) and the generation bounds of ``fuzz.bound_cost``.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading

import schemathesis
from fuzz import bound_cost

SERVED = frozenset(filter(None, os.environ.get("WAFER_FUZZ_SERVED", "").split(",")))
MAX_TOKENS = int(os.environ.get("WAFER_FUZZ_MAX_TOKENS", "8"))
MAX_N = int(os.environ.get("WAFER_FUZZ_MAX_N", "2"))
SLOW = float(os.environ.get("WAFER_FUZZ_SLOW", "10"))

_LOCK = threading.Lock()
_OUT = None


def _phase(case) -> str | None:
    name = getattr(getattr(getattr(case, "meta", None), "phase", None), "name", None)
    return getattr(name, "value", name)


def _request(prepared) -> dict:
    """Method, URL, headers and body of a ``requests.PreparedRequest``."""
    body = prepared.body
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogateescape")
    out = {"method": prepared.method, "url": prepared.url, "headers": dict(prepared.headers)}
    if body is not None:
        try:
            out["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            out["body_base64"] = base64.b64encode(body).decode("ascii")
    return out


def _write(record: dict) -> None:
    global _OUT
    line = json.dumps(record, ensure_ascii=True, default=str)
    with _LOCK:
        if _OUT is None:
            _OUT = open(os.environ["WAFER_FUZZ_LOG"], "a", buffering=1, encoding="utf-8")  # noqa: SIM115
        _OUT.write(line + "\n")


@schemathesis.hook
def before_call(context, case, kwargs) -> None:
    """Keep requests that reach the engine cheap (see ``fuzz.bound_cost``)."""
    if isinstance(case.body, dict):
        bound_cost(case.body, SERVED, MAX_TOKENS, MAX_N)


@schemathesis.hook
def after_call(context, case, response) -> None:
    """Record one answered request."""
    record = {
        "op": f"{case.method.upper()} {case.path}",
        "phase": _phase(case),
        "status": response.status_code,
        "elapsed": round(response.elapsed, 4),
    }
    if response.status_code >= 500 or response.elapsed > SLOW:
        record["request"] = _request(response.request)
        record["response"] = response.text[:2000]
    _write(record)


@schemathesis.hook
def after_network_error(context, case, request) -> None:
    """Record a request that got no HTTP answer: ``timeout`` (no answer in time) or ``dropped``.

    Schemathesis calls this hook from inside its ``except`` block, so ``sys.exc_info`` is the error."""
    import requests

    exc = sys.exc_info()[1]
    timeout = isinstance(exc, requests.Timeout)
    _write({"op": f"{case.method.upper()} {case.path}", "phase": _phase(case),
            "status": "timeout" if timeout else "dropped", "error": repr(exc)[:500], "request": _request(request)})
