"""Chapter 4's fine-tune as a script that runs unchanged on one process or many.

    python -m course_utils.finetune --data sentiment --method lora --steps 60 --output-dir runs/lora
    torchrun --nproc_per_node 2 -m course_utils.finetune --data sentiment --steps 60 --output-dir runs/ddp
    accelerate launch --num_processes 2 -m course_utils.finetune --data sentiment --steps 60 --output-dir runs/acc

``torchrun`` and ``accelerate launch`` both start N copies of this script with ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and ``MASTER_ADDR/PORT`` set; the script joins the process group (NCCL on GPUs, one process per GPU;
gloo on CPUs, or on a GPU machine with ``COURSE_DEVICE=cpu``: :func:`launch_plan` says which) and ``sft.train``
wraps the model in ``DistributedDataParallel``. Each process takes its share of every batch, and the update equals
the single-process one (tested with two CPU processes). This is data parallelism: every process holds a full copy
of the model. When the model itself does not fit, it must be split (model / tensor / pipeline
parallelism, or sharded: FSDP, DeepSpeed ZeRO); see chapter 4's memory section.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from course_utils import sft
from course_utils.checkpoints import trainable_state
from course_utils.config import DEFAULT_MODEL


def load_pairs(data: str, split: str = "train", limit: int | None = None) -> list[tuple[str, str]]:
    """Training pairs: ``sentiment`` (the course's sentiment set as prompt-based pairs) or a JSONL file whose rows
    have ``prompt``/``response`` or Alpaca's ``instruction``/``input``/``output`` fields.

    Raises:
        FileNotFoundError / ValueError: a missing file, or rows without those fields.
    """
    if data == "sentiment":
        from course_utils.data import load_sentiment
        from course_utils.prompting import SENTIMENT_TEMPLATE, SENTIMENT_WORDS, prompt_pairs

        return prompt_pairs(SENTIMENT_TEMPLATE, SENTIMENT_WORDS, load_sentiment(split, limit=limit))
    path = Path(data)
    if not path.exists():
        raise FileNotFoundError(f"No data file {data!r}: pass --data sentiment or a JSONL file.")
    pairs = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if "prompt" in row and "response" in row:
            pairs.append((row["prompt"], row["response"]))
        elif "instruction" in row and "output" in row:
            from course_utils.instructions import alpaca_prompt  # chapter 6

            pairs.append((alpaca_prompt(row["instruction"], row.get("input", "")), row["output"]))
        else:
            raise ValueError(f"{path}:{n}: a row needs 'prompt' and 'response' (or 'instruction' and 'output').")
    return pairs[:limit] if limit else pairs


def build_model(name: str, method: str, rank: int = 8, alpha: float = 16.0, device: torch.device | None = None):
    """The model to fine-tune and its tokenizer: ``full`` trains every weight, ``lora`` injects LoRA into the
    attention projections (q, v) and freezes the rest. ``name="tiny"`` is a random tiny Llama with the default
    model's tokenizer (seconds per run; used by the tests)."""
    from transformers import AutoTokenizer

    from course_utils import models
    from course_utils.device import pick_device

    device = device or pick_device()
    if name == "tiny":
        tok = models.prepare_tokenizer(AutoTokenizer.from_pretrained(models.model_files(DEFAULT_MODEL)))
        model = models.tiny_llama(vocab_size=len(tok), max_positions=256).to(device)
    else:
        model, tok = models.load_model(name, device=device)
    if method == "lora":
        from course_utils.lora import inject_lora

        inject_lora(model, ("q_proj", "v_proj"), r=rank, alpha=alpha)
    elif method != "full":
        raise ValueError(f"--method must be 'lora' or 'full', not {method!r}.")
    return model, tok


def usable_gpus() -> int:
    """How many GPUs a run here trains on: every CUDA device, or none when ``$COURSE_DEVICE`` names another one."""
    if os.environ.get("COURSE_DEVICE"):
        from course_utils.device import pick_device

        return torch.cuda.device_count() if pick_device().type == "cuda" else 0
    return torch.cuda.device_count()


@dataclass(frozen=True)
class LaunchPlan:
    """How to start a data-parallel run: ``processes`` copies of the script, their process-group ``backend``,
    the ``device`` type they train on (``cuda`` or ``cpu``, for ``$COURSE_DEVICE``), and why, in one line."""

    processes: int
    backend: str
    device: str
    note: str


def launch_plan(requested: int, n_gpus: int, *, exact: bool = False) -> LaunchPlan:
    """The processes to start for ``requested`` data-parallel workers on a machine with ``n_gpus`` GPUs.

    One process per GPU talking over NCCL, so at most ``n_gpus`` of them: a second process on a one-GPU machine
    would ask for a GPU that does not exist. Without a GPU, the processes run on the CPU and talk over gloo.
    ``exact=True`` is for a comparison that needs exactly ``requested`` processes: with too few GPUs it runs them
    all on the CPU instead.

    Raises:
        ValueError: ``requested < 1`` or a negative GPU count.
    """
    if requested < 1 or n_gpus < 0:
        raise ValueError(f"Need requested >= 1 and n_gpus >= 0, got requested={requested}, n_gpus={n_gpus}.")
    if n_gpus >= requested:
        return LaunchPlan(requested, "nccl", "cuda", f"{_count(requested, 'process')}, one per GPU (nccl)")
    if n_gpus and not exact:
        return LaunchPlan(n_gpus, "nccl", "cuda", f"{_count(n_gpus, 'process')}, one per GPU (nccl): this machine "
                                                  f"has {_count(n_gpus, 'GPU')}, not {requested}")
    why = "no GPU here" if not n_gpus else f"{requested} processes need {requested} GPUs, this machine has {n_gpus}"
    return LaunchPlan(requested, "gloo", "cpu", f"{_count(requested, 'process')} on the CPU (gloo): {why}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'es' if noun.endswith('s') else 's'}" if n != 1 else f"1 {noun}"


def process_device(local_rank: int, n_gpus: int) -> tuple[str, torch.device]:
    """The process-group backend and the device of the process with ``local_rank`` on a machine whose run uses
    ``n_gpus`` GPUs (0: a CPU run).

    Raises:
        RuntimeError: more processes on this machine than GPUs (the message says the two ways out).
    """
    if n_gpus == 0:
        return "gloo", torch.device("cpu")
    if not 0 <= local_rank < n_gpus:
        raise RuntimeError(f"Process LOCAL_RANK={local_rank} has no GPU: this machine has {n_gpus}. Start at most "
                           f"{n_gpus} process(es) per machine (torchrun --nproc_per_node {n_gpus}), or run them on "
                           "the CPU with COURSE_DEVICE=cpu (gloo).")
    return "nccl", torch.device("cuda", local_rank)


def _setup_distributed() -> torch.device:
    """Join the process group when launched by torchrun / accelerate; return this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    backend, device = process_device(int(os.environ.get("LOCAL_RANK", "0")), usable_gpus())
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend=backend)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python -m course_utils.finetune", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=DEFAULT_MODEL, help="offline name, hub id, or 'tiny'")
    p.add_argument("--data", default="sentiment", help="'sentiment' or a JSONL file")
    p.add_argument("--method", default="lora", choices=["lora", "full"])
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16.0)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=8, help="examples per optimiser step, all processes together")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--max-len", type=int, default=64)
    p.add_argument("--limit", type=int, default=None, help="use only this many training examples")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--checkpoint-every", type=int, default=0)
    p.add_argument("--output-dir", required=True)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> sft.TrainResult:
    """Run one fine-tune; rank 0 writes ``output_dir/trainable.safetensors`` and ``output_dir/result.json``."""
    from course_utils.device import set_seed

    args = parse_args(argv)
    device = _setup_distributed()
    rank, world = sft.rank_and_world()
    set_seed(args.seed)
    model, tok = build_model(args.model, args.method, args.rank, args.alpha, device)
    data = sft.build_dataset(tok, load_pairs(args.data, limit=args.limit), args.max_len)
    cfg = sft.TrainConfig(steps=args.steps, batch_size=args.batch_size, grad_accum=args.grad_accum, lr=args.lr,
                          warmup_steps=args.warmup_steps, gradient_checkpointing=args.gradient_checkpointing,
                          checkpoint_every=args.checkpoint_every, output_dir=args.output_dir, seed=args.seed,
                          plot=None, progress=rank == 0)
    result = sft.train(model, data, cfg, pad_id=tok.pad_token_id)
    if rank == 0:
        out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_file(trainable_state(model), out / "trainable.safetensors")
        summary = {"world_size": world, "final_loss": result.losses[-1], "losses": result.losses,
                   "seconds_per_step": result.seconds_per_step, "tokens_per_second": result.tokens_per_second}
        (out / "result.json").write_text(json.dumps(summary, indent=1))
        print(f"{world} process(es): final loss {result.losses[-1]:.4f}, {result.seconds_per_step:.2f} s/step; "
              f"weights in {out / 'trainable.safetensors'}")
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return result


if __name__ == "__main__":
    main()
