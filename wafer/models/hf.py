"""Hugging Face Hub repo ids: ``org/name``, ``org/name:FILE.gguf``, ``org/name/FILE.gguf``,
``org/name:QUANT`` (e.g. ``org/name:Q8_0``).

Files are fetched with ``huggingface_hub`` into the standard Hugging Face cache (so they
are shared with other tools) and offline mode (``HF_HUB_OFFLINE=1``) is honoured: the
cached snapshot of the repo is used without any network access.  The environment is read
at call time (``HF_HUB_CACHE`` / ``HUGGINGFACE_HUB_CACHE`` / ``HF_HOME``, ``HF_HUB_OFFLINE``),
not when ``huggingface_hub`` was imported.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from .cache import ModelNotFoundError, check_gguf

__all__ = [
    "HFSpec",
    "choose_gguf",
    "hf_cache_dir",
    "hf_offline",
    "looks_like_hf_spec",
    "parse_hf_spec",
    "resolve_hf",
]

# Preferred quantization types, best first: the ones llama.cpp's CPU backend repacks.
PREFERRED_QUANTS = ("Q4_0", "IQ4_NL", "Q8_0")

_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_SPEC_RE = re.compile(rf"^(?:hf://|hf:|huggingface:)?(?P<repo>{_NAME}/{_NAME})(?:(?P<sep>[:/])(?P<rest>.+))?$")
_SPLIT_RE = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
_TRUE = {"1", "on", "yes", "true"}


@dataclass(frozen=True)
class HFSpec:
    repo_id: str
    filename: str | None = None     # exact file in the repo
    quant: str | None = None        # or a quantization tag to select a file by


def looks_like_hf_spec(spec: str) -> bool:
    if spec.startswith(("/", "./", "../", "~", "\\")) or "\\" in spec:
        return False
    return parse_hf_spec(spec) is not None


def parse_hf_spec(spec: str) -> HFSpec | None:
    """Parse a repo id spec; None if ``spec`` is not one."""
    m = _SPEC_RE.match(spec.strip())
    if not m:
        return None
    repo, rest = m.group("repo"), m.group("rest")
    if rest is None:
        return HFSpec(repo)
    if rest.lower().endswith(".gguf"):
        return HFSpec(repo, filename=rest)
    if m.group("sep") == ":" and re.fullmatch(r"[A-Za-z0-9_]+", rest):
        return HFSpec(repo, quant=rest.upper())
    return None


def hf_offline() -> bool:
    return (os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or "").strip().lower() in _TRUE


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache directory, from the environment as it is now."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        val = os.environ.get(var)
        if val:
            return Path(os.path.expandvars(val)).expanduser()
    home = os.environ.get("HF_HOME")
    if home:
        return Path(os.path.expandvars(home)).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def _quant_of_name(filename: str) -> str | None:
    """The quantization tag in a GGUF file name (``...Q4_K_M.gguf`` -> ``Q4_K_M``)."""
    stem = _SPLIT_RE.sub("", Path(filename).name)
    stem = re.sub(r"\.gguf$", "", stem, flags=re.IGNORECASE)
    m = re.search(
        r"(?:^|[._-])((?:I?Q\d(?:_[A-Z0-9]+)*)|BF16|F16|F32|FP16|FP32)$",
        stem,
        flags=re.IGNORECASE,
    )
    return m.group(1).upper() if m else None


def choose_gguf(files: Iterable[tuple[str, int | None]], quant: str | None = None) -> list[str]:
    """Pick the GGUF to serve from ``(path_in_repo, size)`` pairs.

    Returns the files to fetch: one file, or all parts of a split model (first part first).
    Preference: the requested ``quant``; else Q4_0, IQ4_NL, Q8_0 (repacked by the CPU
    backend, fastest); else the smallest model.  Projector files (``mmproj``) are skipped.
    """
    groups: dict[str, list[tuple[str, int]]] = {}
    for name, size in files:
        base = name.rsplit("/", 1)[-1]
        if not base.lower().endswith(".gguf") or "mmproj" in base.lower():
            continue
        key = _SPLIT_RE.sub(".gguf", name)
        groups.setdefault(key, []).append((name, size or 0))
    if not groups:
        return []
    candidates = []
    for key, members in groups.items():
        members.sort()
        candidates.append((key, [m[0] for m in members], sum(m[1] for m in members), _quant_of_name(key)))

    def pick(tag: str) -> list[tuple]:
        return sorted((c for c in candidates if c[3] == tag.upper()), key=lambda c: (c[2], c[0]))

    if quant:
        chosen = pick(quant)
        if not chosen:
            available = sorted({c[3] or c[0] for c in candidates})
            raise ModelNotFoundError(f"no {quant} GGUF in the repo (available: {', '.join(available)})")
        return chosen[0][1]
    for tag in PREFERRED_QUANTS:
        chosen = pick(tag)
        if chosen:
            return chosen[0][1]
    return min(candidates, key=lambda c: (c[2], c[0]))[1]


def _repo_folder(cache: Path, repo_id: str) -> Path:
    return cache / ("models--" + repo_id.replace("/", "--"))


def _cached_snapshot(cache: Path, repo_id: str, revision: str = "main") -> Path | None:
    folder = _repo_folder(cache, repo_id)
    ref = folder / "refs" / revision
    if ref.is_file():
        snap = folder / "snapshots" / ref.read_text().strip()
        if snap.is_dir():
            return snap
    snap = folder / "snapshots" / revision  # a commit hash given as revision
    if snap.is_dir():
        return snap
    snaps = [p for p in (folder / "snapshots").glob("*") if p.is_dir()]
    return max(snaps, key=lambda p: p.stat().st_mtime) if snaps else None


def _cached_files(snapshot: Path) -> list[tuple[str, int | None]]:
    out = []
    for p in snapshot.rglob("*"):
        if p.is_file():  # follows the symlinks into blobs/
            out.append((p.relative_to(snapshot).as_posix(), p.stat().st_size))
    return out


def _remote_files(repo_id: str, revision: str | None) -> list[tuple[str, int | None]]:
    from huggingface_hub import HfApi  # noqa: PLC0415

    api = HfApi()
    out = []
    for item in api.list_repo_tree(repo_id, recursive=True, revision=revision):
        size = getattr(item, "size", None)
        if size is not None or item.path.lower().endswith(".gguf"):
            out.append((item.path, size))
    return out


@contextlib.contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    from huggingface_hub import utils  # noqa: PLC0415

    was_disabled = utils.are_progress_bars_disabled()
    if not enabled and not was_disabled:
        utils.disable_progress_bars()
    try:
        yield
    finally:
        if not enabled and not was_disabled:
            utils.enable_progress_bars()


def resolve_hf(
    spec: str | HFSpec,
    *,
    progress: bool = True,
    revision: str | None = None,
    offline: bool | None = None,
) -> Path:
    """Download (or find in the HF cache) the GGUF for ``spec``; returns its local path.

    For a split model every part is fetched and the first part is returned (llama.cpp
    loads the rest from the same directory).  ``offline=None`` follows ``HF_HUB_OFFLINE``;
    ``offline=True`` uses the local cache only.
    """
    if isinstance(spec, str):
        parsed = parse_hf_spec(spec)
        if parsed is None:
            raise ModelNotFoundError(f"not a Hugging Face repo id: {spec!r}")
        spec = parsed
    try:
        from huggingface_hub import hf_hub_download  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - dependency is declared
        raise ModelNotFoundError("huggingface-hub is required for Hugging Face repo ids") from exc

    offline = hf_offline() if offline is None else bool(offline)
    cache = hf_cache_dir()

    if spec.filename:
        files = [spec.filename]
    else:
        listing: list[tuple[str, int | None]] | None = None
        error: Exception | None = None
        if not offline:
            try:
                listing = _remote_files(spec.repo_id, revision)
            except Exception as exc:  # network down, repo gone, auth: fall back to the cache
                error = exc
        if listing is None:
            snap = _cached_snapshot(cache, spec.repo_id, revision or "main")
            if snap is None:
                why = "offline mode (HF_HUB_OFFLINE) is on" if offline else f"listing the repo failed: {error}"
                raise ModelNotFoundError(
                    f"Hugging Face repo {spec.repo_id!r} is not in the local cache ({cache}) and {why}"
                )
            listing = _cached_files(snap)
        files = choose_gguf(listing, spec.quant)
        if not files:
            raise ModelNotFoundError(f"Hugging Face repo {spec.repo_id!r} has no .gguf file")

    paths = []
    with _progress_bars(progress):
        for name in files:
            try:
                local = hf_hub_download(
                    spec.repo_id, name, revision=revision, cache_dir=str(cache), local_files_only=offline
                )
            except Exception as exc:
                where = "in the local cache (offline mode)" if offline else "on the Hub"
                raise ModelNotFoundError(
                    f"could not get {name!r} from Hugging Face repo {spec.repo_id!r} {where}: {exc}"
                ) from exc
            paths.append(Path(local))
    return check_gguf(paths[0])
