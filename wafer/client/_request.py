"""The pieces of an outgoing request: options, headers, query string and JSON body (spec 6.2).

A request is described by ``FinalRequestOptions`` (what the resource method was given) and turned into
an ``httpx.Request`` by the client for each attempt, so that every retry sends the same body with a
fresh ``x-stainless-retry-count``.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import platform
import sys
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import pydantic

from ._types import NOT_GIVEN, Body, Headers, NotGiven, Omit, Query, Timeout, is_given

__all__ = ["FinalRequestOptions", "json_dumps", "make_request_options", "merge", "platform_headers", "stringify_query"]


@dataclasses.dataclass
class FinalRequestOptions:
    method: str
    url: str
    params: Query = dataclasses.field(default_factory=dict)
    headers: Headers = dataclasses.field(default_factory=dict)
    json_data: Body | None = None
    extra_json: Mapping[str, object] | None = None
    content: bytes | None = None
    timeout: Timeout | NotGiven = NOT_GIVEN
    max_retries: int | NotGiven = NOT_GIVEN
    post_parser: Callable[[Any], Any] | NotGiven = NOT_GIVEN

    @classmethod
    def build(cls, method: str, url: str, options: Mapping[str, Any] | None = None, **fields: Any) -> FinalRequestOptions:
        """From a resource's ``make_request_options()`` dict (SDK key names: headers, params, extra_json, ...)."""
        known = {f.name for f in dataclasses.fields(cls)}
        extra = {k: v for k, v in (options or {}).items() if k in known}
        return cls(method=method, url=url, **fields, **extra)

    def body(self) -> Body | None:
        """The JSON body with ``extra_body`` merged over it (``Omit`` values in either drop the key)."""
        if self.extra_json is None:
            return self.json_data
        if self.json_data is None:
            return merge({}, self.extra_json)
        if not isinstance(self.json_data, Mapping):
            raise RuntimeError(f"Unexpected JSON data type, {type(self.json_data)}, cannot merge with `extra_body`")
        return merge(self.json_data, self.extra_json)


def make_request_options(
    *,
    query: Query | None = None,
    extra_headers: Headers | None = None,
    extra_query: Query | None = None,
    extra_body: Body | None = None,
    timeout: Timeout | NotGiven = NOT_GIVEN,
    post_parser: Callable[[Any], Any] | NotGiven = NOT_GIVEN,
) -> dict[str, Any]:
    """The per-call options of a resource method, without the keys that were not given."""
    options: dict[str, Any] = {}
    if extra_headers is not None:
        options["headers"] = extra_headers
    if extra_body is not None:
        options["extra_json"] = extra_body
    if query is not None:
        options["params"] = query
    if extra_query is not None:
        options["params"] = {**options.get("params", {}), **extra_query}
    if is_given(timeout):
        options["timeout"] = timeout
    if is_given(post_parser):
        options["post_parser"] = post_parser
    return options


def merge(first: Mapping[Any, Any], second: Mapping[Any, Any]) -> dict[Any, Any]:
    """``{**first, **second}`` without the keys whose value is ``Omit``."""
    return {k: v for k, v in {**first, **second}.items() if not isinstance(v, Omit)}


def strip_not_given(params: Mapping[str, Any]) -> dict[str, Any]:
    """Drop the arguments the caller left out (``None`` stays: it is sent as JSON null)."""
    return {k: v for k, v in params.items() if is_given(v)}


# ---- query string: lists repeat the key, mappings nest as key[sub] ---------------------------------


def _query_items(key: str, value: object) -> list[tuple[str, str]]:
    if isinstance(value, Mapping):
        return [item for sub, v in value.items() for item in _query_items(f"{key}[{sub}]", v)]
    if isinstance(value, (list, tuple)):
        return [item for v in value for item in _query_items(key, v)]
    text = "true" if value is True else "false" if value is False else "" if value is None else str(value)
    return [(key, text)] if text else []


def stringify_query(params: Query) -> str:
    items = [item for k, v in params.items() for item in _query_items(k, v)]
    return str(httpx.QueryParams(items))


# ---- JSON body -------------------------------------------------------------------------------------


def _json_default(o: Any) -> Any:
    if isinstance(o, pydantic.BaseModel):
        return o.model_dump(exclude_unset=True, mode="json", by_alias=True)
    if isinstance(o, (datetime.datetime, datetime.date)):
        return o.isoformat()
    if isinstance(o, Mapping):
        return dict(o)
    if hasattr(o, "__iter__") and not isinstance(o, (str, bytes)):
        return list(o)  # iterables such as generators of messages
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def json_dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON, as the SDK sends it (``separators=(",", ":")``, non-ASCII kept)."""
    return json.dumps(obj, default=_json_default, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


# ---- platform headers ------------------------------------------------------------------------------


def _os_name() -> str:
    system = platform.system().lower()
    name = platform.platform().lower()
    if "iphone" in name or "ipad" in name:
        return "iOS"
    if system == "darwin":
        return "MacOS"
    if system == "windows":
        return "Windows"
    if "android" in name:
        return "Android"
    if system == "linux":
        return "Linux"
    if system in ("freebsd", "openbsd"):
        return {"freebsd": "FreeBSD", "openbsd": "OpenBSD"}[system]
    return f"Other:{name}" if name else "Unknown"


def _arch() -> str:
    machine = platform.machine().lower()
    if machine in ("arm64", "aarch64"):
        return "arm64"
    if machine in ("arm", "x86_64"):
        return {"arm": "arm", "x86_64": "x64"}[machine]
    if sys.maxsize <= 2**32:
        return "x32"
    return f"other:{machine}" if machine else "unknown"


@functools.cache
def platform_headers(version: str) -> dict[str, str]:
    return {
        "X-Stainless-Lang": "python",
        "X-Stainless-Package-Version": version,
        "X-Stainless-OS": _os_name(),
        "X-Stainless-Arch": _arch(),
        "X-Stainless-Runtime": platform.python_implementation(),
        "X-Stainless-Runtime-Version": platform.python_version(),
    }
