"""The same fine-tune with ``transformers.Trainer``, the library's engine, for comparison with the course's loop
(``sft.train``, chapter 4): same examples in the same order, same optimiser, schedule, clipping and accumulation."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from . import sft
from .sft import SFTCollator, TrainConfig, TrainResult, resolve_autocast, step_indices, upcast_trainable


def trainer_finetune(model, train_data: Sequence[dict], cfg: TrainConfig, *, pad_id: int | None = None,
                     output_dir: str | None = None) -> TrainResult:
    """The same run with ``transformers.Trainer`` (the library's engine), for comparison with :func:`sft.train`.

    Trainer gets the examples in exactly :func:`sft.step_indices`' order (a sequential sampler over the pre-ordered
    list), the same AdamW, schedule, clipping and accumulation, so on the same model the two loss curves should
    agree closely. It writes nothing to disk (``save_strategy="no"``).
    """
    import tempfile

    from torch.utils.data import SequentialSampler
    from transformers import Trainer, TrainingArguments

    cfg.validate(len(train_data))
    amp = resolve_autocast(model, cfg)
    upcast_trainable([p for p in model.parameters() if p.requires_grad])  # Trainer's fp16 needs fp32 masters
    collate = SFTCollator(sft._pad_id(model, pad_id))
    ordered = [train_data[i] for s in range(cfg.steps)
               for i in step_indices(s, len(train_data), cfg.batch_size, cfg.seed)]

    class InOrderTrainer(Trainer):
        def _get_train_sampler(self, *args, **kwargs):
            return SequentialSampler(self.train_dataset)

    args = TrainingArguments(
        output_dir=output_dir or tempfile.mkdtemp(prefix="trainer-"), max_steps=cfg.steps,
        per_device_train_batch_size=cfg.batch_size // cfg.grad_accum, gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr, weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps,
        lr_scheduler_type="constant_with_warmup" if cfg.schedule == "constant" else cfg.schedule,
        max_grad_norm=cfg.max_grad_norm or 0.0, activation_checkpointing=cfg.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False}, logging_steps=1, save_strategy="no",
        report_to="none", use_cpu=sft.model_device(model).type == "cpu", seed=cfg.seed, disable_tqdm=not cfg.progress,
        dataloader_pin_memory=False, bf16=amp == torch.bfloat16, fp16=amp == torch.float16)
    trainer = InOrderTrainer(model=model, args=args, train_dataset=ordered,
                             data_collator=lambda ex: {k: v for k, v in collate(ex).items() if k != "weight"})
    if not cfg.progress:  # without a bar Trainer prints every log dict instead; the history is kept either way
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    log = [h for h in trainer.state.log_history if "loss" in h and "train_runtime" not in h]
    model.eval()
    return TrainResult(losses=[h["loss"] for h in log], lrs=[h.get("learning_rate", 0.0) for h in log],
                       step=trainer.state.global_step, seconds=seconds,
                       tokens=_padded_tokens(ordered, cfg.batch_size // cfg.grad_accum))


def _padded_tokens(ordered: Sequence[dict], micro: int) -> int:
    """Tokens the model computed on (padding included), micro-batch by micro-batch, as :func:`sft.train` counts."""
    return sum(len(ordered[i:i + micro]) * max(len(e["input_ids"]) for e in ordered[i:i + micro])
               for i in range(0, len(ordered), micro))
