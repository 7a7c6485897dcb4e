from .chat import AsyncChat, AsyncChatCompletions, Chat, ChatCompletions
from .completions import AsyncCompletions, Completions
from .models import AsyncModels, Models

__all__ = ["Chat", "AsyncChat", "ChatCompletions", "AsyncChatCompletions", "Completions", "AsyncCompletions", "Models", "AsyncModels"]
