"""Reasoning models: family detection, the request's reasoning parameters mapped per family, and the
incremental parser that splits output text into reasoning and content.

Families (detected from the chat template; the tags must be single tokens of the vocabulary):

| family | how thinking shows | `reasoning_format: none` means |
|---|---|---|
| `gpt_oss` (template has `<|channel|>`) | Harmony: `<|channel|>analysis<|message|>...<|end|>` then the `final` channel | `text_parsed` |
| `glm` (template has `[gMASK]` and `<think>`) | `<think>...</think>`; the template inserts `<think></think>` when thinking is off | `text_parsed` |
| `deepseek_r1` (template has `｜Assistant｜` and `<think>`) | the template opens `<think>`, the model writes only `</think>` | `raw` |
| `qwen3` (any other template with `<think>`) | the model writes `<think>`, or the template writes an empty block when thinking is off | `raw` (`hidden` with a JSON `response_format`) |

Cerebras documents the defaults of Qwen3, GLM and gpt-oss; DeepSeek-R1's is wafer's choice (as Qwen3).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.reasoning import HarmonySpec, ThinkSpec
from ..protocol.errors import bad_request

OPEN, CLOSE = "<think>", "</think>"
HARMONY_MARKERS = ("<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|call|>", "<|constrain|>")
HARMONY_FINAL = "<|end|><|start|>assistant<|channel|>final<|message|>"
EFFORT_BUDGETS = {"none": 0, "low": 512, "medium": 2048, "high": 8192}  # thinking tokens (--reasoning-budget)


@dataclass(frozen=True)
class Family:
    name: str
    default_format: str  # what reasoning_format "none" (or absent) means
    harmony: bool = False
    can_disable: bool = True  # the template can switch thinking off (else wafer closes it at once)


QWEN3 = Family("qwen3", "raw")
DEEPSEEK_R1 = Family("deepseek_r1", "raw", can_disable=False)
GLM = Family("glm", "text_parsed")
GPT_OSS = Family("gpt_oss", "text_parsed", harmony=True, can_disable=False)


def detect_family(template_source: str) -> Family | None:
    if "<|channel|>" in template_source:
        return GPT_OSS
    if OPEN not in template_source:
        return None
    if "[gMASK]" in template_source:
        return GLM
    if "｜Assistant｜" in template_source:
        return DEEPSEEK_R1
    return QWEN3


def json_response(req) -> bool:
    return getattr(req.response_format, "type", None) in ("json_object", "json_schema")


def output_format(family: Family, req) -> str:
    """The effective reasoning_format of a request."""
    fmt = req.reasoning_format or "none"
    if fmt == "raw" and json_response(req):
        raise bad_request(
            '"reasoning_format": "raw" is incompatible with a JSON "response_format"; use "parsed" or "hidden"',
            param="reasoning_format",
        )
    if fmt == "none":
        fmt = family.default_format
        if fmt == "raw" and json_response(req):
            fmt = "hidden"
    return fmt


def thinking_on(req) -> bool:
    return not req.disable_reasoning and req.reasoning_effort != "none"


def template_kwargs(family: Family, req) -> dict:
    """Template variables that carry the request's reasoning switches (Hugging Face conventions)."""
    kw: dict = {"enable_thinking": thinking_on(req)}
    kw["clear_thinking"] = req.clear_thinking is not False
    if family is GPT_OSS:
        effort = req.reasoning_effort
        kw["reasoning_effort"] = effort if effort in ("low", "medium", "high") else ("low" if effort == "none" else "medium")
    return kw


def thinking_budget(family: Family, req, budgets: dict[str, int]) -> int | None:
    """Reasoning tokens before wafer closes the thinking itself (None: no limit)."""
    if not thinking_on(req) and not family.can_disable:
        return 0
    effort = req.reasoning_effort
    return budgets.get(effort) if effort else None


def clear_earlier_thinking(messages: list[dict], clear: bool) -> list[dict]:
    """With ``clear`` (the default), assistant turns before the last user message lose their reasoning."""
    if not clear:
        return messages
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
    out = []
    for i, m in enumerate(messages):
        if i < last_user and m["role"] == "assistant" and "reasoning" in m:
            m = {k: v for k, v in m.items() if k not in ("reasoning", "reasoning_content", "thinking")}
        out.append(m)
    return out


def engine_spec(family: Family, tokenize, prompt_text: str, on: bool, budget: int | None):
    """What the engine needs to follow a sequence's reasoning (ids from ``tokenize(text)``), and the
    control tokens to render in the output text; None when the vocabulary lacks the family's tokens."""

    def one(text: str) -> int | None:
        ids = tokenize(text)
        return ids[0] if len(ids) == 1 else None

    if family.harmony:
        ids = {m: one(m) for m in HARMONY_MARKERS + ("<|return|>",)}
        if None in ids.values():
            return None, frozenset()
        spec = HarmonySpec(
            channel_id=ids["<|channel|>"],
            message_id=ids["<|message|>"],
            end_ids=frozenset({ids["<|end|>"], ids["<|call|>"]}),
            final_ids=tokenize("final"),
            close_tokens=tokenize(HARMONY_FINAL),
            budget=budget,
        )
        return spec, frozenset(ids[m] for m in HARMONY_MARKERS)
    open_id, close_id = one(OPEN), one(CLOSE)
    if open_id is None or close_id is None:
        return None, frozenset()
    inside = prompt_text.rfind(OPEN) > prompt_text.rfind(CLOSE)
    spec = ThinkSpec(
        open_id=open_id if on and not inside else None,
        close_id=close_id,
        close_tokens=tokenize(CLOSE + "\n\n"),
        inside=inside,
        budget=budget,
    )
    return spec, frozenset()


# -- parsing ---------------------------------------------------------------------------------
def _held(text: str, markers: tuple[str, ...]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of one of ``markers``."""
    best = 0
    for m in markers:
        for k in range(min(len(text), len(m) - 1), best, -1):
            if m.startswith(text[-k:]):
                best = k
                break
    return best


class ReasoningParser:
    """Splits a choice's streamed text into ``("reasoning" | "content", text)`` segments.

    Think families: with ``inside`` the text starts in the thinking segment (the prompt opened it);
    otherwise a ``<think>`` at the very start (after whitespace) opens it. ``</think>`` closes it; what
    follows is content, ``<think>`` included. Harmony: messages of the ``final`` channel are content,
    every other channel is reasoning; the markers are dropped. Text that may be the start of a tag is
    held back until it is decided; a thinking segment cut by the token limit stays reasoning.
    """

    def __init__(self, family: Family, inside: bool):
        self.harmony = family.harmony
        self.state = "header" if self.harmony else ("reasoning" if inside else "start")
        self.buf = ""
        self.channel = ""

    @property
    def reasoning(self) -> bool:
        return self.state in ("reasoning", "channel", "header") if self.harmony else self.state == "reasoning"

    def feed(self, text: str) -> list[tuple[str, str]]:
        self.buf += text
        return self._harmony(False) if self.harmony else self._think(False)

    def finish(self) -> list[tuple[str, str]]:
        return self._harmony(True) if self.harmony else self._think(True)

    def _think(self, final: bool) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        while True:
            if self.state == "start":
                s = self.buf.lstrip()
                if s.startswith(OPEN):
                    self.buf, self.state = s[len(OPEN) :], "reasoning"
                    continue
                if (OPEN.startswith(s) or not s) and not final:
                    return out  # may still open
                self.state = "content"
            if self.state == "reasoning":
                i = self.buf.find(CLOSE)
                if i >= 0:
                    out.append(("reasoning", self.buf[:i]))
                    self.buf, self.state = self.buf[i + len(CLOSE) :], "lead"
                    out.append(("close", ""))
                    continue
                keep = 0 if final else _held(self.buf, (CLOSE,))
                out.append(("reasoning", self.buf[: len(self.buf) - keep]))
                self.buf = self.buf[len(self.buf) - keep :]
                return [(k, t) for k, t in out if t or k == "close"]
            if self.state == "lead":  # whitespace between the thinking and the answer is neither
                self.buf = self.buf.lstrip()
                if not self.buf:
                    return [(k, t) for k, t in out if t or k == "close"]
                self.state = "content"
            out.append(("content", self.buf))
            self.buf = ""
            return [(k, t) for k, t in out if t or k == "close"]

    def _harmony(self, final: bool) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        while True:
            if self.state in ("header", "channel"):
                i, j = self.buf.find("<|channel|>"), self.buf.find("<|message|>")
                if self.state == "header" and i >= 0:
                    self.buf, self.state, self.channel = self.buf[i + len("<|channel|>") :], "channel", ""
                    continue
                if self.state == "channel" and j >= 0:
                    self.channel = self.buf[:j].split("<|")[0].strip()
                    self.buf = self.buf[j + len("<|message|>") :]
                    self.state = "content" if self.channel == "final" else "reasoning"
                    continue
                return out
            kind = "content" if self.state == "content" else "reasoning"
            ends = [k for k in (self.buf.find("<|end|>"), self.buf.find("<|call|>")) if k >= 0]
            if ends:
                e = min(ends)
                out.append((kind, self.buf[:e]))
                marker = "<|end|>" if self.buf.startswith("<|end|>", e) else "<|call|>"
                self.buf, self.state = self.buf[e + len(marker) :], "header"
                if kind == "reasoning":
                    out.append(("close", ""))
                continue
            keep = 0 if final else _held(self.buf, HARMONY_MARKERS)
            out.append((kind, self.buf[: len(self.buf) - keep]))
            self.buf = self.buf[len(self.buf) - keep :]
            return [(k, t) for k, t in out if t or k == "close"]
