"""Foundation benchmark (chapter 0 and every chapter's runtime): printed, not asserted (timings depend on the
machine).

1. Load time of the default model from its GGUF file (de-quantize + write the cache) vs from the safetensors
   cache. Target: the cached load at least 5x faster.
2. Wall time of every notebook in a profile (default smoke), each in a fresh kernel with the model cache warm.
   Targets: each smoke notebook under 180 s; in the cpu profile each under 20 minutes and all of them under 90.
   These are the numbers of the chapters' "Runtime" tables.

    python bench/bench_foundation.py                   # both, smoke profile
    python bench/bench_foundation.py --profile cpu --skip-load
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from common import Row, standalone  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parent.parent
SMOKE_LIMIT_S = 180
CPU_LIMIT_S, CPU_TOTAL_LIMIT_S = 20 * 60, 90 * 60


def bench_load(repeats: int = 3) -> dict:
    """Seconds for a cold load (GGUF -> cache) in a fresh cache dir, and the median of cached loads."""
    from course_utils import models

    with tempfile.TemporaryDirectory() as tmp:
        old = os.environ.get(models.CACHE_ENV)
        os.environ[models.CACHE_ENV] = tmp
        try:
            _, _, cold = models.timed_load()
            warm = statistics.median(models.timed_load()[2] for _ in range(repeats))
        finally:  # later loads in this process must use the real cache again
            if old is None:
                del os.environ[models.CACHE_ENV]
            else:
                os.environ[models.CACHE_ENV] = old
    return {"gguf_load_s": round(cold, 2), "cached_load_s": round(warm, 3), "speedup": round(cold / warm, 1)}


def bench_notebooks(profile: str, chapters: list[str] | None = None) -> dict:
    """Execute each notebook (or those whose name starts with one of ``chapters``) in a fresh kernel; seconds."""
    from tqdm.auto import tqdm

    from course_utils.course.book import execute_notebook

    paths = sorted((ROOT / "notebooks").glob("*.ipynb"))
    if chapters:
        paths = [p for p in paths if p.stem.split("_")[0] in chapters]
    times = {}
    for path in tqdm(paths, desc=f"notebooks ({profile})"):
        times[path.stem] = round(execute_notebook(path, profile)[1], 1)
    return times


def run(quick: bool = False, profile: str = "smoke", load: bool = True, notebooks: bool = True) -> dict:
    """The load benchmark and the notebook timings; ``quick``: one cached load, chapter 00's notebook only."""
    result: dict = {"profile": profile, "python": sys.version.split()[0], "cpus": os.cpu_count()}
    if load:
        result["load"] = r = bench_load(repeats=1 if quick else 3)
        print(f"GGUF load (de-quantize + cache): {r['gguf_load_s']:.1f} s | cached load: "
              f"{r['cached_load_s']:.2f} s | {r['speedup']:.0f}x faster (target >= 5x)")
    if notebooks:
        result["notebooks_s"] = nbs = bench_notebooks(profile, ["00"] if quick else None)
        for stem, seconds in nbs.items():
            flag = "" if profile != "smoke" or seconds < SMOKE_LIMIT_S else "  <-- over the 180 s smoke target"
            print(f"{stem:32} {seconds:7.1f} s{flag}")
    return result


def rows(result: dict) -> list[Row]:
    """The load speed-up (target 5x), one runtime row per notebook (targets: 180 s smoke, 20 min cpu) and, in the
    cpu profile, their total (target 90 min)."""
    out = []
    if "load" in result:
        r = result["load"]
        out.append(Row("00", "model load: safetensors cache vs GGUF",
                       f"{r['cached_load_s']:.2f} s vs {r['gguf_load_s']:.1f} s = {r['speedup']:.0f}x", ">= 5x",
                       r["speedup"] >= 5))
    profile = result["profile"]
    limit = {"smoke": SMOKE_LIMIT_S, "cpu": CPU_LIMIT_S}.get(profile)
    for stem, seconds in result.get("notebooks_s", {}).items():
        out.append(Row(stem.split("_")[0], f"notebook runtime ({profile} profile)", f"{seconds:.0f} s",
                       f"< {limit} s" if limit else "", seconds < limit if limit else None))
    times = result.get("notebooks_s", {})
    if profile == "cpu" and len(times) > 1:
        total = sum(times.values())
        out.append(Row("all", f"all {len(times)} notebooks, cpu profile", f"{total / 60:.0f} min",
                       f"< {CPU_TOTAL_LIMIT_S // 60} min", total < CPU_TOTAL_LIMIT_S))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-notebooks", action="store_true")
    args = parser.parse_args()
    return standalone(f"foundation_{args.profile}", run, rows, profile=args.profile, load=not args.skip_load,
                      notebooks=not args.skip_notebooks)


if __name__ == "__main__":
    sys.exit(main())
