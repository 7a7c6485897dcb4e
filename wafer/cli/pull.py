"""``wafer pull`` and ``wafer models``."""

from __future__ import annotations

import json
import sys


def run_pull(args) -> int:
    from ..models import ModelNotFoundError, pull

    try:
        m = pull(args.name, cache_dir=args.cache_dir, keep_original=args.keep_original,
                 optimize=not args.no_optimize, progress=True, max_ppl_increase=args.max_ppl_increase)
    except (ModelNotFoundError, ValueError, RuntimeError, OSError) as e:
        print(f"wafer pull: {e}", file=sys.stderr)
        return 1
    extra = f" (original kept at {m.original_path})" if m.original_path else ""
    print(f"{m.id}: {m.path} [{m.quant}]{extra}")
    return 0


def run_models(args) -> int:
    from ..models import list_models

    rows = list_models(args.cache_dir)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    print(f"{'NAME':22} {'PULLED':7} {'QUANT':8} {'SIZE':>9}  DESCRIPTION")
    for r in rows:
        size = f"{r['size_bytes'] / 1e6:.0f} MB" if r.get("size_bytes") else "-"
        print(f"{r['name']:22} {'yes' if r.get('pulled') else 'no':7} {r.get('quant') or '-':8} {size:>9}  {r.get('description', '')}")
    return 0
