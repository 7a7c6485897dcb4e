"""POST /v1/completions (text completions)."""

from __future__ import annotations

import time
from typing import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..chat.grammar_root import grammar_root_grammar
from ..engine.events import LogprobEntry, RequestDone
from ..protocol import responses as R
from ..protocol.errors import bad_request
from ..protocol.parse import parse_completion_request
from .bridge import EngineStream
from .sse import SSEResponse
from .http import api_version, off_loop_if_big, read_body, until_done_or_disconnect
from .params import completion_params
from .registry import ServedModel
from .submit import check_parallel, compile_grammar, find_model, open_stream, submit
from .wire import error_event, steps, totals

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
    api_version(request)  # a bad X-Cerebras-Version-Patch is a 400 here too; the versions differ only in chat
    req = parse_completion_request(await read_body(request))
    served = find_model(request, req.model)
    params = completion_params(req, served.engine.model.n_vocab, served.defaults)
    check_parallel(served, params)
    prompts = await off_loop_if_big(request, prompts_of, served, req.prompt)
    if req.grammar_root is not None:
        params.grammar = await compile_grammar(served, grammar_root_grammar(req.grammar_root), "grammar_root")
    rid = R.new_completion_id()
    request.state.stream = bool(req.stream)
    stream = await open_stream(request, served, prompts, params)
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


async def _collect(served, stream: EngineStream, meta: dict, n: int, prompts, echo: list[str], req) -> R.TextCompletion:
    want_lp = req.logprobs is not None
    per_prompt = [[_Choice(echo[k]) for _ in range(req.best_of if req.best_of and req.best_of > n else n)] for k in range(len(prompts))]
    dones: list[RequestDone | None] = [None] * len(prompts)
    async for step in steps(stream):
        if step.error is not None:
            raise step.error
        for ev in step.deltas:
            c = per_prompt[step.k][ev.index]
            c.text.append(ev.text)
            c.tokens.extend(ev.token_ids)
            c.entries.extend(ev.logprobs)
            if ev.finish_reason:
                c.finish = ev.finish_reason
        if step.done is not None:
            dones[step.k] = step.done
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
    usage, ti = totals([d for d in dones if d is not None])
    return R.TextCompletion(choices=choices, usage=usage, time_info=ti, **meta)


async def _sse(stream: EngineStream, meta: dict, n: int, echo: list[str], req) -> AsyncIterator[bytes]:
    want_lp = req.logprobs is not None

    def chunk(choices, **extra) -> bytes:
        return R.sse(R.TextCompletion(choices=choices, **meta, **extra))

    try:
        first = [True] * len(echo)
        dones: list[RequestDone] = []
        remaining = len(echo)
        async for step in steps(stream):
            k = step.k
            out: list[bytes] = []
            finals: list[R.TextChoice] = []
            for ev in step.deltas:
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
            if step.done is not None:
                dones.append(step.done)
                remaining -= 1
            if step.error is not None:
                out.append(error_event(step.error, meta["id"]))
            if remaining == 0 and finals:
                last = finals.pop()
                out += [chunk([c]) for c in finals]
                usage, ti = totals(dones)
                out.append(chunk([last], usage=usage, time_info=ti))
            else:
                out += [chunk([c]) for c in finals]
            if out:
                yield b"".join(out)
    finally:
        stream.close()
