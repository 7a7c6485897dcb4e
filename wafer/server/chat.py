"""POST /v1/chat/completions."""

from __future__ import annotations

import time
from typing import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..chat.messages import UnsupportedContent, to_template_messages
from ..chat.template import TemplateError
from ..engine.events import ChoiceDelta, LogprobEntry, RequestDone, RequestFailed
from ..protocol import responses as R
from ..protocol.errors import APIError, bad_request
from ..protocol.parse import parse_chat_request
from .bridge import EngineStream
from .sse import SSEResponse
from .http import api_version, read_json, until_done_or_disconnect
from .params import chat_params
from .registry import ServedModel
from .submit import find_model, submit, usage_of

router = APIRouter()


def render_prompt(served: ServedModel, req) -> list[int]:
    """Chat template -> prompt token ids."""
    try:
        messages = to_template_messages([m.model_dump(exclude_none=True) for m in req.messages])
    except UnsupportedContent as e:
        raise bad_request(str(e), e.param)
    tools = [t.model_dump(exclude_none=True) for t in req.tools] if req.tools else None
    try:
        text = served.template.render(messages, tools=tools, add_generation_prompt=True)
    except TemplateError as e:
        raise bad_request(f"The model's chat template rejected the messages: {e}", "messages")
    return served.engine.tokenize(text, add_special=False, parse_special=True)


def chat_logprobs(served: ServedModel, entries: list[LogprobEntry]) -> R.ChatLogprobs:
    pieces = served.engine.model.special_pieces
    return R.ChatLogprobs(
        content=[
            R.LogprobContent(
                token=e.token,
                logprob=e.logprob,
                bytes=list(pieces[e.token_id]),
                top_logprobs=[R.TopLogprob(token=t, logprob=v, bytes=list(pieces[i])) for i, t, v in e.top],
            )
            for e in entries
        ]
    )


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    arrival = time.time()
    req = parse_chat_request(await read_json(request), version=api_version(request))
    served = find_model(request, req.model)
    prompt = render_prompt(served, req)
    params = chat_params(req, served.engine.model.n_vocab)
    rid = R.new_chat_id()
    stream = EngineStream(served.engine)
    submit(stream, prompt, params, rid, arrival)
    meta = dict(id=rid, created=int(arrival), model=req.model, system_fingerprint=served.fingerprint)
    if req.stream:
        return SSEResponse(_sse(served, stream, meta, params.n, bool(req.logprobs)), stream)
    result = await until_done_or_disconnect(request, _collect(served, stream, meta, params.n, bool(req.logprobs)))
    if result is None:  # the client went away; the engine request is cancelled
        return Response(status_code=499)
    return Response(R.dump(result), media_type="application/json")


async def _collect(served: ServedModel, stream: EngineStream, meta: dict, n: int, want_lp: bool) -> R.ChatCompletion:
    texts = [[] for _ in range(n)]
    lps: list[list[LogprobEntry]] = [[] for _ in range(n)]
    finish: list[str | None] = [None] * n
    done: RequestDone | None = None
    async for _, evs in stream.events():
        for ev in evs:
            if isinstance(ev, ChoiceDelta):
                texts[ev.index].append(ev.text)
                lps[ev.index].extend(ev.logprobs)
                if ev.finish_reason:
                    finish[ev.index] = ev.finish_reason
            elif isinstance(ev, RequestDone):
                done = ev
            elif isinstance(ev, RequestFailed):
                raise APIError(ev.status, ev.message, ev.type, None, ev.code)
    assert done is not None
    choices = [
        R.Choice(
            finish_reason=finish[i],
            index=i,
            message=R.Message(content="".join(texts[i])),
            logprobs=chat_logprobs(served, lps[i]) if want_lp else None,
        )
        for i in range(n)
    ]
    return R.ChatCompletion(choices=choices, usage=usage_of(done), time_info=R.TimeInfo(**done.time_info.__dict__), **meta)


async def _sse(served: ServedModel, stream: EngineStream, meta: dict, n: int, want_lp: bool) -> AsyncIterator[bytes]:
    def chunk(choices, **extra) -> bytes:
        return R.sse(R.ChatCompletionChunk(choices=choices, **meta, **extra))

    try:
        for i in range(n):
            yield chunk([R.ChunkChoice(delta=R.Delta(role="assistant"), index=i)])
        pending: list[tuple[int, str]] = []  # finished choices not yet announced
        async for _, evs in stream.events():
            out: list[bytes] = []
            done: RequestDone | None = None
            for ev in evs:
                if isinstance(ev, ChoiceDelta):
                    if ev.text or ev.logprobs:
                        out.append(
                            chunk(
                                [
                                    R.ChunkChoice(
                                        delta=R.Delta(content=ev.text),
                                        index=ev.index,
                                        logprobs=chat_logprobs(served, ev.logprobs) if want_lp else None,
                                    )
                                ]
                            )
                        )
                    if ev.finish_reason:
                        pending.append((ev.index, ev.finish_reason))
                elif isinstance(ev, RequestDone):
                    done = ev
                elif isinstance(ev, RequestFailed):
                    err = APIError(ev.status, ev.message, ev.type, None, ev.code)
                    out.append(R.sse(R.ErrorChunk.from_error(err, meta["id"])))
            if done is None:
                for i, reason in pending:
                    out.append(chunk([R.ChunkChoice(finish_reason=reason, index=i)]))
                pending.clear()
            elif pending:
                last_i, last_reason = pending.pop()
                for i, reason in pending:
                    out.append(chunk([R.ChunkChoice(finish_reason=reason, index=i)]))
                out.append(chunk([R.ChunkChoice(index=last_i)]))
                out.append(
                    chunk(
                        [R.ChunkChoice(finish_reason=last_reason, index=last_i)],
                        usage=usage_of(done),
                        time_info=R.TimeInfo(**done.time_info.__dict__),
                    )
                )
            if out:
                yield b"".join(out)
    finally:
        stream.close()
