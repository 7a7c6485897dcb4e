"""Text-completion request model (``POST /v1/completions``, spec 2b).

Same conventions as ``wafer.protocol.chat``: unknown keys rejected, exact JSON
types, ``None`` = not sent.  Build it with
``wafer.protocol.parse.parse_completion_request``, which adds the cross-field rules.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import Discriminator, Field, Tag

from .chat import MAX_N, Penalty, SamplingAccessors, Stop, StreamOptions, WireModel

__all__ = ["CompletionRequest", "Prompt", "MAX_TOKEN_ID", "GrammarRoot"]

#: the values of ``grammar_root`` (Cerebras' docs); ``wafer.chat.grammar_root`` defines each rule
GrammarRoot = Literal["root", "fcall", "nofcall", "insidevalue", "value", "object", "array", "string", "number",
                      "funcarray", "func", "ws"]

#: Token ids in a prompt must be ``0 <= id <= MAX_TOKEN_ID`` here; the engine checks the real vocabulary size.
MAX_TOKEN_ID = 2**31 - 1

TokenId = Annotated[int, Field(ge=0, le=MAX_TOKEN_ID)]


def _prompt_tag(v: Any) -> str | None:
    if isinstance(v, str):
        return "~str"
    if isinstance(v, list):
        if not v:
            return "~strings"  # gives "List should have at least 1 item"
        first = v[0]
        if isinstance(first, list):
            return "~token_lists"
        if isinstance(first, int) and not isinstance(first, bool):
            return "~tokens"
        return "~strings"
    return None


Prompt = Annotated[
    Union[
        Annotated[str, Tag("~str")],
        Annotated[list[str], Field(min_length=1), Tag("~strings")],
        Annotated[list[TokenId], Field(min_length=1), Tag("~tokens")],
        Annotated[list[Annotated[list[TokenId], Field(min_length=1)]], Field(min_length=1), Tag("~token_lists")],
    ],
    Discriminator(
        _prompt_tag,
        custom_error_type="prompt_type",
        custom_error_message=(
            "Input should be a string, an array of strings, an array of token ids or an array of token-id arrays"
        ),
    ),
]


class CompletionRequest(SamplingAccessors, WireModel):
    """``POST /v1/completions`` body. Field order follows the SDK's params."""

    model: str
    prompt: Prompt
    best_of: Optional[Annotated[int, Field(ge=0, le=20)]] = None
    echo: Optional[bool] = None
    frequency_penalty: Optional[Penalty] = None
    grammar_root: Optional[GrammarRoot] = None
    logit_bias: Optional[dict[str, float]] = None
    logprobs: Optional[Annotated[int, Field(ge=0, le=20)]] = None
    max_tokens: Optional[Annotated[int, Field(ge=-1)]] = None
    min_tokens: Optional[Annotated[int, Field(ge=-1)]] = None
    n: Optional[Annotated[int, Field(ge=1, le=MAX_N)]] = None
    presence_penalty: Optional[Penalty] = None
    prompt_cache_key: Optional[Annotated[str, Field(max_length=1024)]] = None
    reasoning_format: Optional[Literal["none", "parsed", "text_parsed", "raw", "hidden"]] = None
    return_raw_tokens: Optional[bool] = None
    seed: Optional[Annotated[int, Field(ge=-(2**63), le=2**64 - 1)]] = None
    stop: Optional[Stop] = None
    stream: Optional[bool] = None
    stream_options: Optional[StreamOptions] = None
    suffix: Optional[str] = None
    temperature: Optional[Annotated[float, Field(ge=0, le=2)]] = None
    top_p: Optional[Annotated[float, Field(ge=0, le=1)]] = None
    user: Optional[str] = None

    # ---- convenience accessors ------------------------------------------------------------

    @property
    def prompts(self) -> list[str | list[int]]:
        """One entry per prompt: either text or a list of token ids."""
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if isinstance(p[0], int):
            return [list(p)]  # type: ignore[arg-type]
        return list(p)  # type: ignore[arg-type]

    @property
    def max_new_tokens(self) -> int | None:
        """``max_tokens``; ``None`` when unset or ``-1`` (= as many as fit)."""
        v = self.max_tokens
        return None if v is None or v == -1 else v

    @property
    def min_new_tokens(self) -> int:
        """``min_tokens``; ``0`` when unset, ``-1`` = max sequence length."""
        return 0 if self.min_tokens is None else self.min_tokens

    @property
    def num_candidates(self) -> int:
        """Completions generated per prompt: ``best_of`` if set, else ``n``."""
        return self.best_of if self.best_of else self.num_choices

    @property
    def num_logprobs(self) -> int | None:
        """``None`` = no logprobs; otherwise the number of alternatives per position (0..20)."""
        return self.logprobs
