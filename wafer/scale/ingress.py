"""The ingress deployment: the HTTP face of a scaled-out wafer.

Ray Serve's proxy hands every HTTP request to this deployment, which relays it to an engine replica
through a deployment handle; the handle's request router (``routing.py``) picks the replica from the
request's ``Forwarded.prompt``. The replica's answer comes back as ASGI messages and is sent on as it
comes (server-sent events stream through). The ingress holds back a response's start until its first
body bytes, so a replica that dies before producing anything — a request still queued in its engine —
costs nothing visible: the request is sent to another replica (``RETRIES`` times, with backoff while
Ray replaces the dead one). A replica that dies after output was sent ends that stream with an error
event in the Cerebras shape (status 503) — only the streams it carried.

Deployment-wide routes are answered here from the replicas' reports in the state actor: ``/health``
(the ingress answers; replica counts), ``/ready`` (at least one replica reporting), ``/metrics`` (every
replica's Prometheus text with a ``replica`` label, plus the ingress' own counters), ``/wafer/stats``
(the single-process shape, summed over replicas) and ``/wafer/replicas`` (per replica).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from ..protocol.errors import APIError
from ..server.http import error_response, read_raw_body
from ..server.wire import error_event
from .forward import Forwarded, describe
from .merge import merge_metrics, merge_stats

log = logging.getLogger("wafer.scale")

RETRIES = 6  # attempts per request when replicas die before answering
BACKOFF_S = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)
_CHUNK_ID = re.compile(rb'"id"\s*:\s*"([^"]+)"')
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE"]


def replica_gone(e: BaseException) -> bool:
    from ray.exceptions import ActorUnavailableError, RayActorError

    return isinstance(e, (RayActorError, ActorUnavailableError))


def unavailable(message: str) -> APIError:
    return APIError(503, message, "server_error", None, "service_unavailable")


class Relay(Response):
    """A replica's response, sent on as its messages arrive; a replica lost mid-response ends a stream
    with an error event (or, for a response whose body had not started, an error body)."""

    def __init__(self, ingress: "Ingress", fwd: Forwarded, start: tuple, first: list[bytes], gen):
        self.ingress, self.fwd, self.start, self.first, self.gen = ingress, fwd, start, first, gen
        self.background = None

    async def __call__(self, scope, receive, send) -> None:
        _, status, headers = self.start
        headers = [h for h in headers if h[0] != b"x-request-id"]  # Ray's proxy sets it (the gate's id: the same)
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()
            self.gen.cancel()

        watcher = asyncio.ensure_future(watch())
        chunk_id = ""  # the stream's completion id, for an error event

        async def pass_on(body: bytes) -> None:
            nonlocal chunk_id
            if not chunk_id:
                m = _CHUNK_ID.search(body)
                chunk_id = m.group(1).decode() if m else ""
            await send({"type": "http.response.body", "body": body, "more_body": True})

        try:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            for body in self.first:
                await pass_on(body)
            try:
                async for _, body in self.gen:
                    await pass_on(body)
            except Exception as e:  # noqa: BLE001 - a replica lost or failing mid-response
                if gone.is_set():
                    return
                self.ingress.cut += 1
                log.warning("replica lost mid-response (%s %s): %s", self.fwd.method, self.fwd.path, e)
                err = unavailable("The replica serving this request stopped; the output so far is incomplete. "
                                  "Retry the request.")
                await send({"type": "http.response.body", "body": error_event(err, chunk_id), "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # the client's connection broke while writing
            self.gen.cancel()
        finally:
            watcher.cancel()


async def _empty():
    return
    yield  # noqa: unreachable - an async generator with nothing in it


def _forwarded(request: Request, body: bytes) -> Forwarded:
    text, stream = describe(request.url.path, body, request.headers.get("content-type", ""))
    client = request.scope.get("client")
    return Forwarded(method=request.method, path=request.url.path, query=request.scope.get("query_string", b""),
                     headers=[(bytes(k), bytes(v)) for k, v in request.scope.get("headers", ())],
                     body=body, client=tuple(client) if client else None, prompt=text, stream=stream)


class Ingress:
    def __init__(self, engines, max_body_bytes: int, body_timeout: float) -> None:
        import ray

        from .state import NAME, NAMESPACE

        self.engines = engines.options(stream=True)
        self.state = ray.get_actor(NAME, namespace=NAMESPACE)
        self.max_body_bytes, self.body_timeout = max_body_bytes, body_timeout
        self.started = time.time()
        self.retries = 0  # requests sent again after a replica died before answering
        self.cut = 0  # responses ended by an error event because their replica died
        self.relayed = 0

    def __serve_build_asgi_app__(self) -> FastAPI:  # serve.ingress() without an app: built per replica
        return build_routes(self)

    async def _reports(self) -> dict[str, dict]:
        return await self.state.reports.remote()

    async def relay(self, fwd: Forwarded) -> Response:
        self.relayed += 1
        last: BaseException | None = None
        for attempt in range(RETRIES):
            if attempt:
                self.retries += 1
                await asyncio.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
            gen = self.engines.remote(fwd)
            start, first = None, []
            try:
                start = await gen.__anext__()
                if fwd.stream and start[1] == 200:  # hold the start until output exists (still safe to retry)
                    item = await gen.__anext__()
                    first.append(item[1])
                return Relay(self, fwd, start, first, gen)
            except StopAsyncIteration:
                if start is None:
                    return error_response(unavailable("The replica answered nothing."))
                return Relay(self, fwd, start, first, _empty())
            except Exception as e:  # noqa: BLE001
                gen.cancel()
                if not replica_gone(e):
                    log.exception("relaying %s %s failed", fwd.method, fwd.path)
                    return error_response(unavailable(f"The request could not be relayed: {type(e).__name__}"))
                last = e
                log.warning("replica lost before answering %s %s (attempt %d): %s", fwd.method, fwd.path,
                            attempt + 1, e)
        return error_response(unavailable(f"No replica could take the request ({type(last).__name__})."))


def build_routes(ingress: "Ingress") -> FastAPI:
    """The ingress' ASGI app: deployment-wide routes answered here, everything else relayed."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/health")
    async def health() -> JSONResponse:
        reports = await ingress._reports()
        return JSONResponse({"status": "ok", "replicas": len(reports), "uptime_s": round(time.time() - ingress.started)})

    @app.get("/ready")
    async def ready() -> JSONResponse:
        reports = await ingress._reports()
        if not reports:
            return JSONResponse({"status": "no replica is ready"}, status_code=503)
        models = sorted({m for r in reports.values() for m in r.get("stats", {})})
        return JSONResponse({"status": "ready", "replicas": len(reports), "models": models})

    @app.get("/wafer/stats")
    async def stats() -> JSONResponse:
        reports = await ingress._reports()
        return JSONResponse(merge_stats([r.get("stats", {}) for r in reports.values()]))

    @app.get("/wafer/replicas")
    async def replicas() -> JSONResponse:
        reports = await ingress._reports()
        return JSONResponse({
            "replicas": {rid: {k: v for k, v in r.items() if k != "metrics"} for rid, r in reports.items()},
            "ingress": {"relayed": ingress.relayed, "retries": ingress.retries, "cut_by_replica_loss": ingress.cut},
        })

    @app.get("/metrics")
    async def metrics() -> Response:
        reports = await ingress._reports()
        text = merge_metrics({rid: r.get("metrics", "") for rid, r in reports.items()})
        text += "\n".join([
            "# HELP wafer_replicas_reporting Engine replicas that reported in the last seconds.",
            "# TYPE wafer_replicas_reporting gauge",
            f"wafer_replicas_reporting {len(reports)}",
            "# HELP wafer_ingress_relayed_total Requests the ingress relayed to a replica.",
            "# TYPE wafer_ingress_relayed_total counter",
            f"wafer_ingress_relayed_total {ingress.relayed}",
            "# HELP wafer_ingress_retries_total Requests sent again because their replica died before answering.",
            "# TYPE wafer_ingress_retries_total counter",
            f"wafer_ingress_retries_total {ingress.retries}",
            "# HELP wafer_ingress_cut_total Responses ended with an error event because their replica died.",
            "# TYPE wafer_ingress_cut_total counter",
            f"wafer_ingress_cut_total {ingress.cut}",
        ]) + "\n"
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.api_route("/{path:path}", methods=METHODS)
    async def forward(request: Request, path: str) -> Response:
        body = b""
        if request.method in ("POST", "PUT", "PATCH"):
            length = request.headers.get("content-length", "")
            if not (length.isdigit() and int(length) > ingress.max_body_bytes):  # else: the replica's 413
                try:
                    body = await read_raw_body(request, ingress.max_body_bytes, ingress.body_timeout)
                except APIError as e:
                    return error_response(e)
        return await ingress.relay(_forwarded(request, body))

    return app
