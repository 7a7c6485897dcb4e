"""Errors in the shape the Cerebras API sends them (spec section 4.1).

Non-stream errors are a flat JSON object ``{"message", "type", "param", "code"}``
(not OpenAI's ``{"error": {...}}`` wrapper).  ``APIError`` carries the HTTP
status and optional extra response headers; the server turns it into a response
with ``status`` and ``body()``.  Inside an SSE stream the same error is sent as
an ``ErrorChunk`` (see ``wafer.protocol.responses.ErrorChunk.from_error``).
"""

from __future__ import annotations

__all__ = [
    "APIError",
    "bad_request",
    "validation_error",
    "model_not_found",
    "queue_exceeded",
    "internal_error",
    "context_length_exceeded",
    "wrong_api_key",
    "request_quota_exceeded",
    "token_quota_exceeded",
]


class APIError(Exception):
    """An error to be returned to the client with HTTP status ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = int(status)
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = dict(headers) if headers else {}

    def body(self) -> dict:
        """The flat error body, key order as on the wire."""
        return {"message": self.message, "type": self.type, "param": self.param, "code": self.code}

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message

    def __repr__(self) -> str:
        return (
            f"APIError(status={self.status!r}, message={self.message!r}, type={self.type!r}, "
            f"param={self.param!r}, code={self.code!r})"
        )


def bad_request(message: str, param: str | None = None, code: str | None = "wrong_api_format") -> APIError:
    """400 ``invalid_request_error`` (``wrong_api_format`` unless told otherwise)."""
    return APIError(400, message, "invalid_request_error", param, code)


def validation_error(message: str) -> APIError:
    """400 for a schema violation: ``param`` is the literal ``"validation_error"`` as Cerebras sends it."""
    return APIError(400, message, "invalid_request_error", "validation_error", "wrong_api_format")


def model_not_found(model: str) -> APIError:
    """404 for an unknown model id. ``model`` is accepted for logging; Cerebras' text does not name it."""
    err = APIError(
        404,
        "Model does not exist or you do not have access to it.",
        "not_found_error",
        "model",
        "model_not_found",
    )
    err.model = model  # type: ignore[attr-defined]  # for logs; not part of the body
    return err


def queue_exceeded(
    message: str = "Request queue is full - too many requests queued. Please retry later.",
    headers: dict[str, str] | None = None,
) -> APIError:
    """429 when the local request queue is full (``code`` as seen on Cerebras 429s)."""
    return APIError(429, message, "too_many_requests_error", "queue", "queue_exceeded", headers)


def internal_error(message: str = "Internal server error.") -> APIError:
    """500. The spec records no Cerebras 500 body; ``server_error`` follows the OpenAI convention."""
    return APIError(500, message, "server_error", None, "internal_error")


def context_length_exceeded(message: str) -> APIError:
    """400 when prompt (+ requested output) does not fit the model's context."""
    return APIError(400, message, "invalid_request_error", "messages", "context_length_exceeded")


def wrong_api_key() -> APIError:
    """401 exactly as Cerebras answers a bad key (spec 1.2)."""
    return APIError(401, "Wrong API Key", "invalid_request_error", "api_key", "wrong_api_key")


def request_quota_exceeded(
    message: str = "Requests per minute limit exceeded - too many requests sent.",
    headers: dict[str, str] | None = None,
) -> APIError:
    """429 request-rate limit (spec 4.1)."""
    return APIError(429, message, "too_many_requests_error", "quota", "request_quota_exceeded", headers)


def token_quota_exceeded(
    message: str = "Tokens per minute limit exceeded - too many tokens processed.",
    headers: dict[str, str] | None = None,
) -> APIError:
    """429 token-rate limit (spec 4.1)."""
    return APIError(429, message, "too_many_tokens_error", "quota", "token_quota_exceeded", headers)
