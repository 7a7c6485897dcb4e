"""Response types, with the names cerebras-cloud-sdk uses."""

from . import chat as chat
from .completion import Completion as Completion
from .completion import CompletionResponse as CompletionResponse
from .models import ModelListResponse as ModelListResponse
from .models import ModelRetrieveResponse as ModelRetrieveResponse
from .shared import ErrorChunkResponse as ErrorChunkResponse
from .shared import TimeInfo as TimeInfo
from .shared import Usage as Usage
