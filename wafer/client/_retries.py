"""When to retry and how long to wait (spec 6.4): the cerebras-cloud-sdk rules, as pure functions.

- Retried: connection errors and timeouts, and statuses 408, 409, 429 and >= 500.
  ``x-should-retry: true|false`` overrides the status rule either way.
- Wait before retry *k* (0-based): the server's ``retry-after-ms`` (milliseconds), else ``retry-after``
  (seconds or an HTTP date) when it is in (0, 60] s; otherwise ``min(0.5 * 2**k, 8) * (1 - 0.25 * random())``.
"""

from __future__ import annotations

import email.utils
import random as _random
import time
from collections.abc import Callable, Mapping

import httpx

from ._constants import INITIAL_RETRY_DELAY, MAX_RETRY_AFTER, MAX_RETRY_DELAY

__all__ = ["parse_retry_after", "retry_delay", "should_retry"]

RETRYABLE_STATUSES = frozenset({408, 409, 429})


def should_retry(response: httpx.Response) -> bool:
    """Whether an error response may be retried (the caller checks that retries are left)."""
    header = response.headers.get("x-should-retry")
    if header == "true":
        return True
    if header == "false":
        return False
    return response.status_code in RETRYABLE_STATUSES or response.status_code >= 500


def parse_retry_after(headers: Mapping[str, str] | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds the server asks to wait, or None: ``retry-after-ms`` first, then ``retry-after``."""
    if headers is None:
        return None
    try:
        return float(headers.get("retry-after-ms")) / 1000  # type: ignore[arg-type]
    except (TypeError, ValueError):
        pass
    value = headers.get("retry-after")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        pass
    date = email.utils.parsedate_tz(value) if value else None
    if date is None:
        return None
    return float(email.utils.mktime_tz(date) - now())


def retry_delay(
    retries_taken: int,
    headers: Mapping[str, str] | None = None,
    *,
    random: Callable[[], float] = _random.random,
    now: Callable[[], float] = time.time,
) -> float:
    """Seconds to sleep before the next attempt, after ``retries_taken`` retries so far."""
    after = parse_retry_after(headers, now)
    if after is not None and 0 < after <= MAX_RETRY_AFTER:
        return after
    backoff = min(INITIAL_RETRY_DELAY * 2.0 ** min(retries_taken, 1000), MAX_RETRY_DELAY)
    return max(backoff * (1 - 0.25 * random()), 0.0)
