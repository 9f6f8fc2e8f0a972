"""Where a notebook's time goes: execute it in a fresh kernel and list its slowest cells.

    python bench/profile_notebook.py notebooks/09_alignment_and_decoding.ipynb --profile smoke --top 8

Each cell's seconds come from the kernel's own timestamps (nbclient's ``record_timing``), so kernel start-up and
imports are counted in the first cells that pay for them. The table is printed and saved to
``bench/results/profile_NN.json``, the executed notebook to ``build/profile/``.
"""

from __future__ import annotations

import argparse
import resource
import sys
from datetime import datetime
from pathlib import Path

import nbformat
from common import ROOT, save_results  # bench/ is on sys.path when run as a script

sys.path.insert(0, str(ROOT))


def cell_seconds(nb) -> list[tuple[int, float, str]]:
    """``(cell index, seconds, first line)`` of every executed code cell, in notebook order."""
    out = []
    for i, cell in enumerate(nb.cells):
        timing = cell.get("metadata", {}).get("execution", {})
        start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
        if cell.cell_type != "code" or not (start and end):
            continue
        seconds = (datetime.fromisoformat(end.replace("Z", "+00:00"))
                   - datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()
        first = next((line for line in cell.source.splitlines() if line.strip() and not line.startswith("#")), "")
        out.append((i, seconds, first[:70]))
    return out


def main(argv: list[str] | None = None) -> int:
    from course_utils.course.book import execute_notebook

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebook", type=Path)
    ap.add_argument("--profile", default="smoke", choices=("smoke", "cpu", "gpu"))
    ap.add_argument("--top", type=int, default=10, help="how many of the slowest cells to list")
    args = ap.parse_args(argv)
    nb, total = execute_notebook(args.notebook, args.profile)
    cells = cell_seconds(nb)
    executed = ROOT / "build" / "profile" / f"{args.notebook.stem}-{args.profile}.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, executed)  # its outputs: what the lesson's "Measured" paragraphs are checked against
    # The kernel is this process's child: once it has exited, its peak resident memory is in RUSAGE_CHILDREN (KiB).
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    print(f"{args.notebook.name} ({args.profile}): {total:.1f} s in all, {sum(s for _, s, _ in cells):.1f} s in "
          f"{len(cells)} code cells; kernel peak memory {peak_gib:.1f} GiB")
    for i, seconds, first in sorted(cells, key=lambda c: -c[1])[: args.top]:
        print(f"  cell {i:3d}  {seconds:7.1f} s  {first}")
    save_results(f"profile_{args.notebook.stem.split('_')[0]}_{args.profile}",
                 {"total_s": round(total, 1), "peak_rss_gib": round(peak_gib, 2),
                  "cells": [{"cell": i, "seconds": round(s, 2), "first_line": f}
                                                        for i, s, f in cells]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
