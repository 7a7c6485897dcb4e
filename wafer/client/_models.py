"""Response models: pydantic, unknown fields kept (``extra="allow"``), and how JSON becomes them.

Like the Cerebras SDK, a response is first validated against its type (a union picks the variant that
validates, e.g. a chunk vs a full completion); data that fits no variant is still built, loosely, as the
first variant that can hold it, unless the client was created with ``_strict_response_validation=True``.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin

import pydantic
from pydantic import ConfigDict, PrivateAttr

__all__ = ["BaseModel", "construct", "is_model_type", "validate"]


class BaseModel(pydantic.BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=(), defer_build=True)

    # set on top-level response objects: the x-ratelimit-* headers of the HTTP response (RateLimitInfo)
    _rate_limits: Any | None = PrivateAttr(default=None)

    @property
    def rate_limits(self) -> Any:
        """The ``x-ratelimit-*`` headers of the response this object came from (None when absent)."""
        return self._rate_limits

    def to_dict(
        self,
        *,
        mode: Literal["json", "python"] = "python",
        use_api_names: bool = True,
        exclude_unset: bool = True,
        exclude_defaults: bool = False,
        exclude_none: bool = False,
    ) -> dict[str, object]:
        """The object as the API sent it: by default only the keys that were in the response."""
        return self.model_dump(
            mode=mode,
            by_alias=use_api_names,
            exclude_unset=exclude_unset,
            exclude_defaults=exclude_defaults,
            exclude_none=exclude_none,
        )

    def to_json(
        self,
        *,
        indent: int | None = 2,
        use_api_names: bool = True,
        exclude_unset: bool = True,
        exclude_defaults: bool = False,
        exclude_none: bool = False,
    ) -> str:
        return self.model_dump_json(
            indent=indent,
            by_alias=use_api_names,
            exclude_unset=exclude_unset,
            exclude_defaults=exclude_defaults,
            exclude_none=exclude_none,
        )

    def __str__(self) -> str:
        return f"{self.__repr_name__()}({self.__repr_str__(', ')})"


def _is_union(tp: Any) -> bool:
    origin = get_origin(tp)
    return origin is Union or origin is types.UnionType


def is_model_type(tp: Any) -> bool:
    """A pydantic model class, or a union with one among its variants."""
    if _is_union(tp):
        return any(is_model_type(a) for a in get_args(tp))
    return isinstance(tp, type) and issubclass(tp, pydantic.BaseModel)


@functools.cache
def _adapter(tp: Any) -> pydantic.TypeAdapter:
    return pydantic.TypeAdapter(tp)


def validate(tp: Any, value: object) -> Any:
    """Strict: the value must match ``tp`` (raises ``pydantic.ValidationError``)."""
    if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):
        return tp.model_validate(value)
    return _adapter(tp).validate_python(value)


def construct(tp: Any, value: object) -> Any:
    """Validated if the value fits ``tp``, otherwise built as far as it goes without raising."""
    if tp is object or tp is Any:
        return value
    try:
        return validate(tp, value)
    except pydantic.ValidationError:
        return _loose(tp, value)


def _loose(tp: Any, value: object) -> Any:
    if _is_union(tp):
        for variant in get_args(tp):
            if variant is type(None):
                continue
            if is_model_type(variant) and not isinstance(value, Mapping):
                continue
            return construct(variant, value)
        return value
    origin = get_origin(tp)
    if origin is list and isinstance(value, list):
        (item,) = get_args(tp) or (Any,)
        return [construct(item, v) for v in value]
    if origin is dict and isinstance(value, Mapping):
        _, item = get_args(tp) or (Any, Any)
        return {k: construct(item, v) for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel) and isinstance(value, Mapping):
        fields: dict[str, Any] = {}
        given: set[str] = set()
        known = set()
        for name, info in tp.model_fields.items():
            key = info.alias or name
            known.add(key)
            if key in value:
                fields[name] = construct(info.annotation, value[key])
                given.add(name)
            elif info.is_required():
                fields[name] = None  # missing required fields read as None, as in the SDK
        extra = {k: v for k, v in value.items() if k not in known}
        return tp.model_construct(_fields_set=given | set(extra), **fields, **extra)
    return value
