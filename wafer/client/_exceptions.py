"""Exception hierarchy and status mapping of cerebras-cloud-sdk (spec 4.2).

```
CerebrasError
└── APIError                      .message .request .body
    ├── APIStatusError            .response .status_code   (400/401/403/404/409/422/429/>=500 subclasses)
    ├── APIConnectionError
    │   └── APITimeoutError
    └── APIResponseValidationError
```
The status of a body that carries an int ``status_code`` (a mid-stream error event) wins over the HTTP
status, and ``.body`` is the inner ``error`` object when there is one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "CerebrasError",
    "ConflictError",
    "ContentParseError",
    "InternalServerError",
    "LengthFinishReasonError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "StreamAlreadyConsumed",
    "ToolLoopLimitError",
    "UnprocessableEntityError",
    "make_status_error",
    "status_error_from_response",
]


class CerebrasError(Exception):
    pass


class APIError(CerebrasError):
    message: str
    request: httpx.Request
    body: object | None

    def __init__(self, message: str, request: httpx.Request, *, body: object | None) -> None:
        super().__init__(message)
        self.message = message
        self.request = request
        self.body = body


def _body_status(body: object) -> int | None:
    status = body.get("status_code") if isinstance(body, Mapping) else None
    return status if isinstance(status, int) and not isinstance(status, bool) else None


class APIStatusError(APIError):
    """A 4xx/5xx response, or an error event inside a stream."""

    response: httpx.Response
    status_code: int

    def __init__(self, message: str, *, response: httpx.Response, body: object | None) -> None:
        inner = body.get("error", body) if isinstance(body, Mapping) else body
        super().__init__(message, response.request, body=inner)
        self.response = response
        self.status_code = _body_status(body) or response.status_code


class APIConnectionError(APIError):
    def __init__(self, *, message: str = "Connection error.", request: httpx.Request) -> None:
        super().__init__(message, request, body=None)


class APITimeoutError(APIConnectionError):
    def __init__(self, request: httpx.Request) -> None:
        super().__init__(message="Request timed out.", request=request)


class APIResponseValidationError(APIError):
    response: httpx.Response
    status_code: int

    def __init__(self, response: httpx.Response, body: object | None, *, message: str | None = None) -> None:
        super().__init__(message or "Data returned by API invalid for expected schema.", response.request, body=body)
        self.response = response
        self.status_code = response.status_code


class BadRequestError(APIStatusError):
    status_code = 400


class AuthenticationError(APIStatusError):
    status_code = 401


class PermissionDeniedError(APIStatusError):
    status_code = 403


class NotFoundError(APIStatusError):
    status_code = 404


class ConflictError(APIStatusError):
    status_code = 409


class UnprocessableEntityError(APIStatusError):
    status_code = 422


class RateLimitError(APIStatusError):
    status_code = 429


class InternalServerError(APIStatusError):
    pass


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def make_status_error(message: str, *, body: object, response: httpx.Response) -> APIStatusError:
    """The exception for a status: the body's int ``status_code`` if any, else the HTTP status."""
    status = _body_status(body) or response.status_code
    cls = _BY_STATUS.get(status) or (InternalServerError if status >= 500 else APIStatusError)
    return cls(message, response=response, body=body)


def status_error_from_response(response: httpx.Response) -> APIStatusError:
    """``Error code: N - {parsed body}`` for JSON bodies, the text otherwise (the SDK's message)."""
    if response.is_closed and not response.is_stream_consumed:
        return make_status_error(f"Error code: {response.status_code}", body=None, response=response)
    text = response.text.strip()
    body: Any = text
    try:
        body = json.loads(text)
        message = f"Error code: {response.status_code} - {body}"
    except Exception:
        message = text or f"Error code: {response.status_code}"
    return make_status_error(message, body=body, response=response)


class StreamAlreadyConsumed(CerebrasError):
    def __init__(self) -> None:
        super().__init__(
            "Attempted to read or stream some content, but the content has already been streamed. "
            "You can fix this by manually accumulating the response content while streaming "
            "or by calling `.read()` before starting to stream."
        )


# ---- beyond the official SDK -------------------------------------------------------------------


class ContentParseError(CerebrasError, ValueError):
    """``chat.completions.parse``: a choice's content is not valid for the requested model.

    ``.completion`` is the response as received, ``.content`` the text that did not parse; the pydantic or
    JSON error is the ``__cause__``.
    """

    def __init__(self, message: str, *, completion: Any, content: str | None) -> None:
        super().__init__(message)
        self.completion = completion
        self.content = content


class LengthFinishReasonError(ContentParseError):
    """The answer was cut by the token limit (``finish_reason == "length"``), so it cannot be parsed."""


class ToolLoopLimitError(CerebrasError):
    """``run_tools`` reached ``max_turns`` model calls and the model still asked for tools."""

    def __init__(self, message: str, *, messages: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.messages = messages
