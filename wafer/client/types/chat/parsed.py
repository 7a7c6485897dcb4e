"""What ``chat.completions.parse`` returns: the completion with each message's content parsed."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from .chat_completion import (
    ChatCompletionResponse,
    ChatCompletionResponseChoice,
    ChatCompletionResponseChoiceMessage,
    ToolCall,
)

__all__ = ["ParsedChatCompletion", "ParsedChoice", "ParsedMessage", "ParsedToolCall"]

ContentT = TypeVar("ContentT")


class ParsedToolCall(ToolCall):
    #: the arguments validated against the tool's pydantic model (None for tools given as plain dicts)
    parsed_arguments: Any | None = None


class ParsedMessage(ChatCompletionResponseChoiceMessage, Generic[ContentT]):
    tool_calls: list[ParsedToolCall] | None = None
    #: the content validated against the requested model (None when there is no content)
    parsed: ContentT | None = None


class ParsedChoice(ChatCompletionResponseChoice, Generic[ContentT]):
    message: ParsedMessage[ContentT]


class ParsedChatCompletion(ChatCompletionResponse, Generic[ContentT]):
    choices: list[ParsedChoice[ContentT]]

    @property
    def parsed(self) -> ContentT | None:
        """The first choice's parsed content."""
        return self.choices[0].message.parsed if self.choices else None
