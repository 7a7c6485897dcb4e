"""POST /v1/chat/completions."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from typing import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..chat.messages import UnsupportedContent, add_system_text, to_template_messages
from ..chat.reasoning import CLOSE as THINK_CLOSE
from ..chat.reasoning import OPEN as THINK_OPEN
from ..chat.reasoning import (
    ReasoningParser,
    clear_earlier_thinking,
    engine_spec,
    output_format,
    template_kwargs,
    thinking_budget,
    thinking_on,
)
from ..chat.structured import json_grammar, response_format_grammar, schema_guidance
from ..chat.template import TemplateError
from ..chat.tools import ToolCallParser, ToolPlan, apply_fallback, plan_tools, supports_tool_calls
from ..engine.grammar import Grammars
from ..engine.events import LogprobEntry
from ..protocol import responses as R
from ..protocol.errors import bad_request
from ..protocol.parse import parse_chat_request
from .bridge import EngineStream
from .sse import SSEResponse
from .http import api_version, off_loop_if_big, read_body, until_done_or_disconnect
from .params import chat_params
from .registry import ServedModel
from .submit import check_parallel, compile_grammar, find_model, open_stream, submit
from .tiers import resolve as resolve_tier
from .wire import error_event, steps, totals

router = APIRouter()


def render_prompt(served: ServedModel, req, plan: ToolPlan, guidance: str | None = None) -> tuple[list[int], str]:
    """Chat template -> (prompt token ids, prompt text); tools rendered natively or with wafer's
    fallback, a reasoning family's switches passed to the template."""
    try:
        messages = to_template_messages([m.model_dump(exclude_none=True) for m in req.messages],
                                        developer_as_system=not served.has_developer_role)
    except UnsupportedContent as e:
        raise bad_request(str(e), e.param)
    tools = plan.tools if plan.native else None
    if not supports_tool_calls(served.template.source):
        messages = apply_fallback(messages, plan.tools)
    if guidance:
        messages = add_system_text(messages, guidance)
    kwargs = {}
    if served.reasoning is not None:
        kwargs = template_kwargs(served.reasoning, req)
        messages = clear_earlier_thinking(messages, kwargs["clear_thinking"])
    try:
        text = served.template.render(messages, tools=tools, add_generation_prompt=True, **kwargs)
    except TemplateError as e:
        raise bad_request(f"The model's chat template rejected the messages: {e}", "messages")
    return served.engine.tokenize(text, add_special=False, parse_special=True), text


def _strict_args_valid(grammars: Grammars, schemas: dict[str, dict], call: dict) -> bool:
    """A call's arguments against its strict tool's schema (the same grammar that constrains calls)."""
    schema = schemas.get(call["name"])
    if schema is None:
        return True
    m = grammars.compile(json_grammar(schema)).matcher.deep_copy()
    return m.consume_tokens(grammars.tokenizer.tokenize_str(call["arguments"])) and m.is_accepting()


@dataclass
class Piece:
    """What one engine delta of a choice becomes on the wire."""

    content: str = ""
    reasoning: str = ""
    calls: list[R.ToolCall] = field(default_factory=list)
    logprobs: list[LogprobEntry] = field(default_factory=list)
    reasoning_logprobs: list[LogprobEntry] = field(default_factory=list)

    def __iadd__(self, other: "Piece") -> "Piece":
        self.content += other.content
        self.reasoning += other.reasoning
        self.calls += other.calls
        self.logprobs += other.logprobs
        self.reasoning_logprobs += other.reasoning_logprobs
        return self


class ChoiceOutput:
    """One choice's output: reasoning split off (per ``reasoning_format``), then tool calls parsed out of
    the content when the request has tools. ``version`` is the API version: ``reasoning_logprobs``
    exists from version 2 on; in version 1 the reasoning tokens' logprobs stay in ``logprobs``."""

    def __init__(self, plan: ToolPlan, grammars: Grammars | None = None, reasoning: tuple | None = None,
                 version: int = 2):
        check = partial(_strict_args_valid, grammars, plan.strict_args) if grammars and plan.strict_args else None
        self.parser = ToolCallParser(plan.bare_names, check) if plan.parse else None
        self.ncalls = 0
        self.family, self.fmt, inside = reasoning if reasoning else (None, None, False)
        self.thinking = ReasoningParser(self.family, inside) if self.family else None
        self.raw_open = False
        self.split_logprobs = version >= 2

    def _calls(self, calls: list[dict]) -> list[R.ToolCall]:
        out = []
        for c in calls:
            fn = R.FunctionCall(name=c["name"], arguments=c["arguments"])
            out.append(R.ToolCall(function=fn, id=R.new_tool_call_id(), index=self.ncalls))
            self.ncalls += 1
        return out

    def _segments(self, segments: list[tuple[str, str]], logprobs: list[LogprobEntry], was_reasoning: bool) -> Piece:
        p = Piece()
        content = []
        for kind, text in segments:
            if kind == "content":
                content.append(text)
            elif self.fmt == "raw":  # reasoning in the content, with the family's wrapper
                if not self.family.harmony:
                    if kind == "reasoning" and not self.raw_open:
                        content.append(THINK_OPEN)
                        self.raw_open = True
                    elif kind == "close" and self.raw_open:
                        text, self.raw_open = THINK_CLOSE, False
                content.append(text)
            elif kind == "reasoning" and self.fmt in ("parsed", "text_parsed"):
                p.reasoning += text
        p.content = "".join(content)
        if self.fmt == "parsed" and was_reasoning and self.split_logprobs:
            p.reasoning_logprobs = logprobs
        elif not (self.fmt == "hidden" and was_reasoning):
            p.logprobs = logprobs
        return p

    def _tools(self, p: Piece, final: bool) -> Piece:
        if self.parser is not None:
            text, calls = self.parser.feed(p.content)
            if final:
                rest, more = self.parser.finish()
                text, calls = text + rest, calls + more
            p.content, p.calls = text, self._calls(calls)
        return p

    def feed(self, text: str, logprobs: list[LogprobEntry] = ()) -> Piece:
        logprobs = list(logprobs)
        if self.thinking is None:
            return self._tools(Piece(content=text, logprobs=logprobs), False)
        was = self.thinking.reasoning
        segments = self.thinking.feed(text)
        return self._tools(self._segments(segments, logprobs, was or self.thinking.reasoning), False)

    def finish(self, reason: str | None) -> tuple[Piece, str | None]:
        p = Piece()
        if self.thinking is not None:
            p = self._segments(self.thinking.finish(), [], self.thinking.reasoning)
            if self.raw_open:  # thinking cut by the token limit: close the wrapper
                p.content += THINK_CLOSE
                self.raw_open = False
        p = self._tools(p, True)
        if self.ncalls and reason == "stop":
            reason = "tool_calls"
        return p, reason


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
    options = request.app.state.registry.options
    body = await read_body(request)
    if options.accept_reasoning_content:
        body = reasoning_content_as_reasoning(body)
    req = parse_chat_request(body, version=version)
    limit = request.app.state.policy.max_messages
    if len(req.messages) > limit:
        raise bad_request(f"messages: at most {limit} messages are allowed, got {len(req.messages)}", "messages")
    served = find_model(request, req.model)
    tier = resolve_tier(request, req.service_tier, options.dedicated)
    plan = plan_tools(req, served.template.source, served.tool_tokens, version)
    fmt_grammar = response_format_grammar(req.response_format, version)
    params = chat_params(req, served.engine.model.n_vocab, served.defaults)
    check_parallel(served, params)
    served.queue_times.admit(tier)
    prompt, text = await off_loop_if_big(request, render_prompt, served, req, plan, schema_guidance(req.response_format))
    if req.prediction is not None:
        params.prediction = served.engine.tokenize(req.prediction.text, add_special=False, parse_special=False)
    else:
        params.speculate_ngram = options.speculate_ngram
    params.draft_max = options.draft_max
    params.priority, params.queue_threshold = tier.order, tier.queue_threshold
    params.grammar = await compile_grammar(served, plan.grammar or fmt_grammar, "tools" if plan.grammar else "response_format")
    reasoning = None
    family = served.reasoning
    if family is not None:
        fmt = output_format(family, req)
        budget = thinking_budget(family, req, options.reasoning_budgets)
        tokenize = partial(served.engine.tokenize, add_special=False, parse_special=True)
        params.reasoning, params.render_special = engine_spec(family, tokenize, text, thinking_on(req), budget)
        if params.reasoning is not None:
            reasoning = (family, fmt, getattr(params.reasoning, "inside", False))
    rid = R.new_chat_id()
    request.state.stream = bool(req.stream)
    stream = await open_stream(request, served, [prompt], params)
    submit(stream, prompt, params, rid, arrival)
    meta = dict(id=rid, created=int(arrival), model=req.model, system_fingerprint=served.fingerprint,
                **tier.response_fields())
    outs = [ChoiceOutput(plan, served.engine.grammars, reasoning, version) for _ in range(params.n)]
    if req.stream:
        return SSEResponse(_sse(served, stream, meta, outs, bool(req.logprobs)), stream)
    result = await until_done_or_disconnect(request, _collect(served, stream, meta, outs, bool(req.logprobs)))
    if result is None:  # the client went away; the engine request is cancelled
        return Response(status_code=499)
    return Response(R.dump(result), media_type="application/json")


def reasoning_content_as_reasoning(body):
    """``--accept-reasoning-content``: assistant messages' ``reasoning_content`` read as ``reasoning``."""
    if isinstance(body, dict) and isinstance(body.get("messages"), list):
        for m in body["messages"]:
            if isinstance(m, dict) and m.get("role") == "assistant" and "reasoning_content" in m:
                rc = m.pop("reasoning_content")
                m.setdefault("reasoning", rc)
    return body


async def _collect(
    served: ServedModel, stream: EngineStream, meta: dict, outs: list[ChoiceOutput], want_lp: bool
) -> R.ChatCompletion:
    n = len(outs)
    pieces = [Piece() for _ in range(n)]
    finish: list[str | None] = [None] * n
    dones = []
    async for step in steps(stream):
        if step.error is not None:
            raise step.error
        for ev in step.deltas:
            out = outs[ev.index]
            pieces[ev.index] += out.feed(ev.text, ev.logprobs)
            if ev.finish_reason:
                rest, finish[ev.index] = out.finish(ev.finish_reason)
                pieces[ev.index] += rest
        if step.done is not None:
            dones.append(step.done)
    choices = []
    for i, p in enumerate(pieces):
        tool_calls = [c.model_copy(update={"index": None}) for c in p.calls] or None
        choices.append(
            R.Choice(
                finish_reason=finish[i],
                index=i,
                message=R.Message(content=p.content if p.content or not (tool_calls or p.reasoning) else None,
                                  reasoning=p.reasoning or None, tool_calls=tool_calls),
                logprobs=chat_logprobs(served, p.logprobs) if want_lp else None,
                reasoning_logprobs=chat_logprobs(served, p.reasoning_logprobs) if want_lp and p.reasoning_logprobs else None,
            )
        )
    usage, time_info = totals(dones)
    return R.ChatCompletion(choices=choices, usage=usage, time_info=time_info, **meta)


async def _sse(
    served: ServedModel, stream: EngineStream, meta: dict, outs: list[ChoiceOutput], want_lp: bool
) -> AsyncIterator[bytes]:
    def chunk(choices, **extra) -> bytes:
        return R.sse(R.ChatCompletionChunk(choices=choices, **meta, **extra))

    def delta(i: int, p: Piece) -> bytes | None:
        if not (p.content or p.reasoning or p.calls or p.logprobs or p.reasoning_logprobs):
            return None
        content = p.content if p.content or not (p.reasoning or p.calls) else None
        d = R.Delta(content=content, reasoning=p.reasoning or None, tool_calls=p.calls or None)
        lp = chat_logprobs(served, p.logprobs) if want_lp and p.logprobs else None
        rlp = chat_logprobs(served, p.reasoning_logprobs) if want_lp and p.reasoning_logprobs else None
        return chunk([R.ChunkChoice(delta=d, index=i, logprobs=lp, reasoning_logprobs=rlp)])

    try:
        for i in range(len(outs)):
            yield chunk([R.ChunkChoice(delta=R.Delta(role="assistant"), index=i)])
        pending: list[tuple[int, str]] = []  # finished choices not yet announced
        async for step in steps(stream):
            out: list[bytes] = []
            for ev in step.deltas:
                o = outs[ev.index]
                p = o.feed(ev.text, ev.logprobs)
                if ev.finish_reason:
                    rest, reason = o.finish(ev.finish_reason)
                    p += rest
                    pending.append((ev.index, reason))
                c = delta(ev.index, p)
                if c is not None:
                    out.append(c)
            if step.error is not None:
                out.append(error_event(step.error, meta["id"]))
            done = step.done
            if done is None:
                for i, reason in pending:
                    out.append(chunk([R.ChunkChoice(finish_reason=reason, index=i)]))
                pending.clear()
            elif pending:
                last_i, last_reason = pending.pop()
                for i, reason in pending:
                    out.append(chunk([R.ChunkChoice(finish_reason=reason, index=i)]))
                out.append(chunk([R.ChunkChoice(index=last_i)]))
                usage, time_info = totals([done])
                out.append(chunk([R.ChunkChoice(finish_reason=last_reason, index=last_i)], usage=usage,
                                 time_info=time_info))
            if out:
                yield b"".join(out)
    finally:
        stream.close()
