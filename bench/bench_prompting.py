"""Answer-search benchmark: printed, not asserted.

Scores 60 texts x 5 answers (the seed's answer space) with the naive definition (one forward per text and
answer) and with the batched engine (batched texts, the prompt read once, its KV cache reused for every
answer). Target: the engine at least 5x faster on CPU. Also the same with an 8-shot shared prefix.

    python bench/bench_prompting.py
"""

from __future__ import annotations

import sys

import torch
from common import save_results, timed  # bench/common.py: this folder is on sys.path when run as a script


def main() -> int:
    from course_utils import icl
    from course_utils import prompting as pr
    from course_utils.data import load_sentiment
    from course_utils.models import load_model

    torch.set_num_threads(torch.get_num_threads())
    model, tok = load_model()
    texts = [e.text for e in load_sentiment("test", limit=60)]
    answers = pr.Verbalizer(pr.SEED_LABEL_WORDS).answers
    template = pr.Template(pr.SEED_TEMPLATE)
    demos = icl.format_demonstrations(template, pr.Verbalizer(pr.SEED_LABEL_WORDS),
                                      icl.select_balanced(load_sentiment("train"), 8, seed=0))
    result = {}
    for name, prefix in (("zero-shot", ""), ("8-shot prefix", demos)):
        naive, t_naive = timed(lambda: pr.answer_search_naive(model, tok, template, texts, answers,
                                                              shared_prefix=prefix))
        fast, t_fast = timed(lambda: pr.answer_search(model, tok, template, texts, answers, batch_size=32,
                                                      shared_prefix=prefix))
        diff = (naive - fast).abs().max().item()
        result[name] = {"naive_s": round(t_naive, 2), "engine_s": round(t_fast, 2),
                        "speedup": round(t_naive / t_fast, 1), "max_abs_diff": diff}
        print(f"{name:14} 60 texts x {len(answers)} answers: naive {t_naive:6.2f} s | engine {t_fast:5.2f} s | "
              f"{t_naive / t_fast:4.1f}x (target >= 5x) | max |diff| {diff:.1e}")
    save_results("prompting", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
