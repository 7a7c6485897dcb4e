"""wafer.client: a Python client with the cerebras-cloud-sdk contract, on httpx.

``from wafer.client import Cerebras`` in place of ``from cerebras.cloud.sdk import Cerebras`` changes
nothing for user code (constructor, env vars, resources, streams, exceptions, retries, timeouts,
warming, ``with_options``, raw and streaming responses); see docs/client.md. Beyond the SDK:
``chat.completions.parse`` (pydantic ``response_format``), ``chat.completions.run_tools`` (a tool loop
over Python functions), ``.rate_limits`` on responses and an opt-in ``RateLimiter``.
"""

from . import types
from ._client import (
    AsyncCerebras,
    AsyncClient,
    Cerebras,
    Client,
    DefaultAsyncHttpxClient,
    DefaultHttpxClient,
)
from ._constants import (
    DEFAULT_CONNECTION_LIMITS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    SDK_COMPAT_VERSION,
)
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CerebrasError,
    ConflictError,
    ContentParseError,
    InternalServerError,
    LengthFinishReasonError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    StreamAlreadyConsumed,
    ToolLoopLimitError,
    UnprocessableEntityError,
)
from ._logs import setup_logging
from ._models import BaseModel
from ._ratelimit import RateLimiter, RateLimitInfo, RateLimitWaitError, RateLimitWindow
from ._response import APIResponse, AsyncAPIResponse
from ._schema import (
    StrictSchemaError,
    pydantic_function_tool,
    to_strict_json_schema,
    type_to_response_format,
)
from ._streaming import AsyncStream, Stream
from ._tools import FunctionTool, ToolRun, function_tool
from ._types import NOT_GIVEN, NotGiven, Omit, Timeout, not_given, omit

__version__ = "0.1.0"

setup_logging()

__all__ = [
    "DEFAULT_CONNECTION_LIMITS",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "NOT_GIVEN",
    "SDK_COMPAT_VERSION",
    "APIConnectionError",
    "APIError",
    "APIResponse",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncAPIResponse",
    "AsyncCerebras",
    "AsyncClient",
    "AsyncStream",
    "AuthenticationError",
    "BadRequestError",
    "BaseModel",
    "Cerebras",
    "CerebrasError",
    "Client",
    "ConflictError",
    "ContentParseError",
    "DefaultAsyncHttpxClient",
    "DefaultHttpxClient",
    "FunctionTool",
    "InternalServerError",
    "LengthFinishReasonError",
    "NotFoundError",
    "NotGiven",
    "Omit",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimitInfo",
    "RateLimitWaitError",
    "RateLimitWindow",
    "RateLimiter",
    "Stream",
    "StreamAlreadyConsumed",
    "StrictSchemaError",
    "Timeout",
    "ToolLoopLimitError",
    "ToolRun",
    "UnprocessableEntityError",
    "__version__",
    "function_tool",
    "not_given",
    "omit",
    "pydantic_function_tool",
    "to_strict_json_schema",
    "type_to_response_format",
    "types",
]
