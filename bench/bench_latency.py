"""Inference latency of the fine-tuning methods as deployed (chapter 4): printed, not asserted.

The seed's claim: adapters add inference latency (extra layers in series), while LoRA merged into the weights
has exactly the base model's matrices and adds none. One forward pass of a 4-token input at batch 1 (close to
one generation step), the models taking turns (``latency.compare_latency``). The methods are freshly
initialised, not trained: latency depends on the shapes, not on the values.
Targets: merged LoRA within 10% of the base (timing noise on a shared 2-core CPU is a few percent); adapters
more than 5% slower than the base, so that the difference is not noise. A batch-1 forward of a 135M model on a
CPU is bound by reading the weights from memory, which the adapters' small matrices barely add to, so the
difference is small here: 1.01x at 2 threads, 1.14-1.16x in two runs at 1 thread (2026-12-02, this 2-core CPU).

    python bench/bench_latency.py
"""

from __future__ import annotations

import sys

import torch
from common import Row, standalone  # bench/ is on sys.path when run as a script

CHAPTER = "04"
SERVED = ("LoRA r=16", "adapter b=16", "prefix 20 tokens")


def run(quick: bool = False, tokens: int = 4) -> dict:
    """Seconds per forward of the base and each method as served; ``quick``: fewer timing rounds."""
    from course_utils.latency import compare_latency
    from course_utils.models import load_model
    from course_utils.peft_methods import METHODS

    model, tok = load_model()
    torch.manual_seed(0)
    served = {"base": model, **{name: METHODS[name].deployable(METHODS[name].build(model, tok)) for name in SERVED}}
    probe = torch.randint(100, 1000, (1, tokens), generator=torch.Generator().manual_seed(0)).to(model.device)
    times = compare_latency(served, probe, rounds=2 if quick else 5, repeats=3 if quick else 5)
    result = {name: {"ms": round(1e3 * t, 2), "vs_base": round(t / times["base"], 3)} for name, t in times.items()}
    for name, r in result.items():
        print(f"{name:18} {r['ms']:7.2f} ms per forward ({r['vs_base']:.2f}x base)")
    return {"tokens": tokens, "latency": result}


def rows(result: dict) -> list[Row]:
    """Each served method against the base, with the seed's expectation where it makes one."""
    targets = {"LoRA r=16": ("0.90-1.10x (merged: the base's matrices)", lambda x: 0.9 <= x <= 1.1),
               "adapter b=16": ("> 1.05x (layers in series; beyond the noise)", lambda x: x > 1.05)}
    out = []
    for name, r in result["latency"].items():
        if name == "base":
            continue
        target, check = targets.get(name, ("", None))
        out.append(Row(CHAPTER, f"latency vs base, {name}{' merged' if name.startswith('LoRA') else ''}, batch 1 x "
                                f"{result['tokens']} tokens",
                       f"{r['ms']:.1f} ms vs {result['latency']['base']['ms']:.1f} ms = {r['vs_base']:.2f}x", target,
                       check(r["vs_base"]) if check else None))
    return out


def main() -> int:
    return standalone("latency", run, rows)


if __name__ == "__main__":
    sys.exit(main())
