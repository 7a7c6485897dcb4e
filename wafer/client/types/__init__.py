"""Response types, with the names cerebras-cloud-sdk uses."""

from . import chat as chat
from .completion import Completion as Completion, CompletionResponse as CompletionResponse
from .models import ModelListResponse as ModelListResponse, ModelRetrieveResponse as ModelRetrieveResponse
from .shared import ErrorChunkResponse as ErrorChunkResponse, TimeInfo as TimeInfo, Usage as Usage
