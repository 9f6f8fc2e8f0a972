"""`make bench`: every benchmark runs and lands in the one summary table (tiny sizes: this checks the machinery,
not the timings, which are printed and never asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

import run_all  # noqa: E402
from common import Row, format_markdown, format_summary, verdict  # noqa: E402


def test_summary_table_has_one_aligned_line_per_row():
    rows = [Row("04", "latency", "1.02x", "0.90-1.10x", True), Row("05", "stride", "ppl 14.7"),
            Row("06", "pool", "3x", ">= 5x", False)]
    table = format_summary(rows).splitlines()
    assert table[0].split(" | ")[:3] == ["chapter", "benchmark", "measured"]
    assert len(table) == 2 + len(rows)
    assert table[2].endswith("met") and table[3].endswith("-") and table[4].endswith("MISSED")
    assert len({line.index("|") for line in table if "|" in line}) == 1  # columns line up
    assert format_markdown(rows).count("\n") == 1 + len(rows)
    assert [verdict(x) for x in (True, False, None)] == ["met", "MISSED", "-"]


def test_select_keeps_registry_order_and_names_unknown_benchmarks():
    assert run_all.select("rouge,generation", None) == ["generation", "rouge"]
    assert "foundation" not in run_all.select(None, "foundation")
    with pytest.raises(SystemExit, match="Unknown benchmark.*'speed'.*choose from"):
        run_all.select("speed", None)
    assert "suite" not in run_all.select(None, None)  # as long as `make test`: only when asked for
    assert run_all.select("suite", None) == ["suite"] and "suite" in run_all.select(None, None, quick=True)


def test_every_bench_script_is_registered():
    scripts = {p.stem for p in BENCH.glob("bench_*.py")}
    assert scripts == set(run_all.BENCHMARKS.values())


def test_a_crashing_benchmark_is_a_failed_row_not_the_end_of_the_run(monkeypatch, capsys):
    def boom(quick=False):
        raise RuntimeError("CUDA out of memory. Fix: a smaller batch")

    monkeypatch.setitem(sys.modules, "bench_broken", types.SimpleNamespace(run=boom, rows=None, CHAPTER="04"))
    monkeypatch.setitem(run_all.BENCHMARKS, "broken", "bench_broken")
    monkeypatch.setattr(run_all, "save_results", lambda *a, **k: None)
    rows, result, _ = run_all.run_benchmark("broken", quick=True, profile="smoke")
    assert result is None and rows[0].met is False
    assert rows[0].measured.startswith("FAILED: RuntimeError: CUDA out of memory")
    assert "Traceback" in capsys.readouterr().err  # the details are printed above the table


@pytest.mark.model
def test_make_bench_quick_runs_every_benchmark_into_one_table():
    """The real benchmarks on the real model at tiny sizes, as a learner's `make bench` would run them."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COURSE_PROFILE": "smoke"}
    proc = subprocess.run([sys.executable, str(BENCH / "run_all.py"), "--quick"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "Benchmark summary" in out and "FAILED" not in out
    summary = json.loads((BENCH / "results" / "summary_quick.json").read_text())
    chapters = {r["chapter"] for r in summary["rows"]}
    assert {"00", "01", "02", "03", "04", "05", "06"} <= chapters
    assert set(summary["seconds"]) == set(run_all.BENCHMARKS)
    names = " ".join(r["benchmark"] for r in summary["rows"])
    for expected in ("KV cache", "answer search", "latency vs base", "throughput", "memory estimate",
                     "sliding-window", "ROUGE-L", "model load", "notebook runtime"):
        assert expected in names, f"no {expected!r} row in the summary"
    assert all(r["measured"] for r in summary["rows"])
    md = (BENCH / "results" / "summary_quick.md").read_text().splitlines()
    assert sum(line.startswith("| ") for line in md) == 1 + len(summary["rows"])  # the header and every row


def test_makefile_bench_runs_the_summary():
    make = (ROOT / "Makefile").read_text()
    assert "bench/run_all.py $(BENCH_ARGS)" in make.split("\nbench:")[1].split("\n\n")[0]
