"""wafer.client: a Python client with the cerebras-cloud-sdk contract, on httpx.

``from wafer.client import Cerebras`` in place of ``from cerebras.cloud.sdk import Cerebras`` changes
nothing for user code (constructor, env vars, resources, streams, exceptions, retries, timeouts,
warming, ``with_options``, raw and streaming responses); see docs/client.md. Beyond the SDK:
``chat.completions.parse`` (pydantic ``response_format``), ``chat.completions.run_tools`` (a tool loop
over Python functions), ``.rate_limits`` on responses and an opt-in ``RateLimiter``.
"""

from . import types
from ._client import AsyncCerebras, AsyncClient, Cerebras, Client, DefaultAsyncHttpxClient, DefaultHttpxClient
from ._constants import DEFAULT_CONNECTION_LIMITS, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, SDK_COMPAT_VERSION
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
from ._models import BaseModel
from ._ratelimit import RateLimiter, RateLimitInfo, RateLimitWaitError, RateLimitWindow
from ._response import APIResponse, AsyncAPIResponse
from ._schema import StrictSchemaError, pydantic_function_tool, to_strict_json_schema, type_to_response_format
from ._streaming import AsyncStream, Stream
from ._tools import FunctionTool, ToolRun, function_tool
from ._types import NOT_GIVEN, NotGiven, Omit, Timeout, not_given, omit

__version__ = "0.1.0"

__all__ = [
    "types",
    "__version__",
    "Cerebras",
    "AsyncCerebras",
    "Client",
    "AsyncClient",
    "Stream",
    "AsyncStream",
    "APIResponse",
    "AsyncAPIResponse",
    "BaseModel",
    "NOT_GIVEN",
    "NotGiven",
    "not_given",
    "Omit",
    "omit",
    "Timeout",
    "DEFAULT_TIMEOUT",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_CONNECTION_LIMITS",
    "DefaultHttpxClient",
    "DefaultAsyncHttpxClient",
    "SDK_COMPAT_VERSION",
    "CerebrasError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "APIConnectionError",
    "APIResponseValidationError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "UnprocessableEntityError",
    "RateLimitError",
    "InternalServerError",
    "StreamAlreadyConsumed",
    "ContentParseError",
    "LengthFinishReasonError",
    "ToolLoopLimitError",
    "RateLimiter",
    "RateLimitInfo",
    "RateLimitWindow",
    "RateLimitWaitError",
    "StrictSchemaError",
    "to_strict_json_schema",
    "type_to_response_format",
    "pydantic_function_tool",
    "FunctionTool",
    "function_tool",
    "ToolRun",
]
