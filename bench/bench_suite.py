"""Test-suite benchmark: the README's test command and the quick loop, timed (printed, not asserted).

1. ``make test`` (pytest with the cpu-size claim tests, every notebook under nbmake, the browser test). Target:
   under 30 minutes on 2 cores, so that CI (90 minutes for installing and testing) has room.
2. ``make test-fast`` (unit tests on tiny models). Target: under 5 minutes.

It runs only when asked for (``make bench BENCH_ARGS="--only suite"``): it takes as long as the suite.
``quick`` times one small test file instead, to check the mechanism.

    python bench/bench_suite.py
"""

from __future__ import annotations

import os
import subprocess
import sys

from common import ROOT, Row, standalone, timed  # bench/ is on sys.path when run as a script

CHAPTER = "all"
TARGETS_MIN = {"make test": 30, "make test-fast": 5}


def _run(cmd: list[str]) -> float:
    """Seconds ``cmd`` took in the repository root; a failing run raises (its timing would mean nothing)."""
    proc, seconds = timed(lambda: subprocess.run(cmd, cwd=ROOT, env={**os.environ}, capture_output=True, text=True))
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}): "
                           f"{proc.stdout[-800:]}{proc.stderr[-800:]}")
    return seconds


def run(quick: bool = False) -> dict:
    """Seconds of each command; ``quick``: one small test file, standing for both."""
    if quick:
        seconds = _run([sys.executable, "-m", "pytest", "-q", "tests/test_config.py"])
        return {"quick": True, "seconds": {name: round(seconds, 1) for name in TARGETS_MIN}}
    out = {}
    for name in TARGETS_MIN:
        out[name] = round(_run(["make", name.split()[1]]), 1)
        print(f"{name}: {out[name] / 60:.1f} min (target < {TARGETS_MIN[name]} min)")
    return {"quick": False, "seconds": out}


def rows(result: dict) -> list[Row]:
    """One row per command against its target."""
    what = " (quick: one test file)" if result["quick"] else ""
    return [Row(CHAPTER, f"{name}, wall time{what}", f"{s / 60:.1f} min", f"< {TARGETS_MIN[name]} min",
                None if result["quick"] else s < 60 * TARGETS_MIN[name]) for name, s in result["seconds"].items()]


def main() -> int:
    return standalone("suite", run, rows)


if __name__ == "__main__":
    sys.exit(main())
