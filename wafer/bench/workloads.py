"""Seeded, reproducible workloads: each yields request scripts that every system receives alike.

A request is an endpoint path plus an OpenAI-compatible JSON body (no ``model``: the system sets
it). A script is what one client issues back to back: one request, or for ``multi-turn`` the turns
of one conversation, whose earlier assistant replies are seeded synthetic text (not the model's),
so the prompts do not depend on what a system generated. Scripts of a level derive from
(seed, workload, level), so levels do not hit each other's prompt caches and reruns are identical.
Prompt sizes are set in words from a token estimate (no tokenizer: ``--url`` has none); the
systems' own token counts are measured from their usage chunks.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

WORKLOADS = ("chat", "shared-prefix", "multi-turn", "json-schema", "code-edit")
TOKENS_PER_WORD = 1.2  # English prose on the catalogue models' tokenizers
CHARS_PER_CODE_TOKEN = 3.5

DESCRIPTIONS = {
    "chat": "one user message of ~{prompt_len} tokens, exactly {output_len} output tokens",
    "shared-prefix": "one ~{prefix_len}-token system prompt shared by every request of a level + a short distinct "
                     "question, exactly {short_output} output tokens (prompt cache)",
    "multi-turn": "{turns}-turn conversations (synthetic assistant replies), exactly {short_output} output tokens "
                  "per turn",
    "json-schema": "strict response_format json_schema (small object), at most {json_max} output tokens",
    "code-edit": "rename a function in a ~{code_lines}-line Python file, whole file out, prediction = the original",
}


@dataclass(frozen=True)
class Request:
    """One request: ``fixed_output`` asks systems that can force it for exactly that many tokens."""

    body: dict
    path: str = "/chat/completions"
    fixed_output: int | None = None

    def without(self, *fields: str) -> "Request":
        return replace(self, body={k: v for k, v in self.body.items() if k not in fields})


Script = list[Request]


@dataclass(frozen=True)
class WorkloadConfig:
    prompt_len: int = 256
    output_len: int = 64
    prefix_len: int = 1000
    short_output: int = 32
    turns: int = 3
    json_max: int = 128
    code_lines: int = 60

    def describe(self, workload: str) -> str:
        return DESCRIPTIONS[workload].format(**self.__dict__)


@lru_cache(maxsize=1)
def heldout_words() -> tuple[str, ...]:
    return tuple((Path(__file__).resolve().parents[1] / "models" / "data" / "heldout.txt").read_text().split())


def passage(rng: random.Random, n_tokens: int) -> str:
    """About ``n_tokens`` tokens of English: runs of 20-60 words from random places of the held-out text."""
    words = heldout_words()
    n = max(1, round(n_tokens / TOKENS_PER_WORD))
    out: list[str] = []
    while len(out) < n:
        start, run = rng.randrange(len(words)), rng.randint(20, 60)
        out.extend(words[(start + i) % len(words)] for i in range(min(run, n - len(out))))
    return " ".join(out)


def estimate_tokens(text: str, code: bool = False) -> int:
    """A tokenizer-free estimate: from words for prose, from characters for code."""
    return math.ceil(len(text) / CHARS_PER_CODE_TOKEN if code else len(text.split()) * TOKENS_PER_WORD)


def _body(messages: list[dict], max_tokens: int, **extra) -> dict:
    return {"messages": messages, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}, **extra}


def _chat(rng: random.Random, cfg: WorkloadConfig) -> Script:
    text = passage(rng, cfg.prompt_len - 40)  # the rest: instruction and chat template
    msg = f"{text}\n\nContinue this story in the same style."
    return [Request(_body([{"role": "user", "content": msg}], cfg.output_len), fixed_output=cfg.output_len)]


def _question(rng: random.Random) -> str:
    return f"Question {rng.randrange(10**6)}: what does the passage say about {passage(rng, 12)}?"


def _shared_prefix(rng: random.Random, cfg: WorkloadConfig, system: str) -> Script:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": _question(rng)}]
    return [Request(_body(messages, cfg.short_output), fixed_output=cfg.short_output)]


def _multi_turn(rng: random.Random, cfg: WorkloadConfig) -> Script:
    messages = [{"role": "system", "content": "You are a careful reader. Answer briefly."},
                {"role": "user", "content": f"{passage(rng, 200)}\n\nSummarize the first sentence."}]
    script = []
    for turn in range(cfg.turns):
        if turn:
            messages += [{"role": "assistant", "content": passage(rng, cfg.short_output)},
                         {"role": "user", "content": f"Turn {turn + 1}. {_question(rng)}"}]
        script.append(Request(_body(list(messages), cfg.short_output), fixed_output=cfg.short_output))
    return script


JSON_SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 60},
        "main_character": {"type": "string", "maxLength": 40},
        "place": {"type": "string", "maxLength": 40},
        "year": {"type": "integer"},
        "mood": {"type": "string", "enum": ["calm", "tense", "cheerful", "sad"]},
    },
    "required": ["title", "main_character", "place", "year", "mood"],
    "additionalProperties": False,
}


def _json_schema(rng: random.Random, cfg: WorkloadConfig) -> Script:
    msg = (f"{passage(rng, 100)}\n\nDescribe this passage as JSON: a title, its main character, the place, "
           "a plausible year and the mood.")
    fmt = {"type": "json_schema", "json_schema": {"name": "passage", "strict": True, "schema": JSON_SCHEMA}}
    return [Request(_body([{"role": "user", "content": msg}], cfg.json_max, response_format=fmt))]


_VERBS = ("load", "parse", "compute", "merge", "render", "scale", "filter", "count", "split", "format", "check",
          "build", "reduce", "apply", "collect", "update")
_NOUNS = ("record", "total", "window", "buffer", "price", "token", "header", "score", "batch", "entry", "column",
          "weight", "label", "offset", "sample", "range")
_FUNCTION = '''def {name}({a}, {b}=None):
    """{doc}."""
    result = []
    for item in {a}:
        if item {op} {const}:
            result.append(item * {k} + {c})
    if {b}:
        result = {callee}(result)
    return result
'''


def code_file(rng: random.Random, lines: int) -> tuple[str, list[str]]:
    """A Python module of about ``lines`` lines and its function names (each calls the previous one)."""
    names: list[str] = []
    while len(names) < max(2, lines // 10):
        n = f"{rng.choice(_VERBS)}_{rng.choice(_NOUNS)}"
        if n not in names:
            names.append(n)
    parts = ['"""Helpers generated for the benchmark."""\n\nimport math\n']
    for i, name in enumerate(names):
        parts.append(_FUNCTION.format(
            name=name, a=rng.choice(("values", "items", "rows")), b=rng.choice(("strict", "nested", "verbose")),
            doc=passage(rng, 10).capitalize().rstrip(".,;"), op=rng.choice(("<", ">", "!=", ">=")),
            const=rng.randint(0, 99), k=rng.randint(2, 9), c=rng.randint(1, 50),
            callee=names[i - 1] if i else "sorted"))
    parts.append(f"\ndef main():\n    print({names[-1]}(range(10), True), math.pi)\n")
    return "\n".join(parts), names


def _code_edit(rng: random.Random, cfg: WorkloadConfig) -> Script:
    code, names = code_file(rng, cfg.code_lines)
    old = rng.choice(names[:-1])
    new = f"{rng.choice(_VERBS)}_{rng.choice(_NOUNS)}_v{rng.randint(2, 9)}"
    msg = (f"Rename the function `{old}` to `{new}` everywhere (definition and calls). Output the whole file, "
           f"only the code, no explanation.\n\n```python\n{code}```")
    max_tokens = math.ceil(1.3 * estimate_tokens(code, code=True))
    return [Request(_body([{"role": "user", "content": msg}], max_tokens,
                          prediction={"type": "content", "content": code}))]


def generate(workload: str, n: int, seed: int, level: int | str,
             cfg: WorkloadConfig = WorkloadConfig()) -> list[Script]:
    """``n`` scripts of ``workload`` for one level (any hashable tag: a concurrency, or "probe")."""
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r} (choose from {', '.join(WORKLOADS)})")
    rng = random.Random(f"{seed}:{workload}:{level}")
    if workload == "shared-prefix":
        system = f"Reference document {rng.randrange(10**6)}. Answer from it.\n\n{passage(rng, cfg.prefix_len)}"
        return [_shared_prefix(rng, cfg, system) for _ in range(n)]
    make = {"chat": _chat, "multi-turn": _multi_turn, "json-schema": _json_schema, "code-edit": _code_edit}[workload]
    return [make(rng, cfg) for _ in range(n)]


def probe(workload: str, seed: int, cfg: WorkloadConfig = WorkloadConfig(), max_tokens: int = 8) -> Request:
    """A short request shaped like ``workload`` (its own prompt): feature check and warm-up."""
    req = generate(workload, 1, seed, "probe", cfg)[0][0]
    return Request({**req.body, "max_tokens": max_tokens}, req.path, max_tokens if req.fixed_output else None)


def context_needed(scripts: list[Script]) -> int:
    """Estimated prompt + output tokens of the longest request (for sizing servers' per-slot context)."""
    texts = [(" ".join(m["content"] for m in r.body["messages"]), r.body["max_tokens"]) for s in scripts for r in s]
    return max((max(estimate_tokens(t), estimate_tokens(t, code=True)) + n for t, n in texts), default=0)

