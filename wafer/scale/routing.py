"""Request routers for the engine deployment (Ray Serve's request-router extension point).

``PrefixRouter`` is Ray Serve's ``PrefixCacheAffinityRouter``: a prefix tree (one actor per
deployment) of the texts each replica has been sent; a request goes to the replica whose earlier
requests share the longest prefix with it — so a conversation's next turn and requests with a shared
system prompt land where that prefix sits in a KV stream or in host memory — unless the replicas'
queue lengths (ongoing requests) differ by more than ``imbalanced_threshold``, when the less loaded of
two random replicas wins. Requests without a prompt (model listings, malformed bodies) are routed on
load alone instead of failing in the router.

wafer's changes: the text is ``Forwarded.prompt``; a request matching under the threshold (a new
conversation) takes the power-of-two choice (the less loaded of two replicas) rather than the replica
holding the least text; the prefix tree is queried and updated without blocking the event loop.

``RoundRobinRouter`` sends requests to the replicas in turn: the baseline that the routing tests and
``docs/scale-out.md`` compare against.
"""

from __future__ import annotations

import time

from ray.serve._private.request_router import PowerOfTwoChoicesRequestRouter
from ray.serve.request_router import FIFOMixin, ReplicaID, RequestRouter

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
    """Ray Serve's prefix-affinity router (its prefix-tree actor, eviction, replica bookkeeping), with two
    changes: a request that matches little (a new conversation) goes to the less loaded of two replicas
    instead of the replica holding the least text (which sends a burst of new conversations to one
    replica), and the tree is asked and updated without blocking the caller's event loop."""

    def _extract_text_from_request(self, pending_request) -> str:
        return _prompt(pending_request)

    async def _queue_lens(self, replicas) -> list[int]:
        lens, unknown = {}, []
        for r in replicas:
            q = self._replica_queue_len_cache.get(r.replica_id) if self._use_replica_queue_len_cache else None
            if q is None:
                unknown.append(r)
            else:
                lens[r.replica_id] = q
        if unknown:
            for r, q in await self._probe_queue_lens(unknown, 0):
                if q is not None:
                    lens[r.replica_id] = q
        return list(lens.values())

    async def _prefix_match_best_replicas(self, pending_request, candidate_replicas):
        text = _prompt(pending_request)
        if text:
            lens = await self._queue_lens(candidate_replicas)
            if lens and max(lens) - min(lens) <= self._imbalanced_threshold:
                ids = [r.replica_id.to_full_id_str() for r in candidate_replicas]
                matched, tenants = await self._tree_actor.prefix_match.remote(text, ids)
                if tenants and len(matched) / len(text) >= self._match_rate_threshold:
                    return [[self._replicas[ReplicaID.from_full_id_str(t)] for t in tenants
                             if ReplicaID.from_full_id_str(t) in self._replicas]]
        return [[]]  # choose_replicas then takes the power-of-two choice

    async def choose_replicas(self, candidate_replicas, pending_request=None):
        if not _prompt(pending_request):
            return await PowerOfTwoChoicesRequestRouter.choose_replicas(self, candidate_replicas, pending_request)
        return await super().choose_replicas(candidate_replicas, pending_request)

    def on_request_routed(self, pending_request, replica_id, result) -> None:
        text = _prompt(pending_request)
        if text:
            self._tree_actor.insert.remote(text, replica_id.to_full_id_str(), time.time())


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
