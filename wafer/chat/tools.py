"""Tool calling: prompts, grammars and the output parser.

Format. wafer uses the Hermes/Qwen convention for every model::

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

Templates that know it (their source mentions ``<tool_call>``: Qwen2.5/Qwen3, Hermes) render the
tools and the conversation themselves. For any other template (e.g. SmolLM2's, which has no tool
support) wafer's fallback applies: a system-prompt section lists the functions and the format,
assistant tool calls are rendered in that format and tool results as user turns wrapped in
``<tool_response>`` (docs/tools.md).

Constraints (llguidance Lark grammars, see ``tool_grammar``):
- ``tool_choice: "auto"``: free text; once the model opens ``<tool_call>`` (the lazy trigger), the
  call is constrained: a known function name, then arguments valid for that function's schema when
  it is ``strict`` (its parameters as a lenient guide otherwise). Without strict tools and with
  parallel calls allowed, auto is unconstrained and the output is only parsed; an output that is just
  one bare JSON call of a known tool also counts as a call (``ToolCallParser``).
- ``"required"`` / ``{"type": "function", "function": {"name": ...}}``: constrained from the first
  token to one or more calls (of that function).
- ``parallel_tool_calls: false``: at most one call, after which the output ends.
- ``"none"``: tools are not shown to the model and nothing is parsed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..protocol.schema_rules import check_strict_schema
from .messages import add_system_text
from .structured import ANY_OBJECT, JSON_LAYOUT, json_grammar

OPEN, CLOSE = "<tool_call>", "</tool_call>"
NO_ARGUMENTS = {"type": "object", "properties": {}, "required": [], "additionalProperties": False}


@dataclass
class ToolPlan:
    """How one request uses its tools."""

    tools: list[dict] | None  # OpenAI-style tool dicts for the template; None: tools are not shown
    native: bool  # the model's template renders tools; False: wafer's fallback prompt
    grammar: str | None  # constrains the output; None: free text, parsed afterwards
    parse: bool  # tool calls are parsed out of the output
    bare_names: set[str] | None = None  # tools a bare JSON call may name (ToolCallParser)
    strict_args: dict[str, dict] | None = None  # argument schemas of the strict tools


def supports_tool_calls(template_source: str) -> bool:
    return OPEN in template_source


def _choice(req) -> tuple[str, str | None]:
    """("none" | "auto" | "required", forced function name)."""
    tc = req.tool_choice
    if tc is None:
        return ("auto" if req.tools else "none"), None
    if isinstance(tc, str):
        return tc, None
    return "required", tc.function.name


def _arguments_schema(tool, i: int, version: int) -> dict:
    """The schema a call's arguments are constrained to: the exact parameters of a strict tool
    (checked by Cerebras' rules); for other tools the parameters as a lenient guide (keywords
    llguidance does not implement are ignored), or any JSON object when they do not compile."""
    fn = tool.function
    if not fn.strict:
        if not isinstance(fn.parameters, dict):
            return ANY_OBJECT
        import llguidance

        lenient = {**fn.parameters, "x-guidance": {**JSON_LAYOUT, "lenient": True}}
        try:
            ok = not llguidance.LLMatcher.validate_grammar(json_grammar(lenient))
        except ValueError:
            ok = False
        return lenient if ok else ANY_OBJECT
    if fn.parameters is None:
        return NO_ARGUMENTS
    where = f"tools.{i}.function.parameters"
    return check_strict_schema(fn.parameters, version=version, param="tools", where=where)


def tool_grammar(bodies: list[tuple[str, dict]], mode: str, parallel: bool, special: dict[str, int] | None) -> str:
    """Lark grammar for tool calls. ``bodies``: (function name, arguments schema); ``special``: token ids
    of ``<tool_call>``/``</tool_call>`` when they are single special tokens, else None (plain text)."""

    def lit(s: str) -> str:
        return json.dumps(s)

    if special:
        open_, close = f"<[{special[OPEN]}]>", f"<[{special[CLOSE]}]>"
    else:
        open_, close = lit(OPEN), lit(CLOSE)
    lines = ["%llguidance {}"]
    alts = []
    for k, (name, schema) in enumerate(bodies):
        head = lit('\n{"name": ' + json.dumps(name) + ', "arguments": ')
        args = json.dumps({"x-guidance": JSON_LAYOUT, **schema})
        lines.append(f"body_{k}: {head} %json {args} {lit('}' + chr(10))} {close}")
        alts.append(f"body_{k}")
    lines.append(f"body: {' | '.join(alts)}")
    lines.append("TEXT: /(.|\\n)*/")
    if mode == "auto":
        if special:  # the trigger is a token that free text cannot contain
            lines.append(f"call: TEXT {open_} body")
        else:  # the trigger is text: a lazy lexeme ends the free text at its first occurrence
            lines.append(f"trigger[lazy]: TEXT {open_}")
            lines.append("call: trigger body")
        lines.append("start: call* TEXT" if parallel else "start: TEXT | call")
    else:
        lines.append(f"call: {open_} body")
        lines.append('start: call ("\\n" call)* "\\n"?' if parallel else "start: call")
    return "\n".join(lines) + "\n"


def plan_tools(req, template_source: str, special: dict[str, int] | None, version: int) -> ToolPlan:
    """Decide how a request's tools are rendered, constrained and parsed (raises APIError for
    strict schemas that break the rules)."""
    mode, forced = _choice(req)
    if not req.tools or mode == "none":
        return ToolPlan(None, True, None, False)
    tools = [t.model_dump(exclude_none=True, by_alias=True) for t in req.tools]
    native = supports_tool_calls(template_source)
    parallel = req.parallel_tool_calls is not False
    chosen = [(i, t) for i, t in enumerate(req.tools) if forced is None or t.function.name == forced]
    bodies = [(t.function.name, _arguments_schema(t, i, version)) for i, t in chosen]
    strict = any(t.function.strict for _, t in chosen)
    grammar = None
    if mode != "auto" or strict or not parallel:
        grammar = tool_grammar(bodies, mode, parallel, special if native else None)
    # in auto mode a whole output that is a bare JSON call counts as a call (of a strict tool only
    # if its arguments are valid: ``strict``)
    bare = {t.function.name for _, t in chosen} if mode == "auto" else None
    strict_args = {name: schema for (name, schema), (_, t) in zip(bodies, chosen) if t.function.strict}
    return ToolPlan(tools, native, grammar, True, bare, strict_args)


# -- the fallback format for templates without tool support ------------------------------------
def fallback_system_prompt(tools: list[dict]) -> str:
    specs = "\n".join(json.dumps(t.get("function", t), ensure_ascii=False) for t in tools)
    return (
        "You can call functions. These are their names, descriptions and JSON schemas of arguments:\n"
        f"{specs}\n"
        "To call a function, reply with exactly:\n"
        f'{OPEN}\n{{"name": "<function name>", "arguments": {{<arguments as JSON>}}}}\n{CLOSE}\n'
        "Results come back in <tool_response></tool_response> blocks."
    )


def apply_fallback(messages: list[dict], tools: list[dict] | None) -> list[dict]:
    """Template messages with tool calls and tool results written out as text, and the tools (when
    shown) described in the system prompt."""
    out: list[dict] = []
    for m in messages:
        role = m["role"]
        if role == "assistant" and m.get("tool_calls"):
            calls = [
                f'{OPEN}\n{json.dumps({"name": c["function"]["name"], "arguments": c["function"]["arguments"]}, ensure_ascii=False)}\n{CLOSE}'
                for c in m["tool_calls"]
            ]
            text = "\n".join(([m["content"]] if m.get("content") else []) + calls)
            out.append({"role": "assistant", "content": text})
        elif role == "tool":
            out.append({"role": "user", "content": f"<tool_response>\n{m['content']}\n</tool_response>"})
        else:
            out.append(m)
    return add_system_text(out, fallback_system_prompt(tools)) if tools else out


# -- parsing ---------------------------------------------------------------------------------
def parse_call(raw: str) -> dict | None:
    """``{"name": ..., "arguments": ...}`` -> {"name", "arguments" (a JSON string)}, or None."""
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return None
    if not isinstance(args, dict):
        return None
    return {"name": obj["name"], "arguments": json.dumps(args, ensure_ascii=False)}


class ToolCallParser:
    """Splits streamed output text into content and complete tool calls.

    Text that may be the start of ``<tool_call>`` is held back until it is decided; a call is
    returned once its closing tag arrives (Cerebras streams each call whole, in one delta).
    Whitespace around calls is not content.

    With ``names`` (``tool_choice: "auto"``), an output that is nothing but one call written as a bare
    JSON object, optionally in a code fence (``{"name": "get_weather", "arguments": {...}}``: small
    models often answer so instead of using ``<tool_call>``), is a call of that tool too, provided
    ``check`` accepts its arguments (the server checks strict tools' schemas). Output that starts
    like one is held back until it is decided.
    """

    def __init__(self, names: set[str] | None = None, check=None) -> None:
        self.names = names
        self.check = check  # check(call) -> bool: whether a bare call's arguments are acceptable
        self.head: str | None = "" if names else None  # output held while it may be a bare call
        self.buf = ""
        self.in_call = False
        self.ws = ""  # whitespace held back: content only if more content follows
        self.after_call = False  # the next content starts right after a call: strip its leading space
        self.ncalls = 0

    def feed(self, text: str) -> tuple[str, list[dict]]:
        if self.head is not None:
            self.head += text
            if _bare_call_prefix(self.head) != "no":
                return "", []
            text, self.head = self.head, None
        return self._feed(text)

    def _feed(self, text: str) -> tuple[str, list[dict]]:
        self.buf += text
        out: list[str] = []
        calls: list[dict] = []
        while True:
            if not self.in_call:
                i = self.buf.find(OPEN)
                if i < 0:
                    keep = _partial_suffix(self.buf, OPEN)
                    out.append(self._emit(self.buf[: len(self.buf) - keep], []))
                    self.buf = self.buf[len(self.buf) - keep :]
                    break
                out.append(self._emit(self.buf[:i], []))
                self.buf = self.buf[i + len(OPEN) :]
                self.in_call = True
                continue
            j = self.buf.find(CLOSE)
            if j < 0:
                break
            raw, self.buf, self.in_call = self.buf[:j], self.buf[j + len(CLOSE) :], False
            call = parse_call(raw)
            if call is None:
                out.append(self._emit(OPEN + raw + CLOSE, []))
            else:
                out.append(self._emit("", [call]))
                calls.append(call)
        return "".join(out), calls

    def finish(self) -> tuple[str, list[dict]]:
        """The rest at the end of the output (a call cut before its closing tag is parsed if whole)."""
        if self.head is not None:
            head, self.head = self.head, None
            call = parse_bare_call(head, self.names or set())
            if call is not None and (self.check is None or self.check(call)):
                self.ncalls += 1
                return "", [call]
            text, calls = self._feed(head)
            rest, more = self.finish()
            return text + rest, calls + more
        rest, self.buf = self.buf, ""
        calls: list[dict] = []
        if self.in_call:
            call = parse_call(rest)
            if call is not None:
                calls.append(call)
                rest = ""
            else:
                rest = OPEN + rest
        text = self._emit(rest, calls)
        if not self.ncalls and self.ws:  # trailing whitespace of a plain answer is content
            text, self.ws = text + self.ws, ""
        return text, calls

    def _emit(self, text: str, calls: list[dict]) -> str:
        """Content to send now. Trailing whitespace is held back: it is content only if more content
        follows, never next to a call."""
        out = ""
        if text.strip():
            body = text.lstrip() if self.after_call else self.ws + text
            out = body.rstrip()
            self.ws, self.after_call = body[len(out) :], False
        else:
            self.ws += text
        if calls:
            self.ncalls += len(calls)
            self.ws, self.after_call = "", True
        return out


FENCES = ("```json", "```")


def _bare_call_prefix(text: str) -> str:
    """Whether ``text`` starts like a bare JSON call: "yes", "maybe" (too short to tell) or "no"."""
    s = text.lstrip()
    for fence in FENCES:
        if fence.startswith(s):
            return "maybe"
        if s.startswith(fence):
            s = s[len(fence) :].lstrip()
            break
    if not s:
        return "maybe"
    if s[0] != "{":
        return "no"
    s = s[1:].lstrip()
    key = '"name"'
    if key.startswith(s):
        return "maybe"
    return "yes" if s.startswith(key) else "no"


def parse_bare_call(text: str, names: set[str]) -> dict | None:
    """A whole output that is one call of a known tool as a JSON object (fenced or not), or None."""
    s = text.strip()
    for fence in FENCES:
        if s.startswith(fence):
            s = s[len(fence) :]
            break
    s = s.strip()
    if s.endswith("```"):
        s = s[:-3].strip()
    call = parse_call(s)
    return call if call is not None and call["name"] in names else None


def _partial_suffix(text: str, marker: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``marker``."""
    for k in range(min(len(text), len(marker) - 1), 0, -1):
        if marker.startswith(text[-k:]):
            return k
    return 0
