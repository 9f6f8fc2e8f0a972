"""Fine-tuning throughput benchmark (chapter 4): printed, not asserted.

LoRA (r=8 on q_proj, v_proj) on the default model and chapter 4's sentiment pairs, the same batches in the same
order, the same AdamW / schedule / clipping, three ways in one process:
  1. the course engine (``sft.train``) with the course's LoRA (``lora.inject_lora``);
  2. the course engine with peft's LoRA;
  3. ``transformers.Trainer`` with peft's LoRA (``sft.trainer_finetune``).
Target: the course engine at least as fast as Trainer + peft (tokens/s over the wall time of the whole call,
model copy and set-up included; padding counted the same way).
The runs alternate (1, 3, 2, then again) so that a busy machine slows all of them alike.

    python bench/bench_peft.py [--steps 20] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time

from common import Row, standalone  # bench/ is on sys.path when run as a script

CHAPTER = "04"
ENGINE, TRAINER = "engine + course LoRA", "Trainer + peft LoRA"


def run(quick: bool = False, steps: int = 20, batch_size: int = 8, repeats: int = 2) -> dict:
    """Best tokens/s of each way over ``repeats`` alternating rounds; ``quick``: 2 steps of 2, one round."""
    from peft import LoraConfig, get_peft_model

    from course_utils import lora, sft
    from course_utils.finetune import load_pairs
    from course_utils.models import load_model

    if quick:
        steps, batch_size, repeats = 2, 2, 1
    model, tok = load_model()
    data = sft.build_dataset(tok, load_pairs("sentiment"), 64)
    cfg = sft.TrainConfig(steps=steps, batch_size=batch_size, lr=1e-3, warmup_steps=min(2, steps), plot=None,
                          progress=False)
    peft_cfg = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"])
    runs = {
        ENGINE: lambda: sft.train(lora.inject_lora(copy.deepcopy(model), r=8, alpha=16), data, cfg),
        TRAINER: lambda: sft.trainer_finetune(get_peft_model(copy.deepcopy(model), peft_cfg), data, cfg),
        "engine + peft LoRA": lambda: sft.train(get_peft_model(copy.deepcopy(model), peft_cfg), data, cfg),
    }
    best: dict[str, dict] = {}
    for _ in range(repeats):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            r = fn()  # wall time of the whole call: set-up included for both engines
            seconds = time.perf_counter() - t0
            tps = r.tokens / seconds
            if name not in best or tps > best[name]["tokens_per_s"]:
                best[name] = {"tokens_per_s": round(tps, 1), "s_per_step": round(seconds / r.step, 3),
                              "final_loss": round(r.losses[-1], 4)}
    for name, b in best.items():
        print(f"{name:22} {b['tokens_per_s']:8.1f} tokens/s  {b['s_per_step']:.3f} s/step  final loss "
              f"{b['final_loss']:.4f}")
    ratio = best[ENGINE]["tokens_per_s"] / best[TRAINER]["tokens_per_s"]
    print(f"course engine / Trainer throughput: {ratio:.2f}x (target >= 1.0)")
    return {"settings": {"steps": steps, "batch_size": batch_size, "repeats": repeats}, "runs": best,
            "engine_over_trainer": round(ratio, 3)}


def rows(result: dict) -> list[Row]:
    """The throughput of each way (report only) and the engine / Trainer ratio (target >= 1)."""
    s = result["settings"]
    out = [Row(CHAPTER, f"LoRA SFT throughput, {name} ({s['steps']} steps x {s['batch_size']})",
               f"{r['tokens_per_s']:.0f} tokens/s, {r['s_per_step']:.2f} s/step") for name, r in result["runs"].items()]
    ratio = result["engine_over_trainer"]
    out.append(Row(CHAPTER, "course engine / Trainer + peft throughput", f"{ratio:.2f}x", ">= 1.0x", ratio >= 1.0))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)
    return standalone("peft", run, rows, steps=args.steps, batch_size=args.batch_size, repeats=args.repeats)


if __name__ == "__main__":
    sys.exit(main())
