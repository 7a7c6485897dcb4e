"""POST /v1/completions (text completions)."""

from __future__ import annotations

import time
from typing import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..engine.events import ChoiceDelta, LogprobEntry, RequestDone, RequestFailed, TimeInfo, Usage
from ..protocol import responses as R
from ..protocol.errors import APIError, bad_request
from ..protocol.parse import parse_completion_request
from .bridge import EngineStream
from .sse import SSEResponse
from .http import off_loop_if_big, read_json, until_done_or_disconnect
from .params import completion_params
from .registry import ServedModel
from .submit import find_model, open_stream, submit

router = APIRouter()


def prompts_of(served: ServedModel, prompt) -> list[list[int]]:
    """The request's prompt(s) as token id lists."""
    model = served.engine.model
    if isinstance(prompt, str):
        prompt = [prompt]
    out: list[list[int]] = []
    if prompt and isinstance(prompt[0], int):
        prompt = [prompt]
    for i, p in enumerate(prompt):
        if isinstance(p, str):
            out.append(served.engine.tokenize(p, add_special=True, parse_special=True))
        else:
            bad = [t for t in p if t >= model.n_vocab]
            if bad:
                raise bad_request(
                    f"prompt: token id {bad[0]} is outside this model's vocabulary (0..{model.n_vocab - 1})", "prompt"
                )
            out.append(list(p))
        if not out[-1]:
            raise bad_request("prompt: the prompt is empty; at least one token is required", "prompt")
    return out


class _Choice:
    """Accumulates one returned choice (non-streaming)."""

    def __init__(self, echo: str):
        self.text = [echo]
        self.entries: list[LogprobEntry] = []
        self.finish: str | None = None
        self.tokens: list[int] = []


# One token of a text completion's logprobs: (token text, logprob or None, top or None, text offset).
TextLp = tuple[str, "float | None", "dict[str, float] | None", int]


def text_entries(entries: list[LogprobEntry], offset: int) -> list[TextLp]:
    return [(e.token, e.logprob, {t: v for _, t, v in e.top}, e.text_offset + offset) for e in entries]


def text_logprobs(items: list[TextLp]) -> R.TextLogprobs:
    return R.TextLogprobs(
        text_offset=[i[3] for i in items],
        token_logprobs=[i[1] for i in items],
        tokens=[i[0] for i in items],
        top_logprobs=[i[2] for i in items],
    )


def prompt_entries(served: ServedModel, prompt: list[int], lps: list[LogprobEntry | None]) -> list[TextLp]:
    """Echoed prompt logprobs. The first prompt token has no logprob (nothing precedes it): OpenAI
    sends null for it, which the Cerebras SDK's types reject, so wafer leaves that token out."""
    pieces = served.engine.model.special_pieces
    out: list[TextLp] = []
    offset = 0
    for j, tok in enumerate(prompt):
        e = lps[j] if 0 < j < len(lps) else None
        text = pieces[tok].decode("utf-8", "replace")
        if e is not None:
            out.append((text, e.logprob, {t: v for _, t, v in e.top}, offset))
        offset += len(text)
    return out


@router.post("/v1/completions")
async def completions(request: Request) -> Response:
    arrival = time.time()
    req = parse_completion_request(await read_json(request))
    served = find_model(request, req.model)
    prompts = await off_loop_if_big(request, prompts_of, served, req.prompt)
    params = completion_params(req, served.engine.model.n_vocab, served.defaults)
    rid = R.new_completion_id()
    request.state.stream = bool(req.stream)
    stream = open_stream(request, served, prompts, params)
    for p in prompts:
        submit(stream, p, params, rid, arrival)
    echo = [served.engine.model.detokenize(p, special=True) for p in prompts] if req.echo else [""] * len(prompts)
    meta = dict(id=rid, created=int(arrival), model=req.model, system_fingerprint=served.fingerprint)
    if req.stream:
        return SSEResponse(_sse(stream, meta, params.n, echo, req), stream)
    result = await until_done_or_disconnect(request, _collect(served, stream, meta, params.n, prompts, echo, req))
    if result is None:
        return Response(status_code=499)
    return Response(R.dump(result), media_type="application/json")


def _total(dones: list[RequestDone]) -> tuple[R.Usage, R.TimeInfo]:
    u = Usage(
        prompt_tokens=sum(d.usage.prompt_tokens for d in dones),
        completion_tokens=sum(d.usage.completion_tokens for d in dones),
        cached_tokens=sum(d.usage.cached_tokens for d in dones),
    )
    last = max(dones, key=lambda d: d.time_info.created + d.time_info.total_time).time_info
    first = min(dones, key=lambda d: d.time_info.created).time_info
    ti = TimeInfo(
        queue_time=max(d.time_info.queue_time for d in dones),
        prompt_time=sum(d.time_info.prompt_time for d in dones),
        completion_time=max(d.time_info.completion_time for d in dones),
        total_time=last.created + last.total_time - first.created,
        created=first.created,
    )
    return R.Usage.make(u.prompt_tokens, u.completion_tokens, cached_tokens=u.cached_tokens), R.TimeInfo(**ti.__dict__)


async def _collect(served, stream: EngineStream, meta: dict, n: int, prompts, echo: list[str], req) -> R.TextCompletion:
    want_lp = req.logprobs is not None
    per_prompt = [[_Choice(echo[k]) for _ in range(req.best_of if req.best_of and req.best_of > n else n)] for k in range(len(prompts))]
    dones: list[RequestDone | None] = [None] * len(prompts)
    async for k, evs in stream.events():
        for ev in evs:
            if isinstance(ev, ChoiceDelta):
                c = per_prompt[k][ev.index]
                c.text.append(ev.text)
                c.tokens.extend(ev.token_ids)
                c.entries.extend(ev.logprobs)
                if ev.finish_reason:
                    c.finish = ev.finish_reason
            elif isinstance(ev, RequestDone):
                dones[k] = ev
            elif isinstance(ev, RequestFailed):
                raise APIError(ev.status, ev.message, ev.type, None, ev.code)
    choices = []
    for k, cs in enumerate(per_prompt):
        done = dones[k]
        order = done.choices if done and done.choices else list(range(n))
        prefix: list[TextLp] = []
        if want_lp and req.echo and done and done.prompt_logprobs is not None:
            prefix = prompt_entries(served, prompts[k], done.prompt_logprobs)
        for j, idx in enumerate(order):
            c = cs[idx]
            choices.append(
                R.TextChoice(
                    index=k * n + j,
                    finish_reason=c.finish,
                    text="".join(c.text),
                    logprobs=text_logprobs(prefix + text_entries(c.entries, len(echo[k]))) if want_lp else None,
                    tokens=c.tokens if req.return_raw_tokens else None,
                )
            )
    usage, ti = _total([d for d in dones if d is not None])
    return R.TextCompletion(choices=choices, usage=usage, time_info=ti, **meta)


async def _sse(stream: EngineStream, meta: dict, n: int, echo: list[str], req) -> AsyncIterator[bytes]:
    want_lp = req.logprobs is not None

    def chunk(choices, **extra) -> bytes:
        return R.sse(R.TextCompletion(choices=choices, **meta, **extra))

    try:
        first = [True] * len(echo)
        dones: list[RequestDone] = []
        remaining = len(echo)
        async for k, evs in stream.events():
            out: list[bytes] = []
            finals: list[R.TextChoice] = []
            for ev in evs:
                if isinstance(ev, ChoiceDelta):
                    text = ev.text
                    if first[k] and echo[k]:
                        text = echo[k] + text
                    first[k] = False
                    choice = R.TextChoice(
                        index=k * n + ev.index,
                        text=text,
                        logprobs=text_logprobs(text_entries(ev.logprobs, len(echo[k]))) if want_lp and ev.logprobs else None,
                        tokens=ev.token_ids if req.return_raw_tokens else None,
                    )
                    if ev.finish_reason:
                        choice.finish_reason = ev.finish_reason
                        finals.append(choice)
                    else:
                        out.append(chunk([choice]))
                elif isinstance(ev, RequestDone):
                    dones.append(ev)
                    remaining -= 1
                elif isinstance(ev, RequestFailed):
                    err = APIError(ev.status, ev.message, ev.type, None, ev.code)
                    out.append(R.sse(R.ErrorChunk.from_error(err, meta["id"])))
            if remaining == 0 and finals:
                last = finals.pop()
                out += [chunk([c]) for c in finals]
                usage, ti = _total(dones)
                out.append(chunk([last], usage=usage, time_info=ti))
            else:
                out += [chunk([c]) for c in finals]
            if out:
                yield b"".join(out)
    finally:
        stream.close()
