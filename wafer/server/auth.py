"""API keys: where they come from, how a request's ``Authorization`` header is checked.

Keys come from ``--api-key`` (repeatable), the ``WAFER_API_KEYS`` environment variable (comma
separated) and ``--api-keys-file`` (one key per line: ``KEY [NAME] [rpm=N] [rpd=N] [tpm=N] [tpd=N]``,
``#`` comments). With no key configured the server is open (and ``wafer serve`` warns when it is
bound to anything but loopback).

Answers are Cerebras' (spec 1.2): no ``Authorization`` header -> 403 ``{"detail": "Not
authenticated"}`` (FastAPI's HTTPBearer default, which is what Cerebras sends); a header that is not
a bearer token -> 403 ``{"detail": "Invalid authentication credentials"}``; a wrong key -> 401
``wrong_api_key``. Keys are compared as SHA-256 digests with ``hmac.compare_digest`` against every
configured key (no early exit), and only a key's name (or the first 8 hex digits of its digest)
ever reaches logs and metrics.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..protocol.errors import wrong_api_key

LIMIT_NAMES = ("rpm", "rpd", "tpm", "tpd")


class NotAuthenticated(Exception):
    """A 403 in FastAPI's HTTPBearer shape ``{"detail": ...}`` (not the flat Cerebras error body)."""

    def __init__(self, detail: str = "Not authenticated"):
        super().__init__(detail)
        self.detail = detail


@dataclass
class Key:
    name: str  # what logs and metrics show
    digest: bytes  # sha256 of the key
    limits: dict[str, int] = field(default_factory=dict)  # per-key overrides of --rate-limit


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()


def parse_limits(words: list[str], where: str) -> dict[str, int]:
    """``rpm=60 tpm=100000`` (or ``rpm=60,tpm=100000``) -> {"rpm": 60, "tpm": 100000}; 0 = unlimited."""
    out = {}
    for word in (w for part in words for w in part.split(",") if w):
        name, sep, value = word.partition("=")
        if not sep or name not in LIMIT_NAMES or not value.isdigit():
            raise ValueError(f"{where}: expected rpm=N, rpd=N, tpm=N or tpd=N, got {word!r}")
        out[name] = int(value)
    return out


class KeySet:
    def __init__(self, keys: list[Key] | None = None):
        self.keys = list(keys or [])

    @property
    def open(self) -> bool:
        return not self.keys

    @classmethod
    def load(cls, flags: list[str] | None = None, env: str | None = None, path: str | None = None) -> "KeySet":
        """Keys from ``--api-key`` values, ``WAFER_API_KEYS`` and a keys file (duplicates rejected)."""
        keys: list[Key] = []
        secrets = [s for s in (flags or []) if s] + [s.strip() for s in (env or "").split(",") if s.strip()]
        for secret in secrets:
            keys.append(Key(_anonymous_name(secret), _digest(secret)))
        if path:
            for n, line in enumerate(Path(path).read_text().splitlines(), 1):
                words = line.split("#", 1)[0].split()
                if not words:
                    continue
                secret, rest = words[0], words[1:]
                name = rest.pop(0) if rest and "=" not in rest[0] else _anonymous_name(secret)
                keys.append(Key(name, _digest(secret), parse_limits(rest, f"{path}:{n}")))
        seen: set[bytes] = set()
        for k in keys:
            if k.digest in seen:
                raise ValueError(f"API key {k.name!r} is configured twice")
            seen.add(k.digest)
        return cls(keys)

    @classmethod
    def from_env(cls, flags: list[str] | None, path: str | None) -> "KeySet":
        return cls.load(flags, os.environ.get("WAFER_API_KEYS"), path)

    def check(self, authorization: str | None) -> Key | None:
        """The key a request presents; None when the server is open. Raises NotAuthenticated / APIError."""
        if self.open:
            return None
        if not authorization:
            raise NotAuthenticated()
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise NotAuthenticated("Invalid authentication credentials")
        digest = _digest(token)
        found = None
        for k in self.keys:  # every key compared: the time does not depend on which one matches
            if hmac.compare_digest(digest, k.digest):
                found = k
        if found is None:
            raise wrong_api_key()
        return found


def _anonymous_name(secret: str) -> str:
    return "key-" + _digest(secret).hex()[:8]

