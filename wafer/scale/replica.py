"""The engine deployment: one replica = the models, their engines and the single-process server's app.

A replica is built from the same ``wafer serve`` flags as a single-process server (``build_registry``)
and serves every forwarded request through the same application (``create_app``): routes, validation,
errors, streaming, headers and keys are the single-process server's by construction. What differs:
its gate charges the state actor's rate limits (shared by every replica), its keys come from the
driver (a keys file need not exist on every node), and every half second it reports its engine stats
and Prometheus text to the state actor for the ingress' deployment-wide views. ``check_health`` fails
when an engine thread has died, so Ray replaces the replica.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import AsyncIterator

from .asgi import relay
from .forward import Forwarded

log = logging.getLogger("wafer.scale")

REPORT_EVERY_S = 0.5


class WaferReplica:
    async def __init__(self, args, keys, generation: str = "") -> None:
        import ray
        from ray import serve

        from ..cli.serve import build_policy, build_registry
        from ..server.app import create_app
        from .limits import SharedLimiter
        from .state import NAME, NAMESPACE

        self.state = ray.get_actor(NAME, namespace=NAMESPACE)
        self.policy = build_policy(args, keys=keys, limiter=SharedLimiter(self.state))
        self.registry = await asyncio.to_thread(build_registry, args)
        self.app = create_app(self.registry, policy=self.policy)
        self.id = serve.get_replica_context().replica_id.unique_id
        self.generation = generation  # changed by a rolling restart (deploy.py)
        self.requests = 0
        self._reporter = asyncio.get_running_loop().create_task(self._report_loop())

    async def __call__(self, fwd: Forwarded) -> AsyncIterator[tuple]:
        self.requests += 1
        async for item in relay(self.app, fwd):
            if item[0] == "start":  # which replica answered: for logs, debugging and the tests
                item = (*item[:2], [*item[2], (b"x-wafer-replica", self.id.encode())])
            yield item

    def check_health(self) -> None:
        dead = [mid for mid, m in self.registry.models.items() if not m.engine.alive]
        if dead:
            raise RuntimeError(f"the engine of {', '.join(dead)} has stopped")

    async def report(self) -> dict:
        stats = {mid: await asyncio.to_thread(m.engine.stats) for mid, m in self.registry.models.items()}
        payload = {"pid": os.getpid(), "node": socket.gethostname(), "requests": self.requests, "stats": stats,
                   "metrics": self.policy.metrics.render(stats, self.policy.draining)}
        await self.state.report.remote(self.id, payload)
        return payload

    async def _report_loop(self) -> None:
        while True:
            try:
                await self.report()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - the state actor restarting: try again next time
                log.warning("replica %s: report failed: %s", self.id, e)
            await asyncio.sleep(REPORT_EVERY_S)

    def __del__(self) -> None:
        reporter = getattr(self, "_reporter", None)
        if reporter is not None:
            reporter.cancel()
        state = getattr(self, "state", None)
        if state is not None:
            state.forget.remote(self.id)
        registry = getattr(self, "registry", None)
        if registry is not None:
            registry.shutdown()
