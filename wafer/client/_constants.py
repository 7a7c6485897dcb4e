"""Defaults that match cerebras-cloud-sdk 1.91.0 (spec 6.2, 6.4)."""

import httpx

#: the cerebras-cloud-sdk release whose behaviour this client reproduces
SDK_COMPAT_VERSION = "1.91.0"

DEFAULT_TIMEOUT = httpx.Timeout(timeout=60, connect=5.0)
DEFAULT_MAX_RETRIES = 2
DEFAULT_CONNECTION_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
DEFAULT_BASE_URL = "https://api.cerebras.ai"

INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
#: a server-sent retry-after (seconds) is honoured exactly only within (0, MAX_RETRY_AFTER]
MAX_RETRY_AFTER = 60.0

#: timeout of the constructor's GET /v1/tcp_warming, per attempt
WARMING_TIMEOUT = 1

RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"
