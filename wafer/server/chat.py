"""POST /v1/chat/completions."""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..chat.messages import UnsupportedContent, add_system_text, to_template_messages
from ..chat.structured import json_grammar, response_format_grammar, schema_guidance
from ..chat.template import TemplateError
from ..chat.tools import ToolCallParser, ToolPlan, apply_fallback, plan_tools, supports_tool_calls
from ..engine.grammar import Grammar, GrammarError, Grammars
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


def render_prompt(served: ServedModel, req, plan: ToolPlan, guidance: str | None = None) -> list[int]:
    """Chat template -> prompt token ids (tools rendered natively or with wafer's fallback)."""
    try:
        messages = to_template_messages([m.model_dump(exclude_none=True) for m in req.messages])
    except UnsupportedContent as e:
        raise bad_request(str(e), e.param)
    tools = plan.tools if plan.native else None
    if not supports_tool_calls(served.template.source):
        messages = apply_fallback(messages, plan.tools)
    if guidance:
        messages = add_system_text(messages, guidance)
    try:
        text = served.template.render(messages, tools=tools, add_generation_prompt=True)
    except TemplateError as e:
        raise bad_request(f"The model's chat template rejected the messages: {e}", "messages")
    return served.engine.tokenize(text, add_special=False, parse_special=True)


async def compile_grammar(served: ServedModel, text: str | None, param: str) -> Grammar | None:
    """Compile off the event loop (llguidance drops the GIL); a grammar that fails is a 400."""
    if text is None:
        return None
    try:
        return await asyncio.to_thread(served.engine.grammars.compile, text)
    except GrammarError as e:
        raise bad_request(f"The output constraint could not be compiled: {e}", param) from None


def _strict_args_valid(grammars: Grammars, schemas: dict[str, dict], call: dict) -> bool:
    """A call's arguments against its strict tool's schema (the same grammar that constrains calls)."""
    schema = schemas.get(call["name"])
    if schema is None:
        return True
    m = grammars.compile(json_grammar(schema)).matcher.deep_copy()
    return m.consume_tokens(grammars.tokenizer.tokenize_str(call["arguments"])) and m.is_accepting()


class ChoiceOutput:
    """One choice's output: content, and tool calls parsed out of it when the request has tools."""

    def __init__(self, plan: ToolPlan, grammars: Grammars | None = None):
        check = partial(_strict_args_valid, grammars, plan.strict_args) if grammars and plan.strict_args else None
        self.parser = ToolCallParser(plan.bare_names, check) if plan.parse else None
        self.ncalls = 0

    def _calls(self, calls: list[dict]) -> list[R.ToolCall]:
        out = []
        for c in calls:
            fn = R.FunctionCall(name=c["name"], arguments=c["arguments"])
            out.append(R.ToolCall(function=fn, id=R.new_tool_call_id(), index=self.ncalls))
            self.ncalls += 1
        return out

    def feed(self, text: str) -> tuple[str, list[R.ToolCall]]:
        if self.parser is None:
            return text, []
        content, calls = self.parser.feed(text)
        return content, self._calls(calls)

    def finish(self, reason: str | None) -> tuple[str, list[R.ToolCall], str | None]:
        content, calls = self.parser.finish() if self.parser is not None else ("", [])
        calls = self._calls(calls)
        if self.ncalls and reason == "stop":
            reason = "tool_calls"
        return content, calls, reason


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
    version = api_version(request)
    req = parse_chat_request(await read_json(request), version=version)
    served = find_model(request, req.model)
    plan = plan_tools(req, served.template.source, served.tool_tokens, version)
    fmt_grammar = response_format_grammar(req.response_format, version)
    prompt = render_prompt(served, req, plan, schema_guidance(req.response_format))
    params = chat_params(req, served.engine.model.n_vocab)
    if plan.grammar is not None:
        params.grammar = await compile_grammar(served, plan.grammar, "tools")
    else:
        params.grammar = await compile_grammar(served, fmt_grammar, "response_format")
    rid = R.new_chat_id()
    stream = EngineStream(served.engine)
    submit(stream, prompt, params, rid, arrival)
    meta = dict(id=rid, created=int(arrival), model=req.model, system_fingerprint=served.fingerprint)
    outs = [ChoiceOutput(plan, served.engine.grammars) for _ in range(params.n)]
    if req.stream:
        return SSEResponse(_sse(served, stream, meta, outs, bool(req.logprobs)), stream)
    result = await until_done_or_disconnect(request, _collect(served, stream, meta, outs, bool(req.logprobs)))
    if result is None:  # the client went away; the engine request is cancelled
        return Response(status_code=499)
    return Response(R.dump(result), media_type="application/json")


async def _collect(
    served: ServedModel, stream: EngineStream, meta: dict, outs: list[ChoiceOutput], want_lp: bool
) -> R.ChatCompletion:
    n = len(outs)
    texts: list[list[str]] = [[] for _ in range(n)]
    calls: list[list[R.ToolCall]] = [[] for _ in range(n)]
    lps: list[list[LogprobEntry]] = [[] for _ in range(n)]
    finish: list[str | None] = [None] * n
    done: RequestDone | None = None
    async for _, evs in stream.events():
        for ev in evs:
            if isinstance(ev, ChoiceDelta):
                out = outs[ev.index]
                content, new = out.feed(ev.text)
                texts[ev.index].append(content)
                calls[ev.index] += new
                lps[ev.index].extend(ev.logprobs)
                if ev.finish_reason:
                    content, new, finish[ev.index] = out.finish(ev.finish_reason)
                    texts[ev.index].append(content)
                    calls[ev.index] += new
            elif isinstance(ev, RequestDone):
                done = ev
            elif isinstance(ev, RequestFailed):
                raise APIError(ev.status, ev.message, ev.type, None, ev.code)
    assert done is not None
    choices = []
    for i in range(n):
        content = "".join(texts[i])
        tool_calls = [c.model_copy(update={"index": None}) for c in calls[i]] or None
        choices.append(
            R.Choice(
                finish_reason=finish[i],
                index=i,
                message=R.Message(content=content if content or not tool_calls else None, tool_calls=tool_calls),
                logprobs=chat_logprobs(served, lps[i]) if want_lp else None,
            )
        )
    return R.ChatCompletion(choices=choices, usage=usage_of(done), time_info=R.TimeInfo(**done.time_info.__dict__), **meta)


async def _sse(
    served: ServedModel, stream: EngineStream, meta: dict, outs: list[ChoiceOutput], want_lp: bool
) -> AsyncIterator[bytes]:
    def chunk(choices, **extra) -> bytes:
        return R.sse(R.ChatCompletionChunk(choices=choices, **meta, **extra))

    def delta(i: int, content: str, calls: list[R.ToolCall], logprobs: list[LogprobEntry]) -> bytes | None:
        if not (content or calls or logprobs):
            return None
        d = R.Delta(content=content if content or not calls else None, tool_calls=calls or None)
        lp = chat_logprobs(served, logprobs) if want_lp and logprobs else None
        return chunk([R.ChunkChoice(delta=d, index=i, logprobs=lp)])

    try:
        for i in range(len(outs)):
            yield chunk([R.ChunkChoice(delta=R.Delta(role="assistant"), index=i)])
        pending: list[tuple[int, str]] = []  # finished choices not yet announced
        async for _, evs in stream.events():
            out: list[bytes] = []
            done: RequestDone | None = None
            for ev in evs:
                if isinstance(ev, ChoiceDelta):
                    o = outs[ev.index]
                    content, calls = o.feed(ev.text)
                    if ev.finish_reason:
                        rest, more, reason = o.finish(ev.finish_reason)
                        content, calls = content + rest, calls + more
                        pending.append((ev.index, reason))
                    c = delta(ev.index, content, calls, ev.logprobs)
                    if c is not None:
                        out.append(c)
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
