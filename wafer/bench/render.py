"""Rendered blocks in Markdown documents: the tables and findings the docs show, written from results files.

A block is::

    <!-- bench:KIND FILE... -->
    (rendered)
    <!-- bench:end -->

KIND says what to render, the FILEs (paths relative to the document) are the results it is rendered
from. ``wafer bench --render DOC...`` rewrites every block of each document, so nothing between the
markers is typed by hand; ``wafer bench --render-readme README RESULTS...`` first points README's
sweep blocks at RESULTS.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

BLOCK = re.compile(r"<!-- bench:(?P<kind>[\w-]+)(?P<files>(?: +[^ >]+)*) *-->\n.*?<!-- bench:end -->", re.S)
SWEEP_KINDS = ("sweep", "sweep-ratios", "sweep-findings")


def _sweep(results: list[dict], files: list[Path], doc: Path) -> str:
    from .report import markdown

    parts = []
    for res, f in zip(results, files):
        prefix = os.path.relpath(f.resolve().parent, doc.resolve().parent).replace(os.sep, "/") + "/"
        parts.append(markdown(res, plot_prefix=prefix, level=3))
    return "\n".join(parts)


def _kinds() -> dict:
    """KIND -> render(results, files, doc)."""
    from . import prediction, prefix_cache, scale_out, serve_vs_raw, step_costs, structured
    from .findings import findings
    from .report import ratio_overview

    kinds = {"sweep": _sweep, "sweep-ratios": lambda r, f, d: ratio_overview(r),
             "sweep-findings": lambda r, f, d: findings(r)}
    for mod in (serve_vs_raw, prefix_cache, structured, prediction, step_costs, scale_out):
        kinds[mod.NAME] = lambda r, f, d, mod=mod: mod.render(r)
    return kinds


def render_doc(doc: Path, sweep_files: list[Path] | None = None) -> int:
    """Rewrite every block of ``doc`` from its files (``sweep_files``, relative to the current directory, replace
    the sweep blocks' files); returns how many blocks were rendered. ValueError: no block, or an unknown kind."""
    doc = Path(doc)
    text = doc.read_text()
    kinds = _kinds()
    base = doc.resolve().parent

    def one(m: re.Match) -> str:
        kind, names = m["kind"], m["files"].split()
        if kind not in kinds:
            raise ValueError(f"{doc}: unknown block kind {kind!r} (known: {', '.join(sorted(kinds))})")
        if sweep_files is not None and kind in SWEEP_KINDS:
            names = [os.path.relpath(Path(f).resolve(), base).replace(os.sep, "/") for f in sweep_files]
        files = [base / n for n in names]
        results = [json.loads(f.read_text()) for f in files]
        body = kinds[kind](results, files, doc) if results else "No results yet.\n"
        return f"<!-- bench:{kind}{''.join(' ' + n for n in names)} -->\n{body.rstrip()}\n<!-- bench:end -->"

    new, n = BLOCK.subn(one, text)
    if not n:
        raise ValueError(f"{doc} has no <!-- bench:KIND FILE... --> ... <!-- bench:end --> block")
    doc.write_text(new)
    return n
