"""Cache directory, manifests, atomic writes and light GGUF header inspection."""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Iterator

__all__ = [
    "GGUF_MAGIC",
    "MANIFEST_NAME",
    "InvalidModelError",
    "ModelNotFoundError",
    "atomic_write_json",
    "check_gguf",
    "default_cache_dir",
    "file_lock",
    "ftype_name",
    "gguf_info",
    "is_gguf",
    "model_dir",
    "now_iso",
    "read_gguf_file_type",
    "read_manifest",
    "write_manifest",
]

GGUF_MAGIC = b"GGUF"
MANIFEST_NAME = "manifest.json"


class ModelNotFoundError(FileNotFoundError):
    """The requested model is not available (unknown, not pulled, missing file, ...).

    A FileNotFoundError (so an Exception and an OSError) so that callers catching either
    report it cleanly.
    """


class InvalidModelError(ModelNotFoundError, ValueError):
    """A file was found but it is not a usable GGUF model."""


# --------------------------------------------------------------------------- cache dir

def default_cache_dir() -> Path:
    """``$WAFER_CACHE_DIR``, else ``$XDG_CACHE_HOME/wafer``, else ``~/.cache/wafer``."""
    env = os.environ.get("WAFER_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "wafer"
    return Path.home() / ".cache" / "wafer"


def _cache_root(cache_dir: str | os.PathLike | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def model_dir(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Directory holding catalogue model ``name``: ``<cache>/models/<name>``."""
    return _cache_root(cache_dir) / "models" / name


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


# --------------------------------------------------------------------------- atomic files

def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=False, default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_manifest(directory: str | os.PathLike) -> dict | None:
    p = Path(directory) / MANIFEST_NAME
    try:
        with open(p, encoding="utf-8") as fh:
            data = json.load(fh)
    except (FileNotFoundError, json.JSONDecodeError, OSError):
        return None
    return data if isinstance(data, dict) else None


def write_manifest(directory: str | os.PathLike, data: dict) -> None:
    atomic_write_json(Path(directory) / MANIFEST_NAME, data)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """An exclusive advisory lock (no-op where fcntl is unavailable)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl  # noqa: PLC0415
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# --------------------------------------------------------------------------- GGUF checks

def is_gguf(path: str | os.PathLike) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == GGUF_MAGIC
    except OSError:
        return False


def check_gguf(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path if it is an existing file starting with b"GGUF"; raise otherwise."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelNotFoundError(f"model file not found: {p}")
    if not p.is_file():
        raise InvalidModelError(f"not a file: {p}")
    try:
        with open(p, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise InvalidModelError(f"cannot read model file {p}: {exc}") from exc
    if head != GGUF_MAGIC:
        raise InvalidModelError(
            f"{p} is not a GGUF model file (it starts with {head!r}, expected {GGUF_MAGIC!r}); "
            "wafer serves llama.cpp GGUF files only"
        )
    return p


# llama_ftype values (llama.h) -> names
_FTYPE_NAMES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
    10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
    16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S",
    22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M",
    28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0",
    37: "TQ2_0", 38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0", 41: "Q2_0",
}

# ggml_type values (ggml.h) -> names (for files without general.file_type)
_GGML_TYPE_NAMES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
    10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS",
    17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S",
    23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M",
    30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
}

_GUESSED = 1024


def ftype_name(ftype: int | None) -> str | None:
    if ftype is None:
        return None
    ftype = int(ftype) & ~_GUESSED
    return _FTYPE_NAMES.get(ftype, f"ftype{ftype}")


# GGUF metadata value types -> struct format (scalars)
_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def _read(fh: BinaryIO, fmt: str):
    size = struct.calcsize(fmt)
    data = fh.read(size)
    if len(data) != size:
        raise EOFError
    return struct.unpack(fmt, data)[0]


def _read_str(fh: BinaryIO) -> bytes:
    n = _read(fh, "<Q")
    if n > 1 << 30:
        raise ValueError("implausible string length")
    data = fh.read(n)
    if len(data) != n:
        raise EOFError
    return data


def _read_value(fh: BinaryIO, vtype: int, keep: bool):
    if vtype in _SCALAR:
        return _read(fh, _SCALAR[vtype])
    if vtype == _STRING:
        return _read_str(fh).decode("utf-8", "replace")
    if vtype == _ARRAY:
        etype = _read(fh, "<I")
        count = _read(fh, "<Q")
        if etype in _SCALAR and not keep:
            fh.seek(count * struct.calcsize(_SCALAR[etype]), io.SEEK_CUR)
            return None
        if etype == _STRING and not keep:
            for _ in range(count):
                n = _read(fh, "<Q")
                fh.seek(n, io.SEEK_CUR)
            return None
        return [_read_value(fh, etype, keep) for _ in range(count)]
    raise ValueError(f"unknown GGUF value type {vtype}")


def gguf_info(path: str | os.PathLike, *, tensors: bool = False) -> dict:
    """Parse a GGUF header: version, scalar/string metadata, and (optionally) tensor types.

    Returns a dict with ``version``, ``metadata`` (arrays omitted), ``file_type`` (int or None),
    ``quant`` (name of the file type, or of the dominant tensor type when the file has none)
    and, when ``tensors`` is true or needed for ``quant``, ``tensor_types``
    ({type name: number of elements}).
    """
    p = check_gguf(path)
    with open(p, "rb", buffering=1 << 16) as fh:
        fh.read(4)
        version = _read(fh, "<I")
        if version < 2:
            raise InvalidModelError(f"{p}: GGUF version {version} is too old")
        n_tensors = _read(fh, "<Q")
        n_kv = _read(fh, "<Q")
        meta: dict[str, Any] = {}
        for _ in range(n_kv):
            key = _read_str(fh).decode("utf-8", "replace")
            vtype = _read(fh, "<I")
            val = _read_value(fh, vtype, keep=False)
            if val is not None:
                meta[key] = val
        file_type = meta.get("general.file_type")
        info: dict[str, Any] = {
            "version": version,
            "n_tensors": n_tensors,
            "metadata": meta,
            "file_type": int(file_type) if file_type is not None else None,
            "quant": ftype_name(file_type),
        }
        if tensors or file_type is None:
            counts: dict[str, int] = {}
            for _ in range(n_tensors):
                _read_str(fh)
                n_dims = _read(fh, "<I")
                n_el = 1
                for _ in range(n_dims):
                    n_el *= _read(fh, "<Q")
                ttype = _read(fh, "<I")
                _read(fh, "<Q")
                name = _GGML_TYPE_NAMES.get(ttype, f"type{ttype}")
                counts[name] = counts.get(name, 0) + n_el
            info["tensor_types"] = counts
            if file_type is None and counts:
                quantized = {k: v for k, v in counts.items() if k not in ("F32",)} or counts
                info["quant"] = max(quantized, key=quantized.get)
    return info


def read_gguf_file_type(path: str | os.PathLike) -> int | None:
    """``general.file_type`` of a GGUF (a llama_ftype value), or None if absent/unreadable."""
    try:
        return gguf_info(path)["file_type"]
    except (EOFError, ValueError, struct.error, OSError):
        return None


def gguf_quant(path: str | os.PathLike) -> str | None:
    """Name of the main quantization type of a GGUF ("Q4_0", "Q4_K_M", ...), or None."""
    try:
        return gguf_info(path)["quant"]
    except (EOFError, ValueError, struct.error, OSError):
        return None
