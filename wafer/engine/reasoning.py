"""Where a sequence is in a reasoning model's output, token by token, for the engine's own needs:
counting reasoning tokens, closing the thinking segment when its budget is spent (budget forcing),
and applying a grammar only to the answer.

The chat layer builds one of these per sequence from the model family's token ids; the engine feeds
every generated token (forced ones included). Splitting the text into reasoning and content for the
API is the chat layer's job (``wafer.chat.reasoning``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ThinkSpec:
    """``<think> ... </think>`` families (Qwen3, DeepSeek-R1, GLM)."""

    open_id: int | None  # the token that opens thinking when generated first (None: never generated)
    close_id: int
    close_tokens: list[int]  # injected when the budget is spent (starts with close_id)
    inside: bool = False  # the prompt already opened thinking (DeepSeek-R1's template)
    budget: int | None = None  # reasoning tokens before wafer closes the segment itself

    def tracker(self) -> "ThinkTracker":
        return ThinkTracker(self)


@dataclass
class HarmonySpec:
    """gpt-oss Harmony: ``<|channel|>analysis<|message|>...<|end|><|start|>assistant<|channel|>final<|message|>...``.
    Messages in any channel but ``final`` are reasoning."""

    channel_id: int
    message_id: int
    end_ids: frozenset[int]  # <|end|> (and <|call|>) end a message
    final_ids: list[int]  # the tokens of the channel name "final"
    close_tokens: list[int]  # <|end|><|start|>assistant<|channel|>final<|message|>
    budget: int | None = None

    def tracker(self) -> "HarmonyTracker":
        return HarmonyTracker(self)


@dataclass
class ThinkTracker:
    spec: ThinkSpec
    reasoning: bool = False  # inside the thinking segment now
    content: bool = False  # the answer has started (a grammar applies from here)
    tokens: int = 0  # reasoning tokens so far (the tags included)
    started: bool = False

    def __post_init__(self) -> None:
        self.reasoning = self.spec.inside

    @property
    def may_open(self) -> bool:
        """The next token may open thinking (it must stay allowed under a grammar)."""
        return not self.started and not self.reasoning and self.spec.open_id is not None

    def feed(self, token: int) -> None:
        first = not self.started
        self.started = True
        if self.reasoning:
            self.tokens += 1
            if token == self.spec.close_id:
                self.reasoning, self.content = False, True
        elif first and token == self.spec.open_id:
            self.reasoning = True
            self.tokens += 1
        else:
            self.content = True

    def closing(self) -> list[int] | None:
        """Tokens to inject now (the budget is spent), or None."""
        b = self.spec.budget
        if self.reasoning and b is not None and self.tokens >= b:
            return list(self.spec.close_tokens)
        return None


@dataclass
class HarmonyTracker:
    """Reasoning tokens are those of non-final messages: their header (``<|channel|>NAME<|message|>``),
    body and ``<|end|>``; the final message's header is neither reasoning nor content."""

    spec: HarmonySpec
    state: str = "header"  # header | channel | reasoning | content
    channel: list[int] = field(default_factory=list)
    tokens: int = 0
    may_open = False

    @property
    def reasoning(self) -> bool:
        return self.state == "reasoning"

    @property
    def content(self) -> bool:
        return self.state == "content"

    def feed(self, token: int) -> None:
        s = self.spec
        if self.state == "header":
            if token == s.channel_id:
                self.state, self.channel = "channel", []
        elif self.state == "channel":
            if token != s.message_id:
                self.channel.append(token)
            elif self.channel == s.final_ids:
                self.state = "content"
            else:
                self.state = "reasoning"
                self.tokens += len(self.channel) + 2
        elif self.state == "reasoning":
            self.tokens += 1
            if token in s.end_ids:
                self.state = "header"

    def closing(self) -> list[int] | None:
        b = self.spec.budget
        if self.state == "reasoning" and b is not None and self.tokens >= b:
            return list(self.spec.close_tokens)
        return None
