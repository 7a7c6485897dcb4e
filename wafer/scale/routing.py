"""Request routers for the engine deployment (Ray Serve's request-router extension point).

``PrefixRouter`` is Ray Serve's ``PrefixCacheAffinityRouter``: a prefix tree (one actor per
deployment) of the texts each replica has been sent; a request goes to the replica whose earlier
requests share the longest prefix with it — so a conversation's next turn and requests with a shared
system prompt land where that prefix sits in a KV stream or in host memory — unless the replicas'
queue lengths (ongoing requests) differ by more than ``imbalanced_threshold``, when the less loaded of
two random replicas wins. A request matching under ``match_rate_threshold`` of its text goes to the
replica holding the least text. wafer's part: the text is ``Forwarded.prompt`` (messages' contents in
order, or the completion prompt), and requests without one (model listings, malformed bodies) are
routed on load alone instead of failing in the router.

``RoundRobinRouter`` sends requests to the replicas in turn: the baseline that the routing tests and
``docs/scale-out.md`` compare against.
"""

from __future__ import annotations

from ray.serve._private.request_router import PowerOfTwoChoicesRequestRouter
from ray.serve.request_router import FIFOMixin, RequestRouter

try:  # the public name needs ray[llm] (vLLM and pyarrow); the class itself needs neither
    from ray.serve.llm.request_router import PrefixCacheAffinityRouter
except ImportError:
    from ray.llm._internal.serve.routing_policies.prefix_aware.prefix_aware_router import (
        PrefixCacheAffinityRouter,
    )

ROUTERS = {
    "prefix": "wafer.scale.routing.PrefixRouter",
    "round-robin": "wafer.scale.routing.RoundRobinRouter",
    "pow2": "ray.serve._private.request_router.pow_2_router.PowerOfTwoChoicesRequestRouter",
}


def _prompt(pending_request) -> str:
    for arg in (pending_request.args or ()) if pending_request is not None else ():
        text = getattr(arg, "prompt", None)
        if isinstance(text, str):
            return text
    return ""


class PrefixRouter(PrefixCacheAffinityRouter):
    def _extract_text_from_request(self, pending_request) -> str:
        return _prompt(pending_request)

    async def choose_replicas(self, candidate_replicas, pending_request=None):
        if not _prompt(pending_request):
            return await PowerOfTwoChoicesRequestRouter.choose_replicas(self, candidate_replicas, pending_request)
        return await super().choose_replicas(candidate_replicas, pending_request)

    def on_request_routed(self, pending_request, replica_id, result) -> None:
        if _prompt(pending_request):
            super().on_request_routed(pending_request, replica_id, result)


class RoundRobinRouter(FIFOMixin, RequestRouter):
    def initialize_state(self, **kwargs) -> None:
        self._turn = 0

    async def choose_replicas(self, candidate_replicas, pending_request=None):
        if not candidate_replicas:
            return []
        ordered = sorted(candidate_replicas, key=lambda r: r.replica_id.unique_id)
        chosen = ordered[self._turn % len(ordered)]
        self._turn += 1
        return [[chosen]]
