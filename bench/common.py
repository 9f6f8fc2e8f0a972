"""What every benchmark shares: a timer, the results folder (``bench/results/``, git-ignored) and the summary row.

Each ``bench_*.py`` has ``run(quick=False) -> dict`` (measure, print the details, return the numbers),
``rows(result) -> list[Row]`` (the lines it adds to the one summary table of ``run_all.py``) and a ``main()`` for
running it alone. ``quick=True`` shrinks every size so that the test suite can run the whole set in minutes: its
numbers check that the benchmark works, not what it measures.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(fn):
    """``(fn(), seconds)``."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def save_results(name: str, data: object) -> Path:
    """Write ``bench/results/{name}.json`` and return its path."""
    out = ROOT / "bench" / "results" / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(data, indent=1))
    return out


@dataclass(frozen=True)
class Row:
    """One line of the summary: what was measured, in which chapter, against which target.

    ``met`` is True / False where the target is a number the measurement can be compared with, None where the
    row only reports (a timing with no claim attached, or a claim that needs reading, such as a curve).
    """

    chapter: str
    benchmark: str
    measured: str
    target: str = ""
    met: bool | None = None

    def as_dict(self) -> dict:
        """The row as plain JSON-ready data."""
        return asdict(self)


def verdict(met: bool | None) -> str:
    """The summary's last column: ``met``, ``MISSED`` (capitals: the eye should find it) or ``-``."""
    return "-" if met is None else ("met" if met else "MISSED")


def format_summary(rows: list[Row]) -> str:
    """The rows as one fixed-width text table, in the order given."""
    header = ("chapter", "benchmark", "measured", "target", "verdict")
    lines = [(r.chapter, r.benchmark, r.measured, r.target, verdict(r.met)) for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]

    def fmt(cells) -> str:
        return " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()

    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *(fmt(line) for line in lines)])


def format_markdown(rows: list[Row]) -> str:
    """The rows as a Markdown table (for ``bench/results/summary.md`` and the notes)."""
    out = ["| chapter | benchmark | measured | target | verdict |", "|---|---|---|---|---|"]
    out += [f"| {r.chapter} | {r.benchmark} | {r.measured} | {r.target} | {verdict(r.met)} |" for r in rows]
    return "\n".join(out)


def standalone(name: str, run, rows, **kwargs) -> int:
    """What ``python bench/bench_NAME.py`` does: ``run(**kwargs)``, save ``bench/results/NAME.json``, print the
    benchmark's own rows of the summary table. Returns the exit code."""
    result = run(**kwargs)
    save_results(name, result)
    print(format_summary(rows(result)))
    return 0
