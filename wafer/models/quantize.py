"""Requantization of GGUF files into the types llama.cpp's CPU backend runs fastest.

llama.cpp's CPU backend repacks only Q4_0, Q8_0 and IQ4_NL weights into its fast
GEMM layout ("CPU_REPACK"); every other type runs through the generic kernels,
which are much slower, above all in prefill and batched decoding.  ``optimize_gguf``
converts a GGUF whose main type is not one of those into the fastest candidate
type whose quality stays within a bound, measured as next-token perplexity on a
held-out text shipped with the package: English prose (``data/heldout.txt``) or, for a code
model, Python code (``data/heldout_code.txt``); the catalogue says which (``eval_text``).

The bound and the measurements behind it are documented in docs/models.md.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from .cache import GGUF_MAGIC, check_gguf, gguf_quant

__all__ = [
    "CANDIDATES",
    "MAX_PPL_INCREASE",
    "REPACKABLE",
    "CandidateResult",
    "LlamaSession",
    "OptimizeResult",
    "QuantizeError",
    "heldout_text",
    "is_repackable",
    "optimize_gguf",
    "perplexity",
    "quantize_gguf",
]

#: Types whose weights the llama.cpp CPU backend repacks into its fast GEMM layout.
REPACKABLE = frozenset({"Q4_0", "Q8_0", "IQ4_NL"})

#: Requantization candidates, fastest first (measured, see docs/models.md).
CANDIDATES: tuple[str, ...] = ("Q4_0", "IQ4_NL", "Q8_0")

#: A candidate is accepted if its perplexity on the held-out text is at most this much
#: higher (relative) than the original file's: ppl_candidate <= ppl_original * (1 + bound).
MAX_PPL_INCREASE = 0.10

#: Number of held-out tokens scored by default (a few seconds per model on 2 cores).
DEFAULT_EVAL_TOKENS = 512

_DATA = Path(__file__).with_name("data")
HELDOUT_TEXTS = {"prose": _DATA / "heldout.txt", "code": _DATA / "heldout_code.txt"}


class QuantizeError(RuntimeError):
    """Raised when llama.cpp fails to load, evaluate or quantize a model."""


def heldout_text(kind: str = "prose") -> str:
    """A held-out text to measure perplexity on: ``"prose"`` (English narrative) or ``"code"`` (Python)."""
    if kind not in HELDOUT_TEXTS:
        raise ValueError(f"unknown held-out text {kind!r} (expected one of {', '.join(HELDOUT_TEXTS)})")
    return HELDOUT_TEXTS[kind].read_text(encoding="utf-8")


def is_repackable(quant: str | None) -> bool:
    return quant is not None and quant.upper() in REPACKABLE


# --------------------------------------------------------------------------- llama.cpp glue

def _llama():
    try:
        import llama_cpp  # noqa: PLC0415 - heavy import, only when needed
    except ImportError as exc:  # pragma: no cover - dependency is declared
        raise QuantizeError("llama-cpp-python is required to evaluate or quantize models") from exc
    return llama_cpp


_backend_ready = False


def _backend():
    global _backend_ready
    llama_cpp = _llama()
    if not _backend_ready:
        llama_cpp.llama_backend_init()
        _backend_ready = True
    return llama_cpp


@contextlib.contextmanager
def _quiet(enabled: bool = True) -> Iterator[None]:
    """Silence llama.cpp's log output (routed through llama-cpp-python's logger) for a while."""
    if not enabled:
        yield
        return
    # llama-cpp-python's log callback prints a message when the logger's level is <= the
    # message's mapped level; its level table predates ggml's renumbering (WARN is mapped
    # to ERROR), so only CRITICAL actually silences warnings.
    logger = logging.getLogger("llama-cpp-python")
    old = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(old)


def _ftype_value(quant: str) -> int:
    llama_cpp = _llama()
    name = "LLAMA_FTYPE_MOSTLY_" + quant.upper()
    if quant.upper() == "F32":
        name = "LLAMA_FTYPE_ALL_F32"
    value = getattr(llama_cpp, name, None)
    if value is None:
        raise QuantizeError(f"unknown quantization type {quant!r}")
    return int(value)


def _tokenize(llama_cpp, vocab, text: str, add_bos: bool) -> list[int]:
    data = text.encode("utf-8")
    cap = len(data) + 16
    buf = (llama_cpp.llama_token * cap)()
    n = llama_cpp.llama_tokenize(vocab, data, len(data), buf, cap, add_bos, False)
    if n < 0:  # buffer too small: -n is the needed size
        cap = -n
        buf = (llama_cpp.llama_token * cap)()
        n = llama_cpp.llama_tokenize(vocab, data, len(data), buf, cap, add_bos, False)
    if n < 0:
        raise QuantizeError("tokenization failed")
    return list(buf[:n])


class LlamaSession:
    """A GGUF loaded on the CPU with one sequence's context and batch, all freed together::

        with LlamaSession(path) as s:
            tokens = s.tokenize(text)
            s.open(n_ctx=len(tokens), n_batch=128, n_threads=2)
            s.decode(tokens[:128], start=0, all_logits=True)
    """

    def __init__(self, path: str | os.PathLike, quiet: bool = True):
        self.path = check_gguf(path)
        self.quiet = quiet
        self.ctx = None
        self.batch = None
        self.n_batch = 0

    def __enter__(self) -> "LlamaSession":
        self.llama = _backend()
        self._quiet = _quiet(self.quiet)
        self._quiet.__enter__()
        mparams = self.llama.llama_model_default_params()
        mparams.n_gpu_layers = 0
        self.model = self.llama.llama_model_load_from_file(str(self.path).encode(), mparams)
        if not self.model:
            self._quiet.__exit__(None, None, None)
            raise QuantizeError(f"llama.cpp could not load {self.path}")
        self.vocab = self.llama.llama_model_get_vocab(self.model)
        self.n_vocab = self.llama.llama_vocab_n_tokens(self.vocab)
        return self

    def __exit__(self, *exc) -> None:
        if self.batch is not None:
            self.llama.llama_batch_free(self.batch)
        if self.ctx:
            self.llama.llama_free(self.ctx)
        self.llama.llama_model_free(self.model)
        self._quiet.__exit__(*exc)

    def tokenize(self, text: str) -> list[int]:
        """``text`` with BOS when the model wants one."""
        return _tokenize(self.llama, self.vocab, text, bool(self.llama.llama_vocab_get_add_bos(self.vocab)))

    def open(self, n_ctx: int, n_batch: int, n_threads: int) -> None:
        cparams = self.llama.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = cparams.n_ubatch = n_batch
        cparams.n_seq_max = 1
        cparams.n_threads = cparams.n_threads_batch = n_threads
        self.ctx = self.llama.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            raise QuantizeError(f"llama.cpp could not create a context for {self.path}")
        self.batch = self.llama.llama_batch_init(n_batch, 0, 1)
        self.n_batch = n_batch

    def decode(self, tokens: Sequence[int], start: int, all_logits: bool):
        """Decode ``tokens`` at positions ``start``...; returns the logits rows (one per token with
        ``all_logits``, else the last token's) as a numpy view valid until the next decode."""
        import numpy as np  # noqa: PLC0415

        b = self.batch
        for i, tok in enumerate(tokens):
            b.token[i] = tok
            b.pos[i] = start + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            b.logits[i] = 1 if all_logits or i == len(tokens) - 1 else 0
        b.n_tokens = len(tokens)
        rc = self.llama.llama_decode(self.ctx, b)
        if rc != 0:
            raise QuantizeError(f"llama_decode failed with {rc}")
        if all_logits:  # every entry asked for logits, so the output rows are in batch order
            return np.ctypeslib.as_array(self.llama.llama_get_logits(self.ctx), shape=(len(tokens), self.n_vocab))
        return np.ctypeslib.as_array(self.llama.llama_get_logits_ith(self.ctx, -1), shape=(self.n_vocab,))


def perplexity(
    model_path: str | os.PathLike,
    text: str | None = None,
    *,
    max_tokens: int | None = None,
    n_threads: int = 2,
    chunk: int = 128,
    quiet: bool = True,
) -> float:
    """Next-token perplexity of ``model_path`` on ``text`` (default: the held-out prose text).

    The first ``max_tokens`` tokens (BOS included when the model wants one) are decoded
    in one sequence, in chunks of ``chunk`` tokens with logits at every position; the
    perplexity is exp(mean negative log-likelihood) of tokens 1..n-1.
    """
    import numpy as np  # noqa: PLC0415

    if text is None:
        text = heldout_text()
    if max_tokens is None:
        max_tokens = DEFAULT_EVAL_TOKENS
    with LlamaSession(model_path, quiet) as s:
        tokens = s.tokenize(text)[:max_tokens]
        n = len(tokens)
        if n < 2:
            raise QuantizeError("text too short to measure perplexity")
        chunk = max(1, min(chunk, n))
        s.open(n_ctx=n, n_batch=chunk, n_threads=n_threads)
        nll = 0.0
        count = 0
        for start in range(0, n, chunk):
            part = tokens[start : start + chunk]
            rows = s.decode(part, start, all_logits=True)
            n_rows = min(len(part), n - 1 - start)
            if n_rows <= 0:
                continue
            logits = rows[:n_rows]
            targets = np.asarray(tokens[start + 1 : start + 1 + n_rows])
            mx = logits.max(axis=1)
            lse = np.log(np.exp(logits - mx[:, None]).sum(axis=1, dtype=np.float64)) + mx
            picked = logits[np.arange(n_rows), targets]
            nll += float((lse - picked).sum())
            count += n_rows
    return math.exp(nll / count)


def quantize_gguf(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    quant: str,
    *,
    n_threads: int | None = None,
    quiet: bool = True,
) -> Path:
    """Requantize ``src`` into ``dst`` with type ``quant`` (e.g. "Q4_0"); written atomically."""
    src = check_gguf(src)
    dst = Path(dst)
    llama_cpp = _backend()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = _ftype_value(quant)
    params.allow_requantize = True
    params.nthread = n_threads or (os.cpu_count() or 1)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        with _quiet(quiet):
            rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
        if rc != 0 or not tmp.exists():
            raise QuantizeError(f"llama_model_quantize({src.name} -> {quant}) failed with {rc}")
        with open(tmp, "rb") as fh:
            if fh.read(4) != GGUF_MAGIC:
                raise QuantizeError(f"llama_model_quantize wrote a file that is not GGUF: {tmp}")
        os.replace(tmp, dst)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return dst


# --------------------------------------------------------------------------- selection

@dataclass
class CandidateResult:
    quant: str
    perplexity: float | None = None
    relative_increase: float | None = None
    accepted: bool = False
    size_bytes: int | None = None
    seconds: float | None = None
    error: str | None = None


@dataclass
class OptimizeResult:
    path: Path                      # the file to serve
    quant: str | None               # its main type
    original_path: Path
    original_quant: str | None
    original_perplexity: float | None = None
    converted: bool = False
    bound: float = MAX_PPL_INCREASE
    eval_tokens: int = DEFAULT_EVAL_TOKENS
    eval_text: str = "prose"
    candidates: list[CandidateResult] = field(default_factory=list)
    reason: str = ""

    def to_json(self) -> dict:
        d = asdict(self)
        d["path"] = self.path.name
        d["original_path"] = self.original_path.name
        return d


def _optimized_name(src: Path, quant: str) -> str:
    stem = src.stem
    old_name = gguf_quant(src)
    if old_name and old_name.lower() in stem.lower():
        idx = stem.lower().rfind(old_name.lower())
        stem = stem[:idx] + quant + stem[idx + len(old_name):]
    else:
        stem = f"{stem}.{quant}"
    return stem + ".gguf"


def optimize_gguf(
    src: str | os.PathLike,
    *,
    out_dir: str | os.PathLike | None = None,
    candidates: Sequence[str] = CANDIDATES,
    max_increase: float | None = None,
    eval_tokens: int | None = None,
    eval_text: str = "prose",
    n_threads: int = 2,
    log: Callable[[str], None] | None = None,
) -> OptimizeResult:
    """Convert ``src`` into the fastest candidate type within ``max_increase`` perplexity.

    If ``src`` is already of a repackable type it is returned unchanged.  Candidate files
    that are rejected are deleted; ``src`` is never deleted here (the caller decides).
    Perplexity is measured on the held-out text ``eval_text`` (``"prose"`` or ``"code"``).
    If no candidate passes, ``src`` itself is the result.
    """
    src = check_gguf(src)
    max_increase = MAX_PPL_INCREASE if max_increase is None else float(max_increase)
    eval_tokens = DEFAULT_EVAL_TOKENS if eval_tokens is None else int(eval_tokens)
    out_dir = Path(out_dir) if out_dir is not None else src.parent
    say = log or (lambda _msg: None)
    quant = gguf_quant(src)
    result = OptimizeResult(
        path=src, quant=quant, original_path=src, original_quant=quant,
        bound=max_increase, eval_tokens=eval_tokens, eval_text=eval_text,
    )
    text = heldout_text(eval_text)
    if is_repackable(quant):
        result.reason = f"{quant} is already repacked by the CPU backend"
        return result

    say(f"measuring perplexity of {src.name} ({quant or 'unknown type'}) on the held-out {eval_text} text")
    base = perplexity(src, text=text, max_tokens=eval_tokens, n_threads=n_threads)
    result.original_perplexity = base
    say(f"  {quant}: perplexity {base:.3f}")
    for cand in candidates:
        cr = CandidateResult(quant=cand)
        result.candidates.append(cr)
        dst = out_dir / _optimized_name(src, cand)
        if dst.resolve() == src.resolve():
            dst = out_dir / f"{src.stem}.requant-{cand}.gguf"
        t0 = time.monotonic()
        try:
            say(f"requantizing to {cand}")
            quantize_gguf(src, dst, cand, n_threads=n_threads)
            cr.size_bytes = dst.stat().st_size
            cr.perplexity = perplexity(dst, text=text, max_tokens=eval_tokens, n_threads=n_threads)
        except QuantizeError as exc:
            cr.error = str(exc)
            say(f"  {cand}: failed ({exc})")
            with contextlib.suppress(FileNotFoundError):
                dst.unlink()
            continue
        finally:
            cr.seconds = round(time.monotonic() - t0, 2)
        cr.relative_increase = cr.perplexity / base - 1.0
        cr.accepted = cr.relative_increase <= max_increase
        say(
            f"  {cand}: perplexity {cr.perplexity:.3f} ({cr.relative_increase:+.2%}), "
            + ("accepted" if cr.accepted else f"rejected (bound {max_increase:+.0%})")
        )
        if cr.accepted:
            result.path = dst
            result.quant = cand
            result.converted = True
            result.reason = (
                f"{cand} is the fastest candidate within {max_increase:.0%} perplexity of {quant}"
            )
            return result
        dst.unlink()
    result.reason = f"no candidate within {max_increase:.0%} perplexity of {quant}; keeping it"
    return result
