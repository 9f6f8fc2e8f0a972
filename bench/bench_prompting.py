"""Answer-search benchmark (chapters 2 and 3): printed, not asserted.

Scores 60 texts x 5 answers (the seed's answer space) with the naive definition (one forward per text and
answer) and with the batched engine (batched texts, the prompt read once, its KV cache reused for every
answer). Target: the engine at least 5x faster on CPU. Also the same with an 8-shot shared prefix (chapter 3's
in-context learning, where the demonstrations are read once for all texts).

    python bench/bench_prompting.py
"""

from __future__ import annotations

import sys

from common import Row, standalone, timed  # bench/ is on sys.path when run as a script


def run(quick: bool = False) -> dict:
    """Naive vs engine seconds, zero-shot and 8-shot; ``quick``: 4 texts, 2 shots."""
    from course_utils import icl
    from course_utils import prompting as pr
    from course_utils.data import load_sentiment
    from course_utils.models import load_model

    model, tok = load_model()
    n, shots = (4, 2) if quick else (60, 8)
    texts = [e.text for e in load_sentiment("test", limit=n)]
    answers = pr.Verbalizer(pr.SEED_LABEL_WORDS).answers
    template = pr.Template(pr.SEED_TEMPLATE)
    demos = icl.format_demonstrations(template, pr.Verbalizer(pr.SEED_LABEL_WORDS),
                                      icl.select_balanced(load_sentiment("train"), shots, seed=0))
    result = {}
    for name, prefix in (("zero-shot", ""), (f"{shots}-shot prefix", demos)):
        naive, t_naive = timed(lambda: pr.answer_search_naive(model, tok, template, texts, answers,
                                                              shared_prefix=prefix))
        fast, t_fast = timed(lambda: pr.answer_search(model, tok, template, texts, answers, batch_size=32,
                                                      shared_prefix=prefix))
        diff = (naive - fast).abs().max().item()
        result[name] = {"texts": n, "answers": len(answers), "naive_s": round(t_naive, 2),
                        "engine_s": round(t_fast, 2), "speedup": round(t_naive / t_fast, 1), "max_abs_diff": diff}
        print(f"{name:14} {n} texts x {len(answers)} answers: naive {t_naive:6.2f} s | engine {t_fast:5.2f} s | "
              f"{t_naive / t_fast:4.1f}x (target >= 5x) | max |diff| {diff:.1e}")
    return result


def rows(result: dict) -> list[Row]:
    """Speed-up rows (target 5x) and the agreement of the two scorings (target: the same scores)."""
    out = []
    for name, r in result.items():
        chapter = "02" if name == "zero-shot" else "03"
        out.append(Row(chapter, f"answer search, {name}, {r['texts']} texts x {r['answers']} answers",
                       f"engine {r['engine_s']:.2f} s vs naive {r['naive_s']:.2f} s = {r['speedup']:.1f}x",
                       ">= 5x", r["speedup"] >= 5))
        out.append(Row(chapter, f"answer search, {name}: engine = naive scores", f"max |diff| {r['max_abs_diff']:.1e}",
                       "< 1e-4", r["max_abs_diff"] < 1e-4))
    return out


def main() -> int:
    return standalone("prompting", run, rows)


if __name__ == "__main__":
    sys.exit(main())
