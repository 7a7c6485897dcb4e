"""From the engine thread to the event loop: the events of one API call as an async iterator.

One API call may submit several engine requests (a text completion with a list of prompts). The
engine calls ``_sink`` from its thread; the events are handed to the event loop with one
``call_soon_threadsafe`` per step and request. Leaving the iterator early (a client that went
away, a cancelled task) cancels every request still running, which frees its sequences and KV
cells at the engine's next step. When the stream closes, ``on_close`` (metrics, rate-limit
settlement) sees what finished and how many tokens were used.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import AsyncIterator, Callable

from ..engine.engine import Engine
from ..engine.events import RequestDone, RequestFailed
from ..engine.sequence import GenerationParams, Request


class EngineStream:
    def __init__(self, engine: Engine, on_close: Callable[["EngineStream"], None] | None = None):
        self.engine = engine
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple[int, list]] = asyncio.Queue()
        self.requests: list[Request] = []
        self.finished: list[RequestDone] = []
        self._open = 0
        self._on_close = on_close

    @property
    def tokens_used(self) -> int:
        """Prompt + output tokens: the finished requests' usage, else what was computed so far."""
        if self.requests and len(self.finished) == len(self.requests):
            return sum(d.usage.total_tokens for d in self.finished)
        return sum(len(r.prompt) + sum(s.num_generated for s in r.seqs) for r in self.requests)

    def _sink(self, k: int, events: list) -> None:  # engine thread
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (k, events))
        except RuntimeError:  # the loop is closed: nobody is listening any more
            pass

    def submit(self, prompt: list[int], params: GenerationParams, request_id: str, arrival: float) -> int:
        k = len(self.requests)
        try:
            req = self.engine.submit(prompt, params, partial(self._sink, k), request_id, arrival)
        except Exception:
            self.close()
            raise
        self.requests.append(req)
        self._open += 1
        return k

    async def events(self) -> AsyncIterator[tuple[int, list]]:
        try:
            while self._open:
                k, evs = await self.queue.get()
                if k < 0:  # aborted
                    return
                if evs and isinstance(evs[-1], (RequestDone, RequestFailed)):
                    self._open -= 1
                    if isinstance(evs[-1], RequestDone):
                        self.finished.append(evs[-1])
                yield k, evs
        finally:
            self.close()

    def abort(self) -> None:
        """The client went away: cancel everything and end ``events()``."""
        self.close()
        self.queue.put_nowait((-1, []))

    def close(self) -> None:
        """Cancel whatever has not finished (a no-op once everything finished); ``on_close`` once."""
        for req in self.requests:
            if not req.done and not req.cancelled:
                self.engine.cancel(req)
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close(self)
