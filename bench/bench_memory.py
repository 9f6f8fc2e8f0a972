"""Fine-tuning memory benchmark (chapter 5): estimate vs measured peak, printed, not asserted.

For the real SmolLM2-135M (fp32, CPU) it runs real AdamW steps (lr=0) for full fine-tuning and LoRA (r=8 on
q_proj, v_proj), with and without gradient checkpointing, and compares the measured peak (parameters +
optimizer state + the step's peak allocation) with ``estimate_from_model(...).peak`` and with the
rule-of-thumb ``.total``. Target: within 20%. Also the time per step, since checkpointing trades time for
memory, and the 0.1B-70B estimate table. Writes bench/results/memory.json.

    python bench/bench_memory.py                       # batch x seq 4x64 and 8x128, a few minutes on 2 cores
    python bench/bench_memory.py --shapes 4x64 --threads 1
"""

from __future__ import annotations

import argparse
import copy
import sys
import warnings

import torch
from common import Row, standalone  # bench/ is on sys.path when run as a script

MIB = 2**20


def lora(model):
    from peft import LoraConfig, get_peft_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # peft reads a renamed transformers property
        return get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))


CHAPTER = "05"


def run(quick: bool = False, shapes: str = "4x64,8x128", threads: int | None = None, repeat: int = 2) -> dict:
    """Estimated vs measured peaks and the checkpointing trade-off; ``quick``: one 2x16 shape, one timed step."""
    from course_utils import memory as mem
    from course_utils.models import load_model

    if quick:
        shapes, repeat = "2x16", 1
    if threads:
        torch.set_num_threads(threads)
    sizes = [tuple(int(x) for x in s.split("x")) for s in shapes.split(",")]

    base, _ = load_model()
    models = {"full": base, "lora": lora(copy.deepcopy(base))}
    rows = []
    print(f"SmolLM2-135M fp32 on CPU ({torch.get_num_threads()} threads), AdamW lr=0, sdpa attention")
    print(f"{'setting':<24} {'estimate':>9} {'rule-of-thumb':>13} {'measured':>9} {'est/meas':>8} "
          f"{'rot/meas':>8} {'s/step':>7}")
    for batch, seq in sizes:
        for mode, model in models.items():
            for gc in (False, True):
                if gc:
                    model.activation_checkpointing_enable()
                else:
                    model.activation_checkpointing_disable()
                m = mem.measure_training_step(model, batch, seq, time_steps=repeat)
                est = mem.estimate_from_model(model, batch_size=batch, seq_len=seq)
                row = {"batch": batch, "seq": seq, "mode": mode, "checkpointing": gc,
                       "estimate_mib": round(est.peak / MIB, 1), "rule_of_thumb_mib": round(est.total / MIB, 1),
                       "measured_mib": round(m.peak / MIB, 1), "baseline_mib": round(m.baseline / MIB, 1),
                       "ratio": round(est.peak / m.peak, 3), "rule_of_thumb_ratio": round(est.total / m.peak, 3),
                       "s_per_step": round(m.seconds, 2),
                       "estimate_parts_mib": {k: round(v * 1024, 1) for k, v in est.as_gib().items()}}
                rows.append(row)
                name = f"{batch}x{seq} {mode}{' +ckpt' if gc else ''}"
                flag = "" if 0.8 <= row["ratio"] <= 1.2 else "  <-- off by more than 20%"
                print(f"{name:<24} {row['estimate_mib']:>5.0f} MiB {row['rule_of_thumb_mib']:>9.0f} MiB "
                      f"{row['measured_mib']:>5.0f} MiB {row['ratio']:>8.3f} {row['rule_of_thumb_ratio']:>8.3f} "
                      f"{row['s_per_step']:>7.2f}{flag}")
        models["full"].activation_checkpointing_disable()
        models["lora"].activation_checkpointing_disable()

    print("\nGradient checkpointing: memory saved vs time paid (measured peaks)")
    tradeoff = []
    for batch, seq in sizes:
        for mode in models:
            off, on = (next(r for r in rows if (r["batch"], r["seq"], r["mode"], r["checkpointing"]) ==
                            (batch, seq, mode, gc)) for gc in (False, True))
            t = {"batch": batch, "seq": seq, "mode": mode,
                 "peak_mib": [off["measured_mib"], on["measured_mib"]],
                 "memory_saved": round(1 - on["measured_mib"] / off["measured_mib"], 3),
                 "step_s": [off["s_per_step"], on["s_per_step"]],
                 "time_overhead": round(on["s_per_step"] / off["s_per_step"] - 1, 3)}
            tradeoff.append(t)
            print(f"{batch}x{seq} {mode:<5} peak {off['measured_mib']:6.0f} -> {on['measured_mib']:6.0f} MiB "
                  f"({100 * t['memory_saved']:4.1f}% less), step {off['s_per_step']:5.2f} -> "
                  f"{on['s_per_step']:5.2f} s ({100 * t['time_overhead']:+.0f}%)")

    table = mem.memory_table()
    print("\nEstimates, bf16 + mixed-precision AdamW (fused), batch 1 x 512 tokens, LoRA r=8 on q,v (GiB):")
    print(mem.format_memory_table(table))
    return {"threads": torch.get_num_threads(), "measured": rows, "checkpointing": tradeoff, "table": table}


def rows(result: dict) -> list[Row]:
    """Estimate / measured per setting (target within 20%) and what checkpointing saves and costs (report)."""
    out = []
    for r in result["measured"]:
        out.append(Row(CHAPTER, f"memory estimate, {r['mode']} {r['batch']}x{r['seq']}"
                                f"{' + checkpointing' if r['checkpointing'] else ''}",
                       f"{r['estimate_mib']:.0f} MiB est. / {r['measured_mib']:.0f} MiB measured = {r['ratio']:.2f}",
                       "0.80-1.20", 0.8 <= r["ratio"] <= 1.2))
    for t in result["checkpointing"]:
        out.append(Row(CHAPTER, f"gradient checkpointing, {t['mode']} {t['batch']}x{t['seq']}",
                       f"{100 * t['memory_saved']:.0f}% less memory, {100 * t['time_overhead']:+.0f}% time per step"))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="4x64,8x128", help="comma-separated BATCHxSEQ")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (1 is faster on a busy 2-core machine)")
    parser.add_argument("--repeat", type=int, default=2, help="timed steps per setting")
    args = parser.parse_args()
    return standalone("memory", run, rows, shapes=args.shapes, threads=args.threads, repeat=args.repeat)


if __name__ == "__main__":
    sys.exit(main())
