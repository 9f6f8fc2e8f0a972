"""Foundation benchmark: printed, not asserted (timings depend on the machine).

1. Load time of the default model from its GGUF file (de-quantize + write the cache) vs from the safetensors
   cache. Target: the cached load at least 5x faster.
2. Wall time of every notebook in a profile (default smoke). Target: each smoke notebook under 180 s.

    python bench/bench_foundation.py                   # both, smoke profile
    python bench/bench_foundation.py --profile cpu --skip-load
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bench_load(repeats: int = 3) -> dict:
    """Seconds for a cold load (GGUF -> cache) in a fresh cache dir, and the median of cached loads."""
    from course_utils import models

    with tempfile.TemporaryDirectory() as tmp:
        os.environ[models.CACHE_ENV] = tmp
        _, _, cold = models.timed_load()
        warm = statistics.median(models.timed_load()[2] for _ in range(repeats))
    del os.environ[models.CACHE_ENV]
    return {"gguf_load_s": round(cold, 2), "cached_load_s": round(warm, 3), "speedup": round(cold / warm, 1)}


def bench_notebooks(profile: str) -> dict:
    """Execute each notebook in a fresh kernel (warm model cache) and time it."""
    import nbformat
    from nbclient import NotebookClient
    from tqdm.auto import tqdm

    os.environ.update({"COURSE_PROFILE": profile, "HF_HUB_OFFLINE": "1"})
    times = {}
    paths = sorted((ROOT / "notebooks").glob("*.ipynb"))
    for path in tqdm(paths, desc=f"notebooks ({profile})"):
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        NotebookClient(nb, timeout=1800, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        times[path.stem] = round(time.perf_counter() - start, 1)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-notebooks", action="store_true")
    args = parser.parse_args()
    result: dict = {"profile": args.profile, "python": sys.version.split()[0], "cpus": os.cpu_count()}
    if not args.skip_load:
        result["load"] = load = bench_load()
        print(f"GGUF load (de-quantize + cache): {load['gguf_load_s']:.1f} s | cached load: "
              f"{load['cached_load_s']:.2f} s | {load['speedup']:.0f}x faster (target >= 5x)")
    if not args.skip_notebooks:
        result["notebooks_s"] = nbs = bench_notebooks(args.profile)
        for stem, seconds in nbs.items():
            flag = "" if args.profile != "smoke" or seconds < 180 else "  <-- over the 180 s smoke target"
            print(f"{stem:32} {seconds:7.1f} s{flag}")
    out = ROOT / "bench" / "results" / f"foundation_{args.profile}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"saved {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
