"""Sentinels and aliases shared by the whole client.

``NOT_GIVEN`` / ``omit`` tell "the caller did not pass this" apart from ``None`` (which is sent as JSON
``null``, as the Cerebras SDK does). ``Omit()`` as a header value removes a default header.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Union

import httpx

__all__ = ["NOT_GIVEN", "Body", "Headers", "NotGiven", "Omit", "Query", "Timeout", "is_given", "not_given", "omit"]


class NotGiven:
    """The value of an argument the caller left out (falsy, distinct from ``None``)."""

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN = not_given = NotGiven()


class Omit:
    """Leave the key out: a body parameter is not sent, a default header is removed."""

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "omit"


omit = Omit()

Timeout = Union[float, httpx.Timeout, None]
Headers = Mapping[str, str | Omit]
Query = Mapping[str, object]
Body = object


def is_given(value: Any) -> bool:
    return not isinstance(value, (NotGiven, Omit))
