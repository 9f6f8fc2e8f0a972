"""Generation benchmark (chapters 0 and 1): printed, not asserted.

1. Greedy decoding throughput of the default model (chapter 0 quotes about 15 tokens/s on a 2-core CPU).
2. The KV cache (chapter 1): the same greedy generation with and without ``use_cache``, at two lengths.
   Expected: the cache is faster, increasingly so for longer outputs (without it every step re-reads the whole
   text). Target: faster at both lengths, and the speed-up larger at the longer one.

Every generation is forced to its full length (``min_new_tokens``), so the runs compare equal work.

    python bench/bench_generation.py
"""

from __future__ import annotations

import sys

import torch
from common import Row, standalone, timed  # bench/ is on sys.path when run as a script

PROMPTS = ["What is the capital of France?", "Name three primary colours.", "Tell me a short story about a dragon."]


def _generate(model, enc, n: int, use_cache: bool = True, pad_id: int | None = None) -> None:
    with torch.no_grad():
        model.generate(**enc, max_new_tokens=n, min_new_tokens=n, do_sample=False, use_cache=use_cache,
                       pad_token_id=pad_id)


def run(quick: bool = False) -> dict:
    """Tokens/s over the prompts, then cached vs uncached seconds at two lengths; ``quick``: short outputs."""
    from course_utils.models import load_model

    model, tok = load_model()
    n_new = 8 if quick else 32
    encs = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                    return_tensors="pt", return_dict=True) for p in PROMPTS]
    _generate(model, encs[0], 2, pad_id=tok.pad_token_id)  # warm-up: first calls pay for allocation
    _, seconds = timed(lambda: [_generate(model, e, n_new, pad_id=tok.pad_token_id) for e in encs])
    result = {"generation": {"prompts": len(encs), "new_tokens": n_new * len(encs), "seconds": round(seconds, 2),
                             "tokens_per_s": round(n_new * len(encs) / seconds, 1), "device": str(model.device)}}
    print(f"greedy generation: {n_new * len(encs)} tokens in {seconds:.1f} s = "
          f"{n_new * len(encs) / seconds:.1f} tokens/s on {model.device}")
    enc = tok(PROMPTS[-1], return_tensors="pt")
    result["kv_cache"] = {}
    for n in (4, 12) if quick else (16, 96):
        cached = timed(lambda: _generate(model, enc, n, True, tok.pad_token_id))[1]
        uncached = timed(lambda: _generate(model, enc, n, False, tok.pad_token_id))[1]
        result["kv_cache"][n] = {"cached_s": round(cached, 3), "uncached_s": round(uncached, 3),
                                 "speedup": round(uncached / cached, 2)}
        print(f"{n:3} new tokens: with KV cache {cached:.2f} s, without {uncached:.2f} s = {uncached / cached:.1f}x")
    return result


def rows(result: dict) -> list[Row]:
    """Throughput (report), the cache's speed-up at each length (target > 1) and its growth (target: grows)."""
    g = result["generation"]
    out = [Row("00", f"greedy generation, {g['new_tokens']} tokens ({g['device']})",
               f"{g['tokens_per_s']:.1f} tokens/s", "about 15 on a 2-core CPU")]
    kv = result["kv_cache"]
    for n, r in kv.items():
        out.append(Row("01", f"KV cache speed-up, {n} new tokens",
                       f"{r['cached_s']:.2f} s vs {r['uncached_s']:.2f} s = {r['speedup']:.1f}x", "> 1x",
                       r["speedup"] > 1))
    short, long = (kv[n]["speedup"] for n in sorted(kv))
    out.append(Row("01", "KV cache speed-up grows with the output length", f"{short:.1f}x -> {long:.1f}x",
                   "grows", long > short))
    return out


def main() -> int:
    return standalone("generation", run, rows)


if __name__ == "__main__":
    sys.exit(main())
