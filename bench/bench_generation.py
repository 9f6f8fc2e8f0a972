"""Generation benchmark (chapters 0 and 1): printed, not asserted.

1. Greedy decoding throughput of the default model (chapter 0 quotes about 15 tokens/s on a 2-core CPU).
2. The KV cache (chapter 1): the same greedy generation with and without ``use_cache``, at two lengths.
   Expected: the cache is faster, increasingly so for longer outputs (without it every step re-reads the whole
   text). Target: faster at both lengths, and the speed-up larger at the longer one.

3. Plain ``model.generate`` (greedy, its default cache) against the course's ``models.generate_text`` (one
   prompt at a time) and ``models.generate_batch`` (32 at a time) on the same prompts: tokens/s, the ratio and
   whether the greedy text is the same. Target: the course path 2x plain, same text.
4. The ceiling of single-stream decoding here: at batch 1 every Linear is a matrix-vector product, so a step must
   read every weight once; the time of one pass over the Linear layers with a one-token input bounds the
   tokens/s any exact fp32 decoder can reach on this machine, whatever its overheads.

Every generation in 1-2 is forced to its full length (``min_new_tokens``), so the runs compare equal work.

    python bench/bench_generation.py
"""

from __future__ import annotations

import sys

import torch
from common import Row, standalone, timed  # bench/ is on sys.path when run as a script

PROMPTS = ["What is the capital of France?", "Name three primary colours.", "Tell me a short story about a dragon."]
#: plain vs course: questions of the kind chapters 7, 9 and 11 generate answers to
QUESTIONS = ["Explain what a language model is in two sentences.", "Give three tips for staying healthy.",
             "Write a haiku about the sea.", "Why is the sky blue?", "How do I make a cup of tea?",
             "What is photosynthesis?", "Name a famous painter and one of their works.", "What does a CPU do?"]


def _generate(model, enc, n: int, use_cache: bool = True, pad_id: int | None = None) -> None:
    with torch.no_grad():
        model.generate(**enc, max_new_tokens=n, min_new_tokens=n, do_sample=False, use_cache=use_cache,
                       pad_token_id=pad_id)


def plain_vs_course(model, tok, n_new: int, batch: int) -> dict:
    """Seconds and tokens of plain ``model.generate`` and of the course's generation on :data:`QUESTIONS`."""
    from course_utils.models import generate_batch, generate_text

    prompts = (QUESTIONS * -(-batch // len(QUESTIONS)))[:batch] if batch > 1 else QUESTIONS
    texts = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
             for q in prompts]
    side, tok.padding_side = tok.padding_side, "left"

    def plain() -> list[str]:
        out = []
        for i in range(0, len(texts), batch):
            enc = tok(texts[i:i + batch], return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            with torch.no_grad():
                ids = model.generate(**enc, max_new_tokens=n_new, do_sample=False, pad_token_id=tok.pad_token_id)
            out += [t.strip() for t in tok.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)]
        return out

    try:
        plain_texts, plain_s = timed(plain)
    finally:
        tok.padding_side = side
    if batch == 1:
        course_texts, course_s = timed(lambda: [generate_text(model, tok, q, max_new_tokens=n_new) for q in prompts])
    else:
        course_texts, course_s = timed(lambda: generate_batch(model, tok, prompts, max_new_tokens=n_new,
                                                              batch_size=batch))
    n_tokens = sum(len(tok(t, add_special_tokens=False).input_ids) for t in plain_texts)
    return {"batch": batch, "prompts": len(prompts), "tokens": n_tokens, "plain_s": round(plain_s, 2),
            "course_s": round(course_s, 2), "plain_tps": round(n_tokens / plain_s, 1),
            "course_tps": round(n_tokens / course_s, 1), "ratio": round(plain_s / course_s, 2),
            "same_text": plain_texts == course_texts}


def weight_stream_ceiling(model, repeats: int = 10) -> dict:
    """Seconds of one pass over every Linear of ``model`` with a one-token input: a decoding step's floor."""
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    inputs = {m.in_features: torch.randn(1, m.in_features, device=model.device, dtype=m.weight.dtype)
              for m in linears}
    with torch.no_grad():
        for m in linears:
            m(inputs[m.in_features])  # warm-up
        _, seconds = timed(lambda: [m(inputs[m.in_features]) for _ in range(repeats) for m in linears])
    weight_bytes = sum(m.weight.numel() * m.weight.element_size() for m in linears)
    step = seconds / repeats
    return {"weight_mb": round(weight_bytes / 1e6), "step_ms": round(step * 1000, 1),
            "gb_per_s": round(weight_bytes / step / 1e9, 1), "ceiling_tps": round(1 / step, 1)}


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
    result["plain_vs_course"] = {}
    for batch in (1, 2) if quick else (1, 32):
        r = result["plain_vs_course"][batch] = plain_vs_course(model, tok, 8 if quick else 64, batch)
        print(f"batch {batch:2}: plain generate {r['plain_tps']:.1f} tokens/s, course {r['course_tps']:.1f} tokens/s "
              f"= {r['ratio']:.2f}x, same greedy text: {r['same_text']}")
    result["ceiling"] = c = weight_stream_ceiling(model)
    print(f"one pass over the {c['weight_mb']} MB of Linear weights: {c['step_ms']} ms ({c['gb_per_s']} GB/s) = "
          f"at most {c['ceiling_tps']} tokens/s for exact single-stream decoding here")
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
    for batch, r in result.get("plain_vs_course", {}).items():
        out.append(Row("00", f"course vs plain generate, batch {batch}, greedy",
                       f"{r['course_tps']:.1f} vs {r['plain_tps']:.1f} tokens/s = {r['ratio']:.2f}x, "
                       f"{'same' if r['same_text'] else 'DIFFERENT'} text", ">= 2x, same text",
                       r["ratio"] >= 2 and r["same_text"]))
    if "ceiling" in result:
        c, plain = result["ceiling"], result["plain_vs_course"][min(result["plain_vs_course"])]
        out.append(Row("00", "single-stream ceiling: one read of every weight per token",
                       f"{c['ceiling_tps']:.1f} tokens/s ({c['weight_mb']} MB at {c['gb_per_s']} GB/s); plain "
                       f"reaches {plain['plain_tps'] / c['ceiling_tps']:.0%} of it"))
    return out


def main() -> int:
    return standalone("generation", run, rows)


if __name__ == "__main__":
    sys.exit(main())
