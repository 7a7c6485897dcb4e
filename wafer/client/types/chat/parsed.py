"""What ``chat.completions.parse`` returns: the completion with each message's content parsed."""

from __future__ import annotations

from typing import Any, Generic, List, Optional, TypeVar

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
    parsed_arguments: Optional[Any] = None


class ParsedMessage(ChatCompletionResponseChoiceMessage, Generic[ContentT]):
    tool_calls: Optional[List[ParsedToolCall]] = None
    #: the content validated against the requested model (None when there is no content)
    parsed: Optional[ContentT] = None


class ParsedChoice(ChatCompletionResponseChoice, Generic[ContentT]):
    message: ParsedMessage[ContentT]


class ParsedChatCompletion(ChatCompletionResponse, Generic[ContentT]):
    choices: List[ParsedChoice[ContentT]]

    @property
    def parsed(self) -> Optional[ContentT]:
        """The first choice's parsed content."""
        return self.choices[0].message.parsed if self.choices else None
