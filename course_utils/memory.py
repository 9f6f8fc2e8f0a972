"""Fine-tuning memory: why full fine-tuning is expensive, and where every byte goes.

Full fine-tuning of a GPT-3-sized model needs tens to hundreds of GB: every trainable parameter carries its
weight, its gradient and the optimizer's state. Mixed-precision Adam costs **16 bytes per parameter** before a
single activation is stored (the ZeRO paper's (2 + 2 + K)·Ψ with K = 12), so 7B parameters need ~112 GB.
LoRA freezes the base (weights only) and trains a few million parameters; QLoRA also stores the frozen base in
4 bits. When a run still runs out of memory: a smaller batch (activations shrink linearly), gradient
accumulation (same effective batch, one micro-batch in memory), gradient checkpointing (recompute instead of
store), or spreading the model over several devices (model parallelism / ZeRO sharding).

    est = estimate_finetune_memory(7_000_000_000, mode="full")     # 112 GB before activations
    est = estimate_from_model(model, batch_size=4, seq_len=128)    # reads sizes, dtype, LoRA, checkpointing
    m = measure_training_step(model, batch_size=4, seq_len=128)    # one real AdamW step, its peak bytes
    print(est.peak / m.peak)                                       # estimate vs measured

Two totals: ``MemoryEstimate.total`` is the rule-of-thumb budget (everything at once); ``.peak`` follows the
step's timeline, because gradients are created while the backward pass frees activations, so the two never
peak together. ``.peak`` is what ``measure_training_step`` measures.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch

from .validate import non_negative_int, not_a_str, one_of, positive_float, positive_int

T = TypeVar("T")

GIB = 2**30
MODES = ("full", "lora", "qlora")
# Optimizer state tensors per trainable parameter: Adam keeps m and v; plain SGD keeps nothing.
OPTIMIZER_STATES = {"adamw": 2, "adam": 2, "sgd_momentum": 1, "sgd": 0}
# How torch runs the update. CPU defaults to "single" (a loop over tensors), CUDA to "foreach" (whole lists).
OPTIMIZER_IMPLS = ("single", "foreach", "fused")
ATTENTION_IMPLS = ("sdpa", "eager", "flash_attention_2", "flash_attention_3", "flex_attention")
LINEAR_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
NF4_BITS = 4
# QLoRA stores one absmax per 64 weights: fp32 (32/64 = 0.5 bit/param), or with double quantization an 8-bit
# absmax plus one fp32 constant per 256 absmaxes: 8/64 + 32/(64*256) = 0.127 bit/param (QLoRA paper, §3).
QUANT_CONST_BITS = {False: 32 / 64, True: 8 / 64 + 32 / (64 * 256)}


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes needed by one training step, by kind.

    Attributes:
        weights: all parameters (frozen and trainable), as stored.
        gradients: one gradient per trainable parameter.
        optimizer: optimizer state kept between steps (fp32 master copy, Adam's m and v).
        activations: the most memory held for the backward pass, at its start: the tensors autograd saved in
            the forward plus the loss head's buffers.
        scratch: temporaries alive together with (almost) all gradients at the end of the step: the larger of
            the first layer's backward (its activations and gradient buffers) and the optimizer update's.
        note: what was left out, if anything.
    """

    weights: int
    gradients: int
    optimizer: int
    activations: int
    scratch: int = 0
    note: str = ""

    @property
    def total(self) -> int:
        """The rule-of-thumb budget: weights + gradients + optimizer + activations, as if all coexisted."""
        return self.weights + self.gradients + self.optimizer + self.activations

    @property
    def peak(self) -> int:
        """The step's high-water mark, following its timeline.

        Weights and optimizer state are always there. The backward frees activations as it creates
        gradients, so the rest peaks at one of two moments: the start of the backward (activations, no
        gradients yet) or its end and the update (gradients + scratch).
        """
        return self.weights + self.optimizer + max(self.activations, self.gradients + self.scratch)

    def as_gib(self) -> dict[str, float]:
        """Every component, plus ``total`` and ``peak``, in GiB (2**30 bytes)."""
        parts = {k: getattr(self, k) for k in ("weights", "gradients", "optimizer", "activations", "scratch",
                                               "total", "peak")}
        return {k: v / GIB for k, v in parts.items()}

    def __str__(self) -> str:
        g = self.as_gib()
        lines = [f"{k:<12}{g[k]:9.2f} GiB" for k in ("weights", "gradients", "optimizer", "activations", "scratch")]
        lines += ["-" * 25,
                  f"{'total':<12}{g['total']:9.2f} GiB   rule of thumb: weights + gradients + optimizer + activations",
                  f"{'peak':<12}{g['peak']:9.2f} GiB   weights + optimizer + max(activations, gradients + scratch)"]
        return "\n".join(lines + ([f"note: {self.note}"] if self.note else []))


MASTER_WEIGHTS = ("copy", "upcast")


def bytes_per_param(*, weight_bytes: float = 2, mixed_precision: bool = True,
                    optimizer: str = "adamw", master: str = "copy") -> dict[str, float]:
    """Bytes one *trainable* parameter costs, by kind (their sum is the famous 16).

    Mixed precision (16-bit weights): 2 (weights) + 2 (gradients) + 4 (fp32 master copy, which the update is
    applied to) + 4 + 4 (Adam's m and v in fp32) = 16. Pure fp32 (what runs on a CPU): 4 + 4 + 0 + 4 + 4 = 16
    too: no master copy is needed because the weights already are fp32. Pure bf16 without a master copy would
    be 2 + 2 + 2 + 2 = 8, but updates much smaller than a weight vanish in bf16 rounding, hence the usual
    fp32 master copy.

    ``master="copy"`` is that accounting (ZeRO's: 16-bit weights and gradients beside an fp32 copy).
    ``master="upcast"`` is what the course's engine (``sft.train``), peft and ``Trainer`` do: the trainable
    parameters themselves are stored in fp32 and the matmuls run in 16 bits under autocast, so a trainable
    parameter costs 4 (weight) + 4 (gradient) + 8 (Adam) = 16 bytes, the same sum split differently.

    Raises:
        ValueError: unknown optimizer or master, or weight_bytes <= 0.
    """
    one_of("optimizer", optimizer, OPTIMIZER_STATES)
    one_of("master", master, MASTER_WEIGHTS)
    if weight_bytes <= 0:
        raise ValueError(f"weight_bytes must be > 0 (2 for bf16/fp16, 4 for fp32), got {weight_bytes}.")
    mixed = mixed_precision and weight_bytes < 4
    state_bytes = 4 if mixed_precision else weight_bytes
    if mixed and master == "upcast":
        return {"weights": 4, "gradients": 4, "master copy": 0, "optimizer states": OPTIMIZER_STATES[optimizer] * 4}
    return {"weights": weight_bytes, "gradients": weight_bytes, "master copy": 4 if mixed else 0,
            "optimizer states": OPTIMIZER_STATES[optimizer] * state_bytes}


def activation_memory(batch_size: int, seq_len: int, *, hidden_size: int, num_layers: int, intermediate_size: int,
                      num_heads: int, vocab_size: int, num_kv_heads: int | None = None, head_dim: int | None = None,
                      frozen_base: bool = False, lora_targets: Iterable[str] = ("q_proj", "v_proj"),
                      lora_rank: int = 8, attn_implementation: str = "sdpa", gradient_checkpointing: bool = False,
                      activation_bytes: float = 2) -> int:
    """Bytes of activations a Llama-style decoder holds at the start of its backward pass.

    Counted by listing the tensors autograd saves (checked one by one with ``saved_tensors_hooks`` on
    transformers' Llama). Per layer and token, with h = hidden, I = intermediate, q = heads·head_dim,
    kv = kv_heads·head_dim, n = heads, s = seq_len, all weights trainable ("full"):

    * each RMSNorm: its input x, the normalised x̂, the output y (y feeds the projections)  3h (two norms: 6h)
    * attention (sdpa / flash): rotated q and k, v, the output, the softmax log-sum-exp      2q + 2kv + n
    * attention (eager): q, k and v repeated to n heads, the probabilities, the o_proj input 4q + n·s
    * MLP: gate output, silu(gate), up output, their product                                4I

    With a frozen base (LoRA / QLoRA) a frozen weight needs no saved input, so a norm keeps only its input x,
    the MLP only gate, silu and up (3I), eager attention drops the o_proj input; a LoRA adapter saves its input
    (the norm output y, or the MLP product for down_proj) and its rank-r middle. Llama's RMSNorm and softmax
    run in fp32, so those tensors take 4 bytes even in a bf16 model.

    On top of the layers: the final norm (3h, or h when frozen) and the loss head. ``transformers`` upcasts the
    logits to fp32 for cross-entropy, so the backward starts with three fp32 b·s·V tensors alive: the
    log-softmax output, its incoming gradient and the logits' gradient: 12·b·s·V bytes. (It assumes the model
    output is dropped, ``loss = model(...).loss``; keeping it keeps the logits too.)

    Gradient checkpointing keeps only each layer's input (h per layer and token) and recomputes one layer at a
    time in the backward, so the peak is the checkpoints plus the larger of the loss head and one recomputed
    layer during its own backward, which peaks in the MLP: the incoming gradient and the gradients of the
    gate/up product, h + 3I (measured: that is where the allocator's high-water mark sits).

    Raises:
        ValueError: non-positive sizes, or an unknown attention implementation or LoRA target.
    """
    return _activation_phases(batch_size, seq_len, hidden_size=hidden_size, num_layers=num_layers,
                              intermediate_size=intermediate_size, num_heads=num_heads, vocab_size=vocab_size,
                              num_kv_heads=num_kv_heads, head_dim=head_dim, frozen_base=frozen_base,
                              lora_targets=lora_targets, lora_rank=lora_rank,
                              attn_implementation=attn_implementation,
                              gradient_checkpointing=gradient_checkpointing, activation_bytes=activation_bytes)[0]


def estimate_finetune_memory(n_params: int, *, mode: str = "full", trainable_params: int | None = None,
                             weight_bytes: float = 2, mixed_precision: bool = True, optimizer: str = "adamw",
                             batch_size: int = 1, seq_len: int = 512, hidden_size: int | None = None,
                             num_layers: int | None = None, intermediate_size: int | None = None,
                             num_heads: int | None = None, vocab_size: int | None = None,
                             num_kv_heads: int | None = None, head_dim: int | None = None,
                             tie_embeddings: bool = False, gradient_checkpointing: bool = False,
                             activation_bytes: float | None = None, attn_implementation: str = "sdpa",
                             lora_rank: int = 8, lora_targets: Sequence[str] = ("q_proj", "v_proj"),
                             double_quant: bool = True, optimizer_impl: str = "fused",
                             master: str = "copy") -> MemoryEstimate:
    """Estimate the memory of one fine-tuning step of a Llama-style model.

    Per parameter (see :func:`bytes_per_param`): ``full`` trains everything, 16 B/param with mixed-precision
    or fp32 Adam. ``lora`` stores the frozen base at ``weight_bytes`` and pays gradients + optimizer state
    (+ the fp32 master copy when mixed) only for the adapters. ``qlora`` stores the frozen linear layers in
    4-bit NF4 (0.5 B/param) plus their quantization constants (0.127 bit/param with double quantization, 0.5
    without); embeddings and lm_head stay at ``weight_bytes``. Activations: :func:`activation_memory` (needs
    all of hidden_size, num_layers, intermediate_size, num_heads, vocab_size; without any of them activations
    are left out, which the estimate's ``note`` says).

    Args:
        n_params: all parameters of the model (tied embeddings counted once).
        mode: ``"full"``, ``"lora"`` or ``"qlora"``.
        trainable_params: defaults to n_params (full), else LoRA rank ``lora_rank`` on ``lora_targets``.
        weight_bytes: bytes per stored weight: 2 (bf16/fp16) or 4 (fp32).
        mixed_precision: 16-bit compute with fp32 master weights and fp32 optimizer state.
        optimizer: ``"adamw"``/``"adam"`` (2 states), ``"sgd_momentum"`` (1), ``"sgd"`` (0).
        activation_bytes: defaults to 2 when mixed_precision, else weight_bytes.
        tie_embeddings: the output layer shares the embedding matrix (SmolLM2, Llama-3.2-1B).
        gradient_checkpointing, attn_implementation: see :func:`activation_memory`.
        lora_rank, lora_targets: the adapters (they set the LoRA parameter count and what activations are saved).
        double_quant: QLoRA's quantized quantization constants.
        master: ``"copy"`` (16-bit weights beside an fp32 master copy) or ``"upcast"`` (trainable weights stored
            in fp32, as the course engine does); see :func:`bytes_per_param`.
        optimizer_impl: how the update runs, which sets its scratch memory. ``"fused"`` (``AdamW(fused=True)``,
            the transformers Trainer's default) needs none; ``"foreach"`` (plain ``torch.optim.AdamW`` on CUDA)
            one more copy of v, i.e. 4 more B/param; ``"single"`` (plain ``AdamW`` on CPU) two temporaries of
            the largest trainable tensor.

    Raises:
        ValueError: unknown mode / optimizer, negative or inconsistent sizes; the message names the fix.
    """
    one_of("mode", mode, MODES)
    one_of("optimizer", optimizer, OPTIMIZER_STATES)
    one_of("optimizer_impl", optimizer_impl, OPTIMIZER_IMPLS)
    for name, v in (("n_params", n_params), ("weight_bytes", weight_bytes)):
        positive_float(name, v, _example(name))
    positive_int("batch_size", batch_size)
    positive_int("seq_len", seq_len)
    dims = {"hidden_size": hidden_size, "num_layers": num_layers, "intermediate_size": intermediate_size,
            "num_heads": num_heads, "vocab_size": vocab_size}
    missing = [k for k, v in dims.items() if v is None]
    if missing and len(missing) < len(dims):
        raise ValueError(f"Activations need all model sizes; missing {', '.join(missing)}. Pass them all, none "
                         "(weights and optimizer only), or use estimate_from_model(model).")
    if not missing:
        for k, v in dims.items():
            positive_int(k, v)
        _check_heads(hidden_size, num_heads, num_kv_heads, head_dim)
    positive_int("lora_rank", lora_rank)
    shapes = None if missing else _linear_shapes(hidden_size, intermediate_size, num_heads, num_kv_heads, head_dim)
    per_param = bytes_per_param(weight_bytes=weight_bytes, mixed_precision=mixed_precision, optimizer=optimizer,
                                master=master)

    if trainable_params is None:
        if mode == "full":
            trainable_params = n_params
        elif shapes is None:
            raise ValueError(f"mode={mode!r} needs trainable_params=..., or the model sizes (hidden_size, "
                             "num_layers, ...) to count LoRA parameters.")
        else:
            _check_targets(set(lora_targets))
            trainable_params = num_layers * sum(lora_rank * (i + o) for k, (i, o) in shapes.items()
                                                if k in lora_targets)
    if not 0 <= trainable_params <= n_params:
        raise ValueError(f"trainable_params must be between 0 and n_params ({n_params}), got {trainable_params}.")
    frozen = n_params - trainable_params

    if mode == "qlora":
        embed = 0 if missing else vocab_size * hidden_size * (1 if tie_embeddings else 2)
        quantized = max(frozen - embed, 0)
        weights = quantized * (NF4_BITS + QUANT_CONST_BITS[double_quant]) / 8 + (frozen - quantized) * weight_bytes
    else:
        weights = frozen * weight_bytes
    weights += trainable_params * per_param["weights"]
    gradients = trainable_params * per_param["gradients"]
    optimizer_bytes = trainable_params * (per_param["master copy"] + per_param["optimizer states"])

    # Only Adam's update needs scratch: denom = sqrt(v) / bias_correction + eps. SGD updates in place.
    state_bytes = 4 if mixed_precision else weight_bytes
    scratch = 0
    if OPTIMIZER_STATES[optimizer] == 2 and optimizer_impl == "foreach":
        scratch = trainable_params * state_bytes  # sqrt of every v at once
    elif OPTIMIZER_STATES[optimizer] == 2 and optimizer_impl == "single" and shapes is not None:
        if mode == "full":
            largest = max([vocab_size * hidden_size] + [i * o for i, o in shapes.values()])
        else:
            largest = max(lora_rank * max(i, o) for k, (i, o) in shapes.items() if k in lora_targets)
        scratch = 2 * largest * state_bytes  # sqrt(v) and its rescaled copy, one tensor at a time

    note, activations, first_layer = "", 0, 0
    if missing:
        note = ("activations not estimated: pass hidden_size, num_layers, intermediate_size, num_heads and "
                "vocab_size (or use estimate_from_model).")
    else:
        if activation_bytes is None:
            activation_bytes = 2 if mixed_precision else weight_bytes
        activations, first_layer = _activation_phases(
            batch_size, seq_len, hidden_size=hidden_size, num_layers=num_layers,
            intermediate_size=intermediate_size, num_heads=num_heads, vocab_size=vocab_size,
            num_kv_heads=num_kv_heads, head_dim=head_dim, frozen_base=mode != "full", lora_targets=lora_targets,
            lora_rank=lora_rank, attn_implementation=attn_implementation,
            gradient_checkpointing=gradient_checkpointing, activation_bytes=activation_bytes)
        if activation_bytes < weight_bytes and mode != "qlora":
            # autocast over float32 weights (a T4): every matmul casts its weight to 16 bits and autograd keeps that
            # copy for the backward pass, so a 16-bit copy of the weights joins the activations (the input
            # embedding excepted: a lookup is not cast).
            cast = n_params - (0 if tie_embeddings else vocab_size * hidden_size)
            activations += int(cast * activation_bytes)
    return MemoryEstimate(int(weights), int(gradients), int(optimizer_bytes), activations,
                          int(max(scratch, first_layer)), note)


def estimate_from_model(model, mode: str | None = None, *, batch_size: int = 1, seq_len: int = 512,
                        **kwargs) -> MemoryEstimate:
    """:func:`estimate_finetune_memory` with sizes, dtype, LoRA settings and checkpointing read from a model.

    Reads: parameter counts (tied weights once; ``requires_grad`` gives the trainable ones), the weight dtype
    and device, and describes what ``sft.train`` does with them: trainable weights stored in fp32 (the master
    weights, ``master="upcast"``) and activations in 16 bits wherever training runs under autocast
    (:func:`device.autocast_dtype`: a 16-bit model, or an fp32 model on a GPU), the config's dimensions and attention
    implementation, a peft model's LoRA rank and targets, whether gradient checkpointing is on, and the device
    (plain ``torch.optim.AdamW``, as :func:`measure_training_step` uses, runs one tensor at a time on CPU and
    ``foreach`` on CUDA). Any keyword overrides what was read.

    Args:
        mode: ``"full"``, ``"lora"`` or ``"qlora"``; default: ``"qlora"`` for a 4-bit model, ``"full"`` when
            every parameter trains, else ``"lora"``.
    """
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    params = list(model.parameters())  # tied weights once: parameters() skips repeats
    n_params = sum(_numel(p) for p in params)
    trainable = sum(_numel(p) for p in params if p.requires_grad)
    quantized = any(type(p).__name__ == "Params4bit" for p in params)
    if mode is None:
        mode = "qlora" if quantized else "full" if trainable == n_params else "lora"
    from course_utils.device import autocast_dtype

    # the stored dtype of the frozen weights (trainable ones may already be upcast by a previous train())
    float_params = [p for p in params if p.is_floating_point() and not p.requires_grad] or \
        [p for p in params if p.is_floating_point()]
    weight_bytes = float_params[0].element_size() if float_params else 2
    amp = autocast_dtype(params[0].device, float_params[0].dtype if float_params else torch.float32)
    read = {"trainable_params": None if mode == "full" else trainable,
            "weight_bytes": weight_bytes, "mixed_precision": amp is not None, "master": "upcast",
            "activation_bytes": 2 if amp is not None else weight_bytes,
            "hidden_size": cfg.hidden_size, "num_layers": cfg.num_hidden_layers,
            "intermediate_size": cfg.intermediate_size, "num_heads": cfg.num_attention_heads,
            "num_kv_heads": getattr(cfg, "num_key_value_heads", None), "head_dim": getattr(cfg, "head_dim", None),
            "vocab_size": cfg.vocab_size, "tie_embeddings": bool(getattr(cfg, "tie_word_embeddings", False)),
            "attn_implementation": getattr(cfg, "_attn_implementation", None) or "sdpa",
            "gradient_checkpointing": _checkpointing_on(model),
            "optimizer_impl": "single" if params[0].device.type == "cpu" else "foreach"}
    peft_cfg = getattr(model, "peft_config", {}).get("default")
    if peft_cfg is not None and getattr(peft_cfg, "r", None):
        targets = peft_cfg.target_modules  # a set of names, a regex string, or "all-linear"
        targets = [targets] if isinstance(targets, str) else list(targets)
        names = LINEAR_NAMES if targets == ["all-linear"] else [n for n in LINEAR_NAMES if any(n in t for t in targets)]
        read.update(lora_rank=peft_cfg.r, lora_targets=tuple(names))
    from course_utils.lora import lora_layers  # the course's own LoRA (chapter 4), read the same way

    ours = lora_layers(model)
    if ours:
        read.update(lora_rank=next(iter(ours.values())).r,
                    lora_targets=tuple(n for n in LINEAR_NAMES if any(k.endswith(n) for k in ours)))
    read.update(kwargs)
    return estimate_finetune_memory(n_params, mode=mode, batch_size=batch_size, seq_len=seq_len, **read)


# Llama-family shapes from the models' config.json files (n_params is computed from them).
MODEL_SHAPES: dict[str, dict] = {
    "SmolLM2-135M": {"hidden_size": 576, "num_layers": 30, "intermediate_size": 1536, "num_heads": 9,
                     "num_kv_heads": 3, "vocab_size": 49152, "tie_embeddings": True},
    "Llama-3.2-1B": {"hidden_size": 2048, "num_layers": 16, "intermediate_size": 8192, "num_heads": 32,
                     "num_kv_heads": 8, "vocab_size": 128256, "head_dim": 64, "tie_embeddings": True},
    "Llama-2-7B": {"hidden_size": 4096, "num_layers": 32, "intermediate_size": 11008, "num_heads": 32,
                   "num_kv_heads": 32, "vocab_size": 32000, "tie_embeddings": False},
    "Llama-2-70B": {"hidden_size": 8192, "num_layers": 80, "intermediate_size": 28672, "num_heads": 64,
                    "num_kv_heads": 8, "vocab_size": 32000, "tie_embeddings": False},
}


def llama_param_count(hidden_size: int, num_layers: int, intermediate_size: int, num_heads: int, vocab_size: int,
                      num_kv_heads: int | None = None, head_dim: int | None = None,
                      tie_embeddings: bool = False) -> int:
    """Parameters of a Llama-style decoder: embeddings (x2 unless tied) + per layer 7 linears and 2 norms."""
    shapes = _linear_shapes(hidden_size, intermediate_size, num_heads, num_kv_heads, head_dim)
    per_layer = sum(i * o for i, o in shapes.values()) + 2 * hidden_size
    return vocab_size * hidden_size * (1 if tie_embeddings else 2) + num_layers * per_layer + hidden_size


def memory_table(models: Sequence[str] = tuple(MODEL_SHAPES), modes: Sequence[str] = MODES, *,
                 batch_size: int = 1, seq_len: int = 512, **kwargs) -> list[dict]:
    """Estimates for several model sizes x fine-tuning modes, one dict per row (sizes in GiB).

    Defaults: bf16 weights, mixed-precision AdamW, batch 1 x 512 tokens, LoRA r=8 on q_proj, v_proj for both
    LoRA and QLoRA (so the two differ only in how the base is stored). ``kwargs`` go to
    :func:`estimate_finetune_memory` (e.g. ``gradient_checkpointing=True``). Print with
    :func:`format_memory_table`, draw with :func:`plot_memory_table`.
    """
    not_a_str("models", models, f"pass a list, e.g. models=[{models!r}]")
    not_a_str("modes", modes, f"pass a list, e.g. modes=[{modes!r}]")
    for mode in modes:
        one_of("mode", mode, MODES)
    unknown = [m for m in models if m not in MODEL_SHAPES]
    if unknown:
        raise ValueError(f"Unknown model(s) {unknown}; choose from {list(MODEL_SHAPES)} or add a shape to "
                         "MODEL_SHAPES.")
    rows = []
    for name in models:
        shape = MODEL_SHAPES[name]
        n = llama_param_count(**shape)
        for mode in modes:
            est = estimate_finetune_memory(n, mode=mode, batch_size=batch_size, seq_len=seq_len, **shape, **kwargs)
            g = est.as_gib()
            rows.append({"model": name, "params_B": round(n / 1e9, 3), "mode": mode,
                         **{k: round(g[k], 2) for k in ("weights", "gradients", "optimizer", "activations",
                                                         "total", "peak")}})
    return rows


def format_memory_table(rows: Sequence[dict]) -> str:
    """A fixed-width text table of :func:`memory_table` rows (GiB), for ``print``."""
    if not rows:
        return ""
    cols = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in cols]

    def line(vals) -> str:
        return "  ".join(str(v).rjust(w) for v, w in zip(vals, widths, strict=True))

    return "\n".join([line(cols), line("-" * w for w in widths)] + [line(r[c] for c in cols) for r in rows])


def plot_memory_table(rows: Sequence[dict], gpu_gib: Sequence[float] = (24, 80)):
    """Stacked bars of weights / gradients / optimizer / activations: one panel (own scale) per model.

    Dashed lines mark common GPU sizes (24 GB consumer card, 80 GB A100/H100). Returns the figure.
    """
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError("No rows to plot: pass memory_table(...).")
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(1, len(models), figsize=(3.2 * len(models), 3.6), squeeze=False)
    axes = axes[0]
    parts = ("weights", "gradients", "optimizer", "activations")
    colours = ("#4c72b0", "#dd8452", "#c44e52", "#55a868")
    for a, model in zip(axes, models, strict=True):
        sub = [r for r in rows if r["model"] == model]
        bottom = [0.0] * len(sub)
        for part, colour in zip(parts, colours, strict=True):
            vals = [r[part] for r in sub]
            a.bar([r["mode"] for r in sub], vals, bottom=bottom, color=colour, label=part)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        for g in gpu_gib:
            if g < 1.3 * max(bottom):
                a.axhline(g, ls="--", lw=0.8, color="grey")
                a.text(len(sub) - 0.5, g, f"{g:g} GiB", fontsize=7, va="bottom", ha="right", color="grey")
        a.set_title(f"{model} ({sub[0]['params_B']:g}B)")
        a.set_ylabel("GiB")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def measure_peak_memory(fn: Callable[[], T], device: str | torch.device | None = None) -> tuple[T, int]:
    """Run ``fn()`` and return ``(its result, peak bytes torch allocated during it)``.

    The peak is measured from the moment ``fn`` starts: bytes that already existed are not included (add them
    yourself, as :func:`measure_training_step` does), memory ``fn`` creates and keeps (e.g. optimizer state)
    is. Same meaning on both devices:

    * CUDA: ``max_memory_allocated() - memory_allocated()`` before, after ``reset_peak_memory_stats``.
    * CPU: torch keeps no CPU statistics, so ``fn`` runs under ``torch.profiler`` with ``profile_memory=True``
      and the allocation events (the data behind ``export_memory_timeline``) are summed in time order. The
      profiler never saw tensors allocated before it started, so their frees are invisible: if ``fn`` frees
      older tensors the peak is over-counted by that amount. Only torch tensors count, not Python objects.

    Args:
        device: ``"cuda"``/``"cpu"``; default CUDA when available, else CPU.

    Raises:
        ValueError: a device other than CPU or CUDA (MPS has no peak statistics; use ``device="cpu"``).
    """
    dev = torch.device(device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        before = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        result = fn()
        torch.cuda.synchronize(dev)
        return result, torch.cuda.max_memory_allocated(dev) - before
    if dev.type != "cpu":
        raise ValueError(f"measure_peak_memory supports 'cpu' and 'cuda', not {dev.type!r}: torch has no peak "
                         "statistics there. Run the measurement with device='cpu'.")
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
    return result, _cpu_peak(prof)


def _cpu_peak(prof) -> int:
    """Peak of the running sum of CPU allocation events (+size on alloc, -size on free), in time order."""
    from torch._C._profiler import _EventType

    events, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.tag == _EventType.Allocation and node.extra_fields.device.type == "cpu":
            events.append((node.start_time_ns, node.extra_fields.alloc_size))
    current = peak = 0
    for _, size in sorted(events, key=lambda e: e[0]):
        current += size
        peak = max(peak, current)
    return peak


@dataclass(frozen=True)
class StepMeasurement:
    """What one measured training step used.

    Attributes:
        peak: baseline + increase: the step's high-water mark, comparable to ``MemoryEstimate.peak``.
        baseline: bytes that existed before the step: parameters and optimizer state.
        increase: the peak allocated on top of the baseline during the step (activations, gradients, scratch).
        seconds: wall-clock time of the fastest timed step, the one least disturbed by other processes
            (None if none were timed).
    """

    peak: int
    baseline: int
    increase: int
    seconds: float | None


def measure_training_step(model, batch_size: int = 4, seq_len: int = 128, *, optimizer: str = "adamw",
                          time_steps: int = 1, seed: int = 0) -> StepMeasurement:
    """Run real training steps (forward, backward, optimizer update) on random token ids; measure one.

    What is measured is a steady-state step: a first, unmeasured step creates the optimizer state (as every
    step after the first in a training loop has it), ``time_steps`` steps are timed, then one step runs under
    :func:`measure_peak_memory`. The baseline (parameters + optimizer state, tied weights once) is added to the
    increase so that ``peak`` compares with ``estimate_from_model(model, ...).peak``.

    The optimizer runs with lr=0, so the model's weights do not change. Only parameters with
    ``requires_grad`` train, so a peft model measures LoRA. The step runs as ``sft.train`` runs it: trainable
    16-bit parameters are upcast to float32 in place (the master weights) and the forward and backward run under
    autocast where :func:`device.autocast_dtype` says so (a 16-bit model, or any model on a GPU). Gradient
    checkpointing is used if the model has it on (``model.activation_checkpointing_enable()``). The model is put
    in train mode (checkpointing needs it) and returned to its previous mode; its ``.grad`` are set to None.

    Raises:
        ValueError: no parameter requires grad, bad sizes, or an unknown optimizer.
    """
    positive_int("batch_size", batch_size)
    positive_int("seq_len", seq_len)
    one_of("optimizer", optimizer, ("adamw", "sgd"))
    non_negative_int("time_steps", time_steps, "pass e.g. time_steps=1 (0: measure memory only)")
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("No parameter requires grad: for full fine-tuning call model.requires_grad_(True); "
                         "for LoRA wrap the model with peft.get_peft_model first.")
    from .device import LOW_PRECISION, autocast_dtype

    dev = trainable[0].device
    frozen = [p for p in model.parameters() if not p.requires_grad and p.is_floating_point()]
    amp = autocast_dtype(dev, (frozen or trainable)[0].dtype)
    for p in trainable:  # as sft.upcast_trainable: the update is applied to float32 weights
        if p.dtype in LOW_PRECISION:
            p.data = p.data.float()
    opt = (torch.optim.AdamW(trainable, lr=0.0) if optimizer == "adamw" else torch.optim.SGD(trainable, lr=0.0))
    vocab = model.config.get_text_config().vocab_size
    ids = torch.randint(0, vocab, (batch_size, seq_len), generator=torch.Generator().manual_seed(seed)).to(dev)
    was_training = model.training
    for p in model.parameters():
        p.grad = None  # a free of pre-existing grads inside the step would be invisible to the CPU profiler

    def step() -> float:
        with torch.autocast(dev.type, dtype=amp) if amp is not None else contextlib.nullcontext():
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss  # drop the output: logits are freed
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    try:
        model.train()
        step()
        times = []
        for _ in range(time_steps):
            start = time.perf_counter()
            step()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)  # the update runs asynchronously
            times.append(time.perf_counter() - start)
        baseline = _storage_bytes(list(model.parameters()) +
                                  [t for s in opt.state.values() for t in s.values() if torch.is_tensor(t)])
        _, increase = measure_peak_memory(step, dev)
    finally:
        model.train(was_training)
        opt.state.clear()
    return StepMeasurement(baseline + increase, baseline, increase, min(times) if times else None)


# --- helpers -------------------------------------------------------------------------------------------------

def _activation_phases(batch_size: int, seq_len: int, *, hidden_size: int, num_layers: int,
                       intermediate_size: int, num_heads: int, vocab_size: int, num_kv_heads: int | None,
                       head_dim: int | None, frozen_base: bool, lora_targets: Iterable[str], lora_rank: int,
                       attn_implementation: str, gradient_checkpointing: bool,
                       activation_bytes: float) -> tuple[int, int]:
    """(activations at the start of backward, activations while the first layer runs its backward).

    The second moment matters because almost every gradient already exists then (see MemoryEstimate.peak).
    """
    for name, v in (("batch_size", batch_size), ("seq_len", seq_len), ("hidden_size", hidden_size),
                    ("num_layers", num_layers), ("intermediate_size", intermediate_size),
                    ("num_heads", num_heads), ("vocab_size", vocab_size), ("lora_rank", lora_rank)):
        positive_int(name, v)
    positive_float("activation_bytes", activation_bytes, _example("activation_bytes"))
    _check_heads(hidden_size, num_heads, num_kv_heads, head_dim)
    one_of("attn_implementation", attn_implementation, ATTENTION_IMPLS)
    targets = set(lora_targets)
    _check_targets(targets)
    h, ffn, n, s, a = hidden_size, intermediate_size, num_heads, seq_len, activation_bytes
    d = head_dim or h // n
    q, kv = n * d, (num_kv_heads or n) * d
    f32 = 4  # RMSNorm input and softmax are computed in fp32 (Llama's code upcasts)
    eager = attn_implementation == "eager"
    probs = n * s * (f32 + (a if a < 4 else 0))  # fp32 softmax output, plus its cast back when bf16

    if not frozen_base:
        norms = 2 * (h * f32 + 2 * h * a)
        attn = (4 * q * a + probs) if eager else ((2 * q + 2 * kv) * a + n * f32)
        layer = norms + attn + 4 * ffn * a + 2 * f32
        final_norm = h * f32 + 2 * h * a
    else:
        saved_y1 = bool(targets & {"q_proj", "k_proj", "v_proj"})
        saved_y2 = bool(targets & {"gate_proj", "up_proj"})
        norms = 2 * h * f32 + (saved_y1 + saved_y2) * h * a
        if eager:
            attn = (3 * q + (q if "o_proj" in targets else 0)) * a + probs
        else:
            attn = (2 * q + 2 * kv) * a + n * f32
        mlp = (3 + ("down_proj" in targets)) * ffn * a
        layer = norms + attn + mlp + len(targets) * lora_rank * a + 2 * f32
        final_norm = h * f32
    tokens = batch_size * seq_len
    head = 3 * 4 * vocab_size  # per token
    # A layer's own backward peaks in the MLP product's backward: incoming gradient + 3 gradients of size I.
    layer_backward = (h + 3 * ffn) * a
    if gradient_checkpointing:
        # The recomputed layer's input *is* the checkpoint, unless the norm upcasts it to fp32 (16-bit runs).
        recomputed = layer - (h * f32 if a >= f32 else 0)
        start = num_layers * h * a + final_norm + max(head, recomputed + layer_backward)
    else:
        start = num_layers * layer + final_norm + max(head, layer_backward)
    return int(tokens * start), int(tokens * (layer + layer_backward))


def _linear_shapes(h: int, ffn: int, n: int, n_kv: int | None, head_dim: int | None) -> dict[str, tuple[int, int]]:
    """(in, out) features of each linear layer of a Llama block."""
    d = head_dim or h // n
    q, kv = n * d, (n_kv or n) * d
    return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
            "gate_proj": (h, ffn), "up_proj": (h, ffn), "down_proj": (ffn, h)}


def _numel(p: torch.Tensor) -> int:
    # bitsandbytes packs two 4-bit weights per uint8 element
    return p.numel() * 2 if type(p).__name__ == "Params4bit" else p.numel()


def _storage_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (views and tied weights count once)."""
    seen: dict[int, int] = {}
    for t in tensors:
        st = t.untyped_storage()
        seen[st.data_ptr()] = st.nbytes()
    return sum(seen.values())


def _checkpointing_on(model) -> bool:
    for name in ("is_activation_checkpointing", "is_gradient_checkpointing"):
        try:
            return bool(getattr(model, name))
        except AttributeError:
            continue
    return False


def _example(name: str) -> str:
    return f"pass e.g. {name}={ {'n_params': '7e9'}.get(name, 2 if name.endswith('_bytes') else 1)}"


def _check_heads(hidden_size: int, num_heads: int, num_kv_heads, head_dim) -> None:
    """The optional attention sizes: positive counts when given; without head_dim, the heads must split hidden."""
    for name, v in (("num_kv_heads", num_kv_heads), ("head_dim", head_dim)):
        if v is not None:
            positive_int(name, v)
    if head_dim is None and hidden_size % num_heads:
        raise ValueError(f"hidden_size={hidden_size} does not split into num_heads={num_heads} heads: pass "
                         "head_dim=... (the model config's) or sizes where num_heads divides hidden_size.")


def _check_targets(targets: set[str]) -> None:
    bad = targets - set(LINEAR_NAMES)
    if bad:
        raise ValueError(f"Unknown LoRA target(s) {sorted(bad)}; Llama's linear layers are {', '.join(LINEAR_NAMES)}.")
