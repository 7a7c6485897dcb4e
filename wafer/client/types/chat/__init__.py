from .chat_completion import ChatChunkResponse as ChatChunkResponse
from .chat_completion import ChatCompletion as ChatCompletion
from .chat_completion import ChatCompletionResponse as ChatCompletionResponse
from .chat_completion import CompletionCreateResponse as CompletionCreateResponse
from .parsed import (
    ParsedChatCompletion as ParsedChatCompletion,
)
from .parsed import (
    ParsedChoice as ParsedChoice,
)
from .parsed import (
    ParsedMessage as ParsedMessage,
)
from .parsed import (
    ParsedToolCall as ParsedToolCall,
)
