from .chat_completion import ChatCompletion as ChatCompletion, CompletionCreateResponse as CompletionCreateResponse
from .chat_completion import ChatChunkResponse as ChatChunkResponse, ChatCompletionResponse as ChatCompletionResponse
from .parsed import (
    ParsedChatCompletion as ParsedChatCompletion,
    ParsedChoice as ParsedChoice,
    ParsedMessage as ParsedMessage,
    ParsedToolCall as ParsedToolCall,
)
