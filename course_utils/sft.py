"""The course's supervised fine-tuning engine: (prompt, response) pairs -> masked labels -> a training loop.

One readable loop instead of a framework, so every line can be taught; ``transformers.Trainer`` is shown next to
it in chapter 4 and must give comparable losses. Used again by chapters 5-11.

    data = build_dataset(tok, [("Review: great film\\nSentiment:", " positive"), ...], max_len=64)
    result = train(model, data, TrainConfig(steps=60, batch_size=8, lr=2e-4), eval_data=dev)
    result.plot()

Precision: the trainable parameters are kept in float32 (a bf16 / fp16 model's trainable weights are upcast
once: the "master weights"), and the forward and backward run under ``torch.autocast`` in 16 bits on GPUs,
with a gradient scaler for float16 (:func:`resolve_autocast`). On a CPU in float32 nothing changes.

The loss is the mean cross-entropy over *response* tokens only: prompt and padding positions carry the label
``-100`` (PyTorch's ``ignore_index``), so the model is not trained to reproduce the prompt. The mean is taken over
all target tokens of the whole optimiser step (every micro-batch, every process), which is what makes gradient
accumulation and multi-process training give the same update as one large batch.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import checkpoints as ckpt_io
from .device import DTYPES, LOW_PRECISION, autocast_dtype, compute_dtype, model_device
from .models import ContextLengthError, keeps_logits
from .validate import integer

IGNORE_INDEX = -100  # labels with this value add nothing to the loss (torch's cross_entropy ignore_index)
OVERFLOW_POLICIES = ("truncate", "error")
SCHEDULES = ("cosine", "linear", "constant")
AUTOCAST = ("auto", "none", *DTYPES)


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


# ---------------------------------------------------------------------------------------------------------------
# Data: pairs -> token ids with masked labels -> padded batches
# ---------------------------------------------------------------------------------------------------------------

def format_prompt(tok, prompt: str, chat: bool = False) -> str:
    """The text the model reads before its answer: the prompt itself, or wrapped in the chat template."""
    if not chat:
        return prompt
    return tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)


def tokenize_pair(tok, prompt: str, response: str, max_len: int, *, chat: bool = False,
                  on_overflow: str = "truncate", weight: float = 1.0) -> dict:
    """One training example: ``input_ids`` = prompt + response + EOS, ``labels`` = -100 on the prompt.

    Prompt and response are tokenized separately so the boundary is exact (the response's first token is
    the first one trained), as in chapter 2's answer search.

    Args:
        tok: the tokenizer (needs ``eos_token_id``).
        prompt: what the model is given. ``chat=True`` wraps it in the tokenizer's chat template.
        response: what the model must learn to write (its tokens get labels; EOS is appended so it learns to stop).
        max_len: maximum tokens of the whole example.
        on_overflow: ``"truncate"`` cuts the response to fit (keeping the prompt whole), ``"error"`` raises.
        weight: a per-example loss weight (chapter 8's sample weights); 1.0 is the plain mean.

    Raises:
        ValueError: an empty response, or an example that does not fit (``on_overflow="error"``, or a prompt
            that alone leaves no room for the response).
    """
    if on_overflow not in OVERFLOW_POLICIES:
        raise ValueError(f"on_overflow must be one of {OVERFLOW_POLICIES}, not {on_overflow!r}.")
    if not isinstance(prompt, str) or not isinstance(response, str):
        raise TypeError(f"prompt and response must be strings, not {prompt!r:.40} and {response!r:.40}.")
    if not response:
        raise ValueError(f"Empty response for prompt {prompt[:60]!r}: an SFT example needs a target to learn.")
    if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight >= 0):
        raise ValueError(f"weight {weight!r} for prompt {prompt[:60]!r}: weights must be finite and >= 0 (a negative "
                         "one trains the model away from the example).")
    prompt_ids = tok(format_prompt(tok, prompt, chat), add_special_tokens=not chat)["input_ids"]
    response_ids = tok(response, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    n = len(prompt_ids) + len(response_ids)
    if n > max_len:
        room = max_len - len(prompt_ids)
        if on_overflow == "error" or room < 1:
            why = (f"its prompt alone has {len(prompt_ids)} tokens" if room < 1
                   else "on_overflow='error' was asked")
            raise ValueError(f"Example of {n} tokens is longer than max_len={max_len} ({why}). Raise max_len, "
                             "shorten the prompt, or pass on_overflow='truncate' to cut the response.")
        response_ids = response_ids[:room]
    return {"input_ids": prompt_ids + response_ids,
            "labels": [IGNORE_INDEX] * len(prompt_ids) + response_ids,
            "weight": float(weight), "truncated": n > max_len}


def build_dataset(tok, pairs: Sequence[tuple[str, str]], max_len: int, *, chat: bool = False,
                  on_overflow: str = "truncate", weights: Sequence[float] | None = None) -> list[dict]:
    """Tokenize (prompt, response) pairs with :func:`tokenize_pair`; warns once with the number truncated.

    Raises:
        ValueError: no pairs, or ``weights`` of the wrong length.
    """
    if len(pairs) == 0:
        raise ValueError("The dataset is empty: pass at least one (prompt, response) pair.")
    if weights is not None and len(weights) != len(pairs):
        raise ValueError(f"{len(weights)} weights for {len(pairs)} pairs: give one weight per example.")
    data = [tokenize_pair(tok, p, r, max_len, chat=chat, on_overflow=on_overflow,
                          weight=1.0 if weights is None else weights[i]) for i, (p, r) in enumerate(pairs)]
    n_cut = sum(d["truncated"] for d in data)
    if n_cut:
        warnings.warn(f"{n_cut} of {len(data)} examples were longer than max_len={max_len}; their responses were "
                      "truncated (pass on_overflow='error' to refuse them instead).", stacklevel=2)
    return data


@dataclass
class SFTCollator:
    """Pads a list of examples to the longest one (right padding): ids with ``pad_id``, labels with -100. Packed
    rows (``chat.pack``) bring ``position_ids`` instead of an attention mask: the padding is one more segment."""

    pad_id: int

    def __call__(self, examples: Sequence[dict]) -> dict[str, torch.Tensor]:
        if len({"position_ids" in e for e in examples}) > 1:
            raise ValueError("A batch mixes packed rows (chat.pack) and plain examples: pack all of them or none.")
        width = max(len(e["input_ids"]) for e in examples)
        ids = torch.full((len(examples), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        pos = torch.arange(width).repeat(len(examples), 1)
        for i, e in enumerate(examples):
            n = len(e["input_ids"])
            ids[i, :n] = torch.tensor(e["input_ids"])
            labels[i, :n] = torch.tensor(e["labels"])
            mask[i, :n] = 1
            if "position_ids" in e:
                pos[i, :n], pos[i, n:] = torch.tensor(e["position_ids"]), torch.arange(width - n)
        weight = torch.tensor([float(e.get("weight", 1.0)) for e in examples])
        if "position_ids" in examples[0]:
            return {"input_ids": ids, "position_ids": pos, "labels": labels, "weight": weight}
        return {"input_ids": ids, "attention_mask": mask, "labels": labels, "weight": weight}


def target_token_losses(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy of every next-token prediction, shape ``(batch, length - 1)``, 0 where the label is -100.

    Position t predicts token t+1, so logits and labels are shifted by one (what ``labels=`` does inside
    transformers). Only positions that predict a target get logits: the LM head (``hidden -> vocabulary``) is
    skipped on prompt and padding positions, whose labels are -100 anyway (:func:`models.keeps_logits`). The
    losses are the same; the time and memory saved grow with the vocabulary (49k tokens for SmolLM2, 262k for
    Gemma 3) and with the share of prompt tokens.
    """
    labels = batch["labels"][:, 1:]
    targets = labels != IGNORE_INDEX
    if keeps_logits(model, mask=True):
        keep = torch.zeros_like(batch["labels"], dtype=torch.bool)
        keep[:, :-1] = targets  # position t is kept when token t+1 is a target
        logits = model(**_inputs(batch), logits_to_keep=keep).logits  # (number of targets, vocabulary), row by row
        losses = F.cross_entropy(logits.float(), labels[targets], reduction="none")
        return torch.zeros(labels.shape, dtype=losses.dtype, device=losses.device).masked_scatter(targets, losses)
    logits = model(**_inputs(batch)).logits
    logits = logits[:, logits.shape[1] - batch["input_ids"].shape[1]:]  # prompt tuning prepends virtual positions
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX,
                           reduction="none").view_as(labels)


def _inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's inputs: ids with their attention mask, or with position ids (packed rows: no mask, so
    transformers builds one causal block per example from where the positions restart, when there is no cache)."""
    if "position_ids" in batch:
        return {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"], "use_cache": False}
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


def token_loss_sum(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of (weighted) cross-entropies over the batch's target tokens, and the number of target tokens.

    Summing here and dividing once per optimiser step keeps gradient accumulation exact.
    """
    losses = target_token_losses(model, batch)
    weight = batch.get("weight")
    if weight is not None:
        losses = losses * weight.to(losses.dtype)[:, None]
    return losses.sum(), (batch["labels"][:, 1:] != IGNORE_INDEX).sum()


@torch.no_grad()
def evaluate_loss(model, data: Sequence[dict], batch_size: int = 8, pad_id: int | None = None) -> float:
    """Mean cross-entropy per target token of ``data`` (no weights), in eval mode; restores the mode after."""
    pad_id = _pad_id(model, pad_id)
    was_training = model.training
    model.eval()
    dev = _device(model)
    total, count = 0.0, 0
    collate = SFTCollator(pad_id)
    for i in range(0, len(data), batch_size):
        batch = {k: v.to(dev) for k, v in collate(data[i:i + batch_size]).items() if k != "weight"}
        s, n = token_loss_sum(model, batch)
        total, count = total + s.item(), count + n.item()
    model.train(was_training)
    return total / max(count, 1)


# ---------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class TrainConfig:
    """Settings of one fine-tuning run (the names follow ``transformers.TrainingArguments``).

    ``batch_size`` is the number of examples per optimiser step across all micro-batches and processes;
    ``grad_accum`` splits it into that many micro-batches (same update, less memory).
    """

    steps: int
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: str = "cosine"
    max_grad_norm: float | None = 1.0
    gradient_checkpointing: bool = False
    eval_every: int = 0
    checkpoint_every: int = 0
    output_dir: str | None = None
    seed: int = 0
    plot: str | None = "final"  # "final", "live" (notebooks) or None
    progress: bool = True
    autocast: str = "auto"  # "auto" (device.autocast_dtype), "none", "bfloat16", "float16" (with a grad scaler)

    def validate(self, n_examples: int) -> None:
        """Raise a clear ``ValueError`` for settings that cannot train."""
        if n_examples == 0:
            raise ValueError("The training set is empty: build it with build_dataset(tok, pairs, max_len).")
        for name in ("steps", "batch_size", "grad_accum", "warmup_steps", "eval_every", "checkpoint_every", "seed"):
            setattr(self, name, integer(name, getattr(self, name)))  # a numpy int becomes an int; True is refused
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, not {self.steps}.")
        for name in ("warmup_steps", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0 turns it off), not {getattr(self, name)}.")
        if self.warmup_steps > self.steps:
            raise ValueError(f"warmup_steps={self.warmup_steps} is longer than the run (steps={self.steps}): the "
                             "learning rate would never reach its peak. Use e.g. warmup_steps=steps // 10.")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"The learning rate is {self.lr}: nothing would change. Use a positive value, e.g. "
                             "2e-4 for LoRA or 2e-5 for full fine-tuning.")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ValueError(f"weight_decay must be a finite number >= 0 (0 turns it off), not {self.weight_decay}.")
        if self.max_grad_norm is not None and not (self.max_grad_norm >= 0 and math.isfinite(self.max_grad_norm)):
            raise ValueError(f"max_grad_norm must be a positive number (e.g. 1.0), or 0 / None to turn clipping "
                             f"off, not {self.max_grad_norm}.")
        if self.batch_size < 1 or self.grad_accum < 1 or self.batch_size % self.grad_accum:
            raise ValueError(f"batch_size={self.batch_size} must be a positive multiple of grad_accum="
                             f"{self.grad_accum} (each micro-batch has batch_size // grad_accum examples).")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, not {self.schedule!r}.")
        if self.checkpoint_every and not self.output_dir:
            raise ValueError("checkpoint_every needs output_dir (where checkpoints are written).")
        if self.plot not in ("final", "live", None):
            raise ValueError(f"plot must be 'final', 'live' or None, not {self.plot!r}.")
        if self.autocast not in AUTOCAST:
            raise ValueError(f"autocast must be one of {AUTOCAST}, not {self.autocast!r}.")


@dataclass
class TrainResult:
    """What a run measured: one loss per optimiser step, periodic eval losses, time and throughput."""

    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    eval_losses: list[tuple[int, float]] = field(default_factory=list)
    step: int = 0
    seconds: float = 0.0
    tokens: int = 0
    resumed_from: int = 0
    stopped: str = ""  # "stop_after" when train(..., stop_after=N) stopped it early

    @property
    def tokens_per_second(self) -> float:
        """Training tokens (padding included: the compute that was paid for) per second."""
        return self.tokens / self.seconds if self.seconds else 0.0

    @property
    def seconds_per_step(self) -> float:
        """Mean wall time of the steps run in this call (resumed steps excluded)."""
        done = self.step - self.resumed_from
        return self.seconds / done if done else 0.0

    def plot(self, ax=None, title: str = "Fine-tuning loss"):
        """Training loss per step (and eval loss where measured); returns the axes."""
        import matplotlib.pyplot as plt

        ax = ax or plt.subplots(figsize=(6, 3.5))[1]
        ax.plot(range(1, len(self.losses) + 1), self.losses, label="train", alpha=0.8)
        if self.eval_losses:
            ax.plot(*zip(*self.eval_losses), "o-", label="eval")
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("loss (nats / target token)")
        ax.set_title(title)
        ax.legend()
        return ax


def _device(model) -> torch.device:
    return model_device(model)


def resolve_autocast(model, cfg: TrainConfig) -> torch.dtype | None:
    """The dtype the forward and backward run in under ``torch.autocast``; ``None`` for plain float32.

    ``"auto"``: a bf16 / fp16 model computes in its own dtype; a float32 model computes in bfloat16 on GPUs that
    have it natively, in float16 on older ones (a T4), and in float32 on a CPU (:func:`device.autocast_dtype`).
    """
    if cfg.autocast == "auto":
        return autocast_dtype(_device(model), compute_dtype(model))
    return None if cfg.autocast == "none" else DTYPES[cfg.autocast]


def upcast_trainable(params: Sequence[torch.nn.Parameter]) -> int:
    """Store every trainable 16-bit parameter in float32, in place; returns how many were upcast.

    These are the master weights: AdamW's update of a weight is often ~1e-5 of its size, below bfloat16's
    resolution (8 significant bits), so updating bf16 weights directly loses most updates to rounding. Under
    autocast the matmuls still run in 16 bits. Tied weights are one Parameter, so they stay tied.
    """
    n = 0
    for p in params:
        if p.dtype in LOW_PRECISION:
            p.data = p.data.float()
            p.grad = None
            n += 1
    return n


def gpu_budget(model) -> int | None:
    """Bytes a training step may use on the model's GPU (90 % of what is free to this process, plus what torch
    already holds, the weights among them); ``None`` off CUDA. Honours ``set_per_process_memory_fraction``."""
    dev = _device(model)
    if dev.type != "cuda":
        return None
    free, total = torch.cuda.mem_get_info(dev)
    held = torch.cuda.memory_reserved(dev)
    cap = torch.cuda.get_per_process_memory_fraction(dev) * total
    return int(0.9 * min(free + held, cap))


def fit_grad_accum(model, cfg: TrainConfig, seq_len: int, budget: int | None, world: int = 1) -> int:
    """The smallest ``grad_accum`` (a multiple of ``cfg.grad_accum`` dividing ``batch_size``) whose micro-batch
    fits ``budget`` bytes by :func:`memory.estimate_from_model`. The update is the same (accumulation is exact);
    only the memory and the time change. No budget, or a model the estimator cannot read: ``cfg.grad_accum``.
    """
    from .memory import estimate_from_model

    if budget is None:
        return cfg.grad_accum
    options = [a for a in range(cfg.grad_accum, cfg.batch_size + 1)
               if cfg.batch_size % a == 0 and a % cfg.grad_accum == 0 and (cfg.batch_size // a) % world == 0]
    for accum in options:
        try:
            est = estimate_from_model(model, batch_size=cfg.batch_size // accum // world, seq_len=seq_len,
                                      gradient_checkpointing=cfg.gradient_checkpointing)
        except (AttributeError, TypeError, ValueError):  # not a transformers-style config (TinyGPT)
            return cfg.grad_accum
        if est.peak <= budget:
            return accum
    warnings.warn(f"Even one example of {seq_len} tokens per micro-batch is estimated to need more than the "
                  f"{budget / 2**30:.1f} GiB free on this GPU. Use gradient_checkpointing=True, shorter examples "
                  "(max_len), LoRA instead of full fine-tuning, or a smaller model.", stacklevel=3)
    return options[-1] if options else cfg.grad_accum


def _autocast(dev: torch.device, dtype: torch.dtype | None):
    return torch.autocast(dev.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def _pad_id(model, pad_id: int | None) -> int:
    if pad_id is not None:
        return pad_id
    cfg = getattr(model, "config", None)
    for name in ("pad_token_id", "eos_token_id"):
        value = getattr(cfg, name, None)
        if isinstance(value, int):
            return value
    return 0


def rank_and_world() -> tuple[int, int]:
    """(rank, world_size) of this process; (0, 1) outside ``torchrun`` / ``accelerate launch``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def step_indices(step: int, n: int, batch_size: int, seed: int) -> list[int]:
    """The example indices of optimiser step ``step`` (0-based): a fixed function of (step, seed).

    The data are walked epoch by epoch, each epoch in its own seeded permutation, so a resumed run sees exactly
    the batches the uninterrupted run would have seen, and every process agrees on them.
    """
    out = []
    for p in range(step * batch_size, (step + 1) * batch_size):
        epoch, i = divmod(p, n)
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        out.append(int(torch.randperm(n, generator=g)[i]))
    return out


def make_scheduler(optimizer, cfg: TrainConfig):
    """Linear warm-up for ``warmup_steps``, then cosine / linear decay to 0, or constant (transformers' own)."""
    from transformers import get_scheduler

    name = "constant_with_warmup" if cfg.schedule == "constant" else cfg.schedule
    return get_scheduler(name, optimizer, num_warmup_steps=cfg.warmup_steps, num_training_steps=cfg.steps)


def make_optimizer(params: list[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; the fused kernel where torch has one (as Trainer's default)."""
    if not params:
        raise ValueError("The model has no trainable parameters: inject LoRA / adapters, or unfreeze weights.")
    try:
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, TypeError):  # a dtype or device without a fused kernel
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def training_step(net, micro_batches: Sequence[dict], n_targets: int, optimizer, scheduler, scaler, cfg: TrainConfig,
                  amp: torch.dtype | None = None, penalty: Callable[[torch.nn.Module], torch.Tensor] | None = None,
                  world: int = 1) -> float:
    """One optimiser step, top to bottom: forward, masked loss, backward, clip, step.

    ``micro_batches`` are this step's examples in ``grad_accum`` pieces; ``n_targets`` is the number of target
    (non -100) tokens of the whole step, so that summing each piece's token losses and dividing by it gives the
    same gradient as one big batch. Returns the step's mean loss per target token.
    """
    dev, total = _device(net), 0.0
    for j, batch in enumerate(micro_batches):
        batch = {k: v.to(dev) for k, v in batch.items()}
        with grad_sync(net, last=j == len(micro_batches) - 1):      # several processes: average once, at the end
            with _autocast(dev, amp):
                loss_sum, _ = token_loss_sum(net, batch)             # forward; cross-entropy on target tokens only
            scaler.scale(loss_sum * world / n_targets).backward()    # backward; DDP divides by world, so * world
        total += loss_sum.item()
    if penalty is not None:                                          # chapter 8's L2-SP / EWC, once per step
        scaler.scale(penalty(getattr(net, "module", net))).backward()
    loss = all_reduce_sum(total, dev) / n_targets
    if not math.isfinite(loss):
        raise TrainingDivergedError(f"the loss became {loss} (lr {scheduler.get_last_lr()[0]:.2e}). Lower the "
                                    "learning rate, keep gradient clipping on (max_grad_norm=1.0), and check the data "
                                    "for empty or corrupt examples; in float16 try bfloat16 or float32.")
    scaler.unscale_(optimizer)                                       # no-op unless float16
    if cfg.max_grad_norm:
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], cfg.max_grad_norm)
    scaler.step(optimizer)                                           # skipped when a float16 gradient overflowed
    scaler.update()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss


def grad_sync(net, last: bool):
    """Under DDP, gradients are all-reduced only on a step's last micro-batch (``no_sync`` before it)."""
    if isinstance(net, torch.nn.parallel.DistributedDataParallel) and not last:
        return net.no_sync()
    return contextlib.nullcontext()


def all_reduce_sum(value: float, dev: torch.device) -> float:
    """``value`` summed over every process (itself outside ``torchrun``)."""
    if rank_and_world()[1] == 1:
        return value
    t = torch.tensor([value], device=dev, dtype=torch.float64)
    torch.distributed.all_reduce(t)
    return t.item()


def step_batches(train_data: Sequence[dict], step: int, cfg: TrainConfig, collate, rank: int = 0,
                 world: int = 1) -> list[dict]:
    """Step ``step``'s examples (:func:`step_indices`) as ``grad_accum`` micro-batches, each process its share."""
    idx, micro = step_indices(step, len(train_data), cfg.batch_size, cfg.seed), cfg.batch_size // cfg.grad_accum
    return [collate([train_data[i] for i in idx[j:j + micro][rank::world]]) for j in range(0, cfg.batch_size, micro)]


def count_targets(micro_batches: Sequence[dict], step: int, dev: torch.device) -> int:
    """The step's target tokens over every process (each divides by the same global count).

    Raises:
        ValueError: a step without one target token (every label -100).
    """
    n = int(all_reduce_sum(sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in micro_batches), dev))
    if n == 0:
        raise ValueError(f"Step {step + 1} has no target tokens (every label is -100): check that "
                         "the responses are not empty or truncated away.")
    return n


def _fit_to_gpu(model, cfg: TrainConfig, train_data: Sequence[dict], rank: int, world: int) -> TrainConfig:
    """On a GPU, more micro-batches when the estimated peak would not fit (a T4's 15 GiB); the update is the same."""
    accum = fit_grad_accum(model, cfg, max(len(e["input_ids"]) for e in train_data), gpu_budget(model), world)
    if accum != cfg.grad_accum:
        if rank == 0:
            print(f"micro-batch of {cfg.batch_size // cfg.grad_accum} -> {cfg.batch_size // accum} examples "
                  f"(grad_accum {accum}) to fit this GPU's free memory; the update is the same.")
        cfg = replace(cfg, grad_accum=accum)
    if (cfg.batch_size // cfg.grad_accum) % world:
        raise ValueError(f"Each micro-batch of {cfg.batch_size // cfg.grad_accum} examples must split evenly over "
                         f"{world} processes.")
    return cfg


@contextlib.contextmanager
def _activation_checkpointing(model, on: bool):
    """Activation checkpointing for the run (non-reentrant: it also works when the inputs need no gradient, as
    with frozen embeddings + LoRA); switched back off after, since generation wants its KV cache."""
    turn_on = on and not getattr(model, "is_activation_checkpointing", False)
    if turn_on:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model, "config"):
            model.config.use_cache = False
    try:
        yield
    finally:
        if turn_on:
            model.activation_checkpointing_disable()
            if hasattr(model, "config"):
                model.config.use_cache = True


def check_examples(model, data: Sequence[dict]) -> None:
    """Refuse examples a run cannot use: not built by :func:`build_dataset` (no ids or labels, or of other
    lengths), longer than the model's context window, or with a negative or non-finite weight (a negative weight
    turns that example's training into gradient ascent)."""
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    for i, e in enumerate(data):
        if not isinstance(e, dict) or "input_ids" not in e or "labels" not in e:
            raise TypeError(f"Training example {i} is {type(e).__name__}, not a dict with 'input_ids' and 'labels': "
                            "build the data with build_dataset(tok, pairs, max_len).")
        if len(e["labels"]) != len(e["input_ids"]):
            raise ValueError(f"Training example {i} has {len(e['input_ids'])} ids but {len(e['labels'])} labels: "
                             "build the data with build_dataset(tok, pairs, max_len).")
        if limit and len(e["input_ids"]) > limit:
            raise ContextLengthError(f"Training example {i} has {len(e['input_ids'])} tokens but the model's context "
                                     f"window is {limit}: build the data with max_len <= {limit}.")
        w = e.get("weight", 1.0)
        if not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0):
            raise ValueError(f"Training example {i} has weight {w!r}: weights must be finite and >= 0 (a negative "
                             "one trains the model away from the example).")


def _show_final_plot(result: TrainResult) -> None:
    import matplotlib.pyplot as plt

    result.plot()
    plt.show()


def train(model, train_data: Sequence[dict], cfg: TrainConfig, eval_data: Sequence[dict] | None = None, *,
          pad_id: int | None = None, resume: bool = True, overwrite: bool = False, stop_after: int | None = None,
          on_step: Callable[[int, float], None] | None = None,
          penalty: Callable[[torch.nn.Module], torch.Tensor] | None = None) -> TrainResult:
    """Fine-tune ``model`` in place on tokenized examples (from :func:`build_dataset`).

    Each optimiser step draws ``cfg.batch_size`` examples (:func:`step_indices`), runs them as ``grad_accum``
    micro-batches, divides the summed token losses by the step's number of target tokens, clips the gradient
    norm, and steps AdamW and the schedule. Under ``torchrun`` / ``accelerate launch`` the model is wrapped in
    ``DistributedDataParallel`` and each process takes its share of every micro-batch.

    Args:
        model: a causal LM; only parameters with ``requires_grad`` are trained.
        train_data, eval_data: lists of examples; ``eval_data`` is scored every ``cfg.eval_every`` steps and at
            the end.
        cfg: the :class:`TrainConfig`.
        resume: continue from ``cfg.output_dir/checkpoint-last`` when it exists (only if it was written by this
            same run: same settings, data and model; another run's raises ``checkpoints.OtherRunError``).
        overwrite: delete that checkpoint and start afresh.
        stop_after: stop after this step as if interrupted and return (a checkpoint is written when ``output_dir``
            is set; ``result.stopped == "stop_after"``). Ctrl-C / the stop button / SIGTERM instead finish the
            current step, write the checkpoint and raise ``checkpoints.TrainingStopped`` (a ``KeyboardInterrupt``).
        on_step: called with (step, loss) after every optimiser step.
        penalty: a regulariser on the weights, ``penalty(model) -> scalar``, added to every step's loss (chapter
            8's L2-SP and EWC, :mod:`course_utils.forgetting`); the reported loss stays the data loss.

    Returns:
        A :class:`TrainResult`; the model is left in eval mode.

    Raises:
        ValueError: bad settings or data (see :meth:`TrainConfig.validate`, :func:`check_examples`).
        checkpoints.TrainingStopped: a stop request (the message says how to resume).
        TrainingDivergedError: the loss became NaN / inf (the message names the fixes).
    """
    cfg.validate(len(train_data))
    check_examples(model, train_data)
    rank, world = rank_and_world()
    cfg = _fit_to_gpu(model, cfg, train_data, rank, world)
    micro, pad_id, dev = cfg.batch_size // cfg.grad_accum, _pad_id(model, pad_id), _device(model)
    collate = SFTCollator(pad_id)
    torch.manual_seed(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    amp = resolve_autocast(model, cfg)  # read before upcasting: a bf16 model computes in bf16
    upcast_trainable(params)
    # what identifies this run to its checkpoint (after upcasting: a resumed model's dtypes are the upcast ones)
    fingerprint = ckpt_io.run_fingerprint(model, train_data, cfg) if cfg.output_dir else None
    # float16's range is small: scale the loss so gradients do not underflow, unscale before clipping
    scaler = torch.amp.GradScaler(dev.type, enabled=amp == torch.float16)
    optimizer = make_optimizer(params, cfg)
    scheduler = make_scheduler(optimizer, cfg)
    result = TrainResult()
    ckpt = Path(cfg.output_dir) / "checkpoint-last" if cfg.output_dir else None
    if ckpt is not None and overwrite and rank == 0:
        ckpt_io.delete_checkpoint(ckpt)
    found = ckpt_io.find_checkpoint(ckpt) if ckpt is not None and resume and not overwrite else None
    if found is not None:
        ckpt_io.check_same_run(found, fingerprint)  # another run's checkpoint would mix two runs
        result = TrainResult(**ckpt_io.load_checkpoint(found, model, optimizer, scheduler))
        result.resumed_from, result.seconds, result.tokens, result.stopped = result.step, 0.0, 0, ""

    def checkpoint():
        if ckpt is not None and rank == 0:
            ckpt_io.save_checkpoint(ckpt, model, optimizer, scheduler, result, fingerprint)

    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    live = None
    if cfg.plot == "live" and rank == 0:
        from .plotting import LiveLossPlot  # matplotlib only when a plot is asked for

        live = LiveLossPlot()
    bar = tqdm(total=cfg.steps, initial=result.step, desc="fine-tuning", disable=not cfg.progress or rank > 0)
    in_step = False
    with _activation_checkpointing(model, cfg.gradient_checkpointing), ckpt_io.StopRequests() as stops:
        net.train()
        try:
            while result.step < cfg.steps:
                t0 = time.perf_counter()
                batches = step_batches(train_data, result.step, cfg, collate, rank, world)
                n_targets = count_targets(batches, result.step, dev)
                lr = scheduler.get_last_lr()[0]  # the rate this step runs at (the schedule moves inside it)
                in_step = True
                try:
                    loss = training_step(net, batches, n_targets, optimizer, scheduler, scaler, cfg, amp, penalty,
                                         world)
                except TrainingDivergedError as err:
                    raise TrainingDivergedError(f"Step {result.step + 1}: {err}") from None
                result.step += 1
                result.lrs.append(lr)
                result.losses.append(loss)
                in_step = False
                result.tokens += sum(b["input_ids"].numel() for b in batches)
                result.seconds += time.perf_counter() - t0
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}")
                if on_step:
                    on_step(result.step, loss)
                if eval_data and cfg.eval_every and result.step % cfg.eval_every == 0 and result.step < cfg.steps:
                    result.eval_losses.append((result.step, evaluate_loss(model, eval_data, micro, pad_id)))
                    net.train()
                if cfg.checkpoint_every and result.step % cfg.checkpoint_every == 0:
                    checkpoint()
                if live:
                    live.update(result)
                # every process stops at the same step (a signal may reach them at different moments)
                if all_reduce_sum(float(stops.signal is not None), dev):
                    raise KeyboardInterrupt
                if stop_after is not None and result.step >= stop_after and result.step < cfg.steps:
                    result.stopped = "stop_after"
                    break
        except KeyboardInterrupt:  # Ctrl-C, the notebook's stop button, SIGTERM: deferred to the step's end
            save = None if in_step else checkpoint  # a half-done step's state is not saved
            raise ckpt_io.stop_error(result.step, stops.signal or "SIGINT", save, ckpt) from None
        finally:
            bar.close()
    if result.stopped:  # stop_after: as if stopped, but returns (chapter 4 resumes in the next cell)
        checkpoint()
        print(f"Stopped at step {result.step}" + (f"; checkpoint saved to {ckpt}. Run train(...) again to resume."
                                                  if ckpt else " (set output_dir to be able to resume)."))
    elif result.step >= cfg.steps:  # the final eval runs with Ctrl-C back to normal: it stops it at once
        if eval_data:
            result.eval_losses.append((result.step, evaluate_loss(model, eval_data, micro, pad_id)))
        if cfg.checkpoint_every:
            checkpoint()
    if live:
        live.update(result, force=True)
        live.close()
    elif cfg.plot == "final" and rank == 0 and result.losses:
        _show_final_plot(result)
    model.eval()
    return result
