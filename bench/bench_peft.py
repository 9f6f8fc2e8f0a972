"""Fine-tuning throughput benchmark (chapter 4): printed, not asserted.

LoRA (r=8 on q_proj, v_proj) on chapter 4's sentiment pairs, the same batches in the same order, the same AdamW /
schedule / clipping, three ways in one process, on the default model (SmolLM2-135M) and on Gemma-3-270M:
  1. the course engine (``sft.train``) with the course's LoRA (``lora.inject_lora``);
  2. the course engine with peft's LoRA;
  3. ``transformers.Trainer`` with peft's LoRA (``trainer.trainer_finetune``).
Target: the course engine 1.2x Trainer + peft's throughput on SmolLM2 and 1.5x on Gemma (tokens/s over the wall
time of the whole call, model copy and set-up included; padding counted the same way). The engine computes
logits only where a label is a target (``logits_to_keep``); Trainer's model computes them at every position,
which costs most with Gemma's 262k-token vocabulary and the sentiment pairs' long prompts.
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
#: model -> the engine / Trainer throughput ratio it must reach
TARGETS = {"smollm2-135m-instruct": 1.2, "gemma-3-270m": 1.5}


def run_model(name: str, steps: int, batch_size: int, repeats: int) -> dict:
    """Best tokens/s of each way over ``repeats`` alternating rounds, on one model."""
    from peft import LoraConfig, get_peft_model

    from course_utils import lora, sft, trainer
    from course_utils.finetune import load_pairs
    from course_utils.models import load_model

    model, tok = load_model(name)
    data = sft.build_dataset(tok, load_pairs("sentiment"), 64)
    cfg = sft.TrainConfig(steps=steps, batch_size=batch_size, lr=1e-3, warmup_steps=min(2, steps), plot=None,
                          progress=False)
    peft_cfg = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"])
    runs = {
        ENGINE: lambda: sft.train(lora.inject_lora(copy.deepcopy(model), r=8, alpha=16), data, cfg),
        TRAINER: lambda: trainer.trainer_finetune(get_peft_model(copy.deepcopy(model), peft_cfg), data, cfg),
        "engine + peft LoRA": lambda: sft.train(get_peft_model(copy.deepcopy(model), peft_cfg), data, cfg),
    }
    best: dict[str, dict] = {}
    for _ in range(repeats):
        for way, fn in runs.items():
            t0 = time.perf_counter()
            r = fn()  # wall time of the whole call: set-up included for both engines
            seconds = time.perf_counter() - t0
            tps = r.tokens / seconds
            if way not in best or tps > best[way]["tokens_per_s"]:
                best[way] = {"tokens_per_s": round(tps, 1), "s_per_step": round(seconds / r.step, 3),
                             "final_loss": round(r.losses[-1], 4)}
    for way, b in best.items():
        print(f"{name:22} {way:22} {b['tokens_per_s']:8.1f} tokens/s  {b['s_per_step']:.3f} s/step  final loss "
              f"{b['final_loss']:.4f}")
    ratio = best[ENGINE]["tokens_per_s"] / best[TRAINER]["tokens_per_s"]
    print(f"{name}: course engine / Trainer throughput {ratio:.2f}x (target >= {TARGETS.get(name, 1.0)})")
    return {"runs": best, "engine_over_trainer": round(ratio, 3)}


def run(quick: bool = False, steps: int = 20, batch_size: int = 8, repeats: int = 2,
        models: tuple[str, ...] = tuple(TARGETS)) -> dict:
    """Each model in turn; ``quick``: 2 steps of 2, one round, the default model only."""
    if quick:
        steps, batch_size, repeats, models = 2, 2, 1, models[:1]
    return {"settings": {"steps": steps, "batch_size": batch_size, "repeats": repeats},
            "models": {name: run_model(name, steps, batch_size, repeats) for name in models}}


def rows(result: dict) -> list[Row]:
    """Per model: the throughput of each way (report only) and the engine / Trainer ratio against its target."""
    s, out = result["settings"], []
    for name, m in result["models"].items():
        out += [Row(CHAPTER, f"LoRA SFT throughput, {name}, {way} ({s['steps']} steps x {s['batch_size']})",
                    f"{r['tokens_per_s']:.0f} tokens/s, {r['s_per_step']:.2f} s/step") for way, r in m["runs"].items()]
        ratio, target = m["engine_over_trainer"], TARGETS.get(name, 1.0)
        out.append(Row(CHAPTER, f"course engine / Trainer + peft throughput, {name}", f"{ratio:.2f}x",
                       f">= {target}x", ratio >= target))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--models", default=",".join(TARGETS), help="comma-separated model names")
    args = p.parse_args(argv)
    return standalone("peft", run, rows, steps=args.steps, batch_size=args.batch_size, repeats=args.repeats,
                      models=tuple(args.models.split(",")))


if __name__ == "__main__":
    sys.exit(main())
