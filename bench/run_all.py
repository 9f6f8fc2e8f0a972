"""Every benchmark the chapters define, run one after the other, summarised in one table (``make bench``).

    python bench/run_all.py                       # everything; notebooks timed in the smoke profile
    python bench/run_all.py --only prompting,rouge
    python bench/run_all.py --skip foundation     # no notebook timings (the longest part, about 25 min)
    python bench/run_all.py --profile cpu         # the notebooks in the cpu profile (about 3 hours on 2 cores)
    python bench/run_all.py --quick               # tiny sizes: checks the benchmarks run (the test suite's use)
    python bench/run_all.py --only suite          # `make test` and `make test-fast`, timed (as long as the suite)

Each benchmark prints its details as it goes; the table at the end has one row per measurement with the
chapter, the target where the course states one and whether it was met. Timings are printed, not asserted: a
missed target is reported, not a failure; a benchmark that crashes is (exit code 1). The table is also written
to bench/results/summary.md and summary.json, with every benchmark's own numbers in bench/results/NAME.json.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the bench_* modules import `common` as a sibling

from common import Row, format_markdown, format_summary, save_results  # noqa: E402

#: name -> module; the order they run in (cheap first; the notebooks last).
BENCHMARKS = {
    "generation": "bench_generation",   # 00 tokens/s, 01 KV cache
    "prompting": "bench_prompting",     # 02 answer search, 03 shared few-shot prefix
    "latency": "bench_latency",         # 04 adapters vs merged LoRA
    "peft": "bench_peft",               # 04 engine vs Trainer throughput
    "memory": "bench_memory",           # 05 fine-tuning memory estimate vs measured
    "context": "bench_context",         # 06 sliding-window stride sweep
    "rouge": "bench_rouge",             # 07 Self-Instruct novelty filter
    "foundation": "bench_foundation",   # 00 model load, every chapter's notebook runtime
    "suite": "bench_suite",             # make test and make test-fast, timed
}
#: benchmarks that run only when named in --only (or at --quick sizes): the suite takes as long as `make test`
ON_REQUEST = {"suite"}


def select(only: str | None, skip: str | None, quick: bool = False) -> list[str]:
    """The benchmark names to run, in registry order; an unknown name is an error naming the known ones.

    :data:`ON_REQUEST` benchmarks run only when ``only`` names them, or at ``quick`` sizes."""
    names = list(BENCHMARKS)
    for arg in (only, skip):
        unknown = [n for n in (arg or "").split(",") if n and n not in BENCHMARKS]
        if unknown:
            raise SystemExit(f"Unknown benchmark(s) {unknown}; choose from {names}.")
    if only:
        names = [n for n in names if n in only.split(",")]
    elif not quick:
        names = [n for n in names if n not in ON_REQUEST]
    return [n for n in names if n not in (skip or "").split(",")]


def run_benchmark(name: str, quick: bool, profile: str) -> tuple[list[Row], dict | None, float]:
    """Run one benchmark; a crash becomes a FAILED row (the others still run) instead of ending the whole set."""
    module = importlib.import_module(BENCHMARKS[name])
    kwargs = {"profile": profile} if name == "foundation" else {}
    start = time.perf_counter()
    try:
        result = module.run(quick=quick, **kwargs)
        rows = module.rows(result)
    except Exception as err:  # noqa: BLE001 - reported in the table, with the traceback above it
        traceback.print_exc()
        chapter = getattr(module, "CHAPTER", "--")
        return [Row(chapter, name, f"FAILED: {type(err).__name__}: {str(err).splitlines()[0][:80]}", "runs",
                    False)], None, time.perf_counter() - start
    save_results(f"{name}_quick" if quick else name, result)
    return rows, result, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", help=f"comma-separated, from {','.join(BENCHMARKS)}")
    p.add_argument("--skip", help="comma-separated benchmarks to leave out")
    p.add_argument("--profile", default="smoke", help="profile the notebooks are timed in (default smoke)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that every benchmark runs")
    args = p.parse_args(argv)
    names = select(args.only, args.skip, args.quick)
    import torch  # after argument parsing: --help stays instant

    all_rows, seconds, failed = [], {}, []
    for name in names:
        print(f"\n=== {name} ({BENCHMARKS[name]}.py) ===", flush=True)
        rows, result, seconds[name] = run_benchmark(name, args.quick, args.profile)
        all_rows += rows
        if result is None:
            failed.append(name)
    all_rows.sort(key=lambda r: r.chapter)  # stable: each chapter's rows keep their order
    machine = (f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} at "
               f"{torch.get_num_threads()} threads, CUDA {'yes' if torch.cuda.is_available() else 'no'}")
    print(f"\nBenchmark summary ({machine}{', quick sizes' if args.quick else ''})\n")
    print(format_summary(all_rows))
    missed = sum(r.met is False for r in all_rows)
    print(f"\n{len(all_rows)} rows, {sum(r.met is True for r in all_rows)} targets met, {missed} missed; "
          f"benchmarks took {', '.join(f'{n} {s:.0f} s' for n, s in seconds.items())}")
    stem = "summary_quick" if args.quick else "summary"
    save_results(stem, {"machine": machine, "quick": args.quick, "profile": args.profile, "seconds": seconds,
                        "rows": [r.as_dict() for r in all_rows]})
    (HERE / "results" / f"{stem}.md").write_text(f"Benchmark summary ({machine})\n\n{format_markdown(all_rows)}\n")
    if failed:
        print(f"FAILED to run: {', '.join(failed)} (tracebacks above)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
