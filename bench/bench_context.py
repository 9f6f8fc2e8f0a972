"""Sliding-window perplexity: quality against compute (chapter 6): printed, not asserted.

A document longer than the window is scored window by window. With stride = window each chunk starts from
nothing; a smaller stride gives every scored token more context at the cost of more forward passes. Expected:
the perplexity falls as the stride shrinks while the tokens read (compute) grow about as window / stride.
Targets: the smallest stride has a lower perplexity than the non-overlapping chunks, and reads more tokens.

    python bench/bench_context.py
"""

from __future__ import annotations

import sys

from common import Row, standalone  # bench/ is on sys.path when run as a script

CHAPTER = "06"


def run(quick: bool = False) -> dict:
    """``long_context.stride_sweep`` on the course corpus; ``quick``: 256 tokens, window 64."""
    from course_utils import long_context
    from course_utils.data.corpus import load_corpus
    from course_utils.models import load_model

    model, tok = load_model()
    doc_tokens, window = (256, 64) if quick else (2048, 256)
    doc = tok(load_corpus("test"), return_tensors="pt").input_ids[0][:doc_tokens]
    strides = [window, window // 2, window // 4]
    sweep = long_context.stride_sweep(model, doc, window, strides)
    out = []
    for r in sweep:
        out.append({"stride": r.stride, "perplexity": round(r.perplexity, 3), "passes": r.forward_passes,
                    "tokens_read": r.tokens_read, "seconds": round(r.seconds, 2)})
        print(f"window {window} stride {r.stride:4}: perplexity {r.perplexity:7.2f}, {r.forward_passes:3} passes, "
              f"{r.tokens_read:6} tokens read, {r.seconds:5.1f} s")
    return {"doc_tokens": len(doc), "window": window, "sweep": out}


def rows(result: dict) -> list[Row]:
    """One report row per stride, then the trade-off check."""
    w, sweep = result["window"], result["sweep"]
    out = [Row(CHAPTER, f"sliding-window perplexity, window {w}, stride {r['stride']} ({result['doc_tokens']} tokens)",
               f"ppl {r['perplexity']:.2f}, {r['tokens_read']} tokens read, {r['seconds']:.1f} s") for r in sweep]
    chunks, finest = sweep[0], sweep[-1]
    out.append(Row(CHAPTER, "smaller stride: lower perplexity, more compute",
                   f"ppl {chunks['perplexity']:.2f} -> {finest['perplexity']:.2f}, tokens read "
                   f"{chunks['tokens_read']} -> {finest['tokens_read']}", "lower ppl, more tokens read",
                   finest["perplexity"] < chunks["perplexity"] and finest["tokens_read"] > chunks["tokens_read"]))
    return out


def main() -> int:
    return standalone("context", run, rows)


if __name__ == "__main__":
    sys.exit(main())
