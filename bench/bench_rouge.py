"""Self-Instruct novelty filter benchmark (chapter 7): printed, not asserted.

Times the highest ROUGE-L of a candidate instruction against pools of 100, 1,000 and 5,000 random 10-20-word
instructions, 20 queries each (half fresh, half near-duplicates of a pool text), fixed seed:

* brute force: ``rouge_l`` against every pool text, tokens precomputed (so only the LCS is timed);
* ``RougePool.max_similarity``: bag-of-words upper bound over the whole pool, exact LCS only where it can win.

Both must give the same scores. Target: the pool at least 5x faster at 5,000 texts. Results also go to
bench/results/rouge.json.

    python bench/bench_rouge.py
"""

from __future__ import annotations

import random
import sys

from common import Row, standalone, timed  # bench/ is on sys.path when run as a script

CHAPTER = "07"


def run(quick: bool = False) -> dict:
    """Brute force vs ``RougePool`` per pool size; ``quick``: pools of 100 and 300 only."""
    from course_utils import rouge as R
    from course_utils.rouge import perturb_instruction, random_instruction

    rng = random.Random(0)
    n_queries = 20
    result = {}
    print(f"{'pool':>6} | {'brute ms/query':>14} | {'pool ms/query':>13} | {'speed-up':>8} | {'build ms':>8}")
    for size in (100, 300) if quick else (100, 1_000, 5_000):
        texts = [random_instruction(rng) for _ in range(size)]
        queries = [random_instruction(rng) for _ in range(n_queries // 2)]
        queries += [perturb_instruction(rng, rng.choice(texts)) for _ in range(n_queries - len(queries))]
        rows = [R.tokenize(t) for t in texts]
        brute, t_brute = timed(lambda: [max(R.rouge_l(R.tokenize(q), row) for row in rows) for q in queries])
        pool, t_build = timed(lambda: R.RougePool(texts))
        fast, t_pool = timed(lambda: [pool.max_similarity(q)[0] for q in queries])
        assert fast == brute, "RougePool disagrees with brute force"
        ms_brute, ms_pool = 1e3 * t_brute / n_queries, 1e3 * t_pool / n_queries
        result[size] = {"brute_ms_per_query": round(ms_brute, 3), "pool_ms_per_query": round(ms_pool, 3),
                        "speedup": round(t_brute / t_pool, 1), "build_ms": round(1e3 * t_build, 1)}
        print(f"{size:>6,} | {ms_brute:>14.2f} | {ms_pool:>13.3f} | {t_brute / t_pool:>7.1f}x | "
              f"{1e3 * t_build:>8.1f}")
    return result


def rows(result: dict) -> list[Row]:
    """One row per pool size; the 5x target applies to the largest pool."""
    largest = max(result)
    return [Row(CHAPTER, f"ROUGE-L novelty filter, pool of {size:,}",
                f"{r['pool_ms_per_query']:.3f} ms/query, {r['speedup']:.1f}x brute force",
                ">= 5x at 5,000" if size == largest else "",
                r["speedup"] >= 5 if size == largest == 5_000 else None)
            for size, r in result.items()]


def main() -> int:
    return standalone("rouge", run, rows)


if __name__ == "__main__":
    sys.exit(main())
