"""Checkpoints that make a fine-tune resumable: the trainable weights (safetensors), the optimiser and schedule,
the loss history and the random state, written atomically (a temporary folder, then a rename).

``sft.train(..., TrainConfig(output_dir=..., checkpoint_every=N))`` writes ``output_dir/checkpoint-last`` every
N steps and when stopped; calling it again resumes from there, on exactly the batches the uninterrupted run
would have seen (:func:`sft.step_indices`). A peft model's checkpoint holds its weights as a peft adapter
(``adapter_config.json`` + ``adapter_model.safetensors``), so any checkpoint also loads with
``PeftModel.from_pretrained``; other models' as ``trainable.safetensors``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .device import model_device


def trainable_state(model) -> dict[str, torch.Tensor]:
    """The parameters that training changes (all of them for full fine-tuning, the LoRA / adapter ones otherwise)."""
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(path: str | Path, model, optimizer, scheduler, result: Any) -> Path:
    """Write ``path/``: the trainable weights (safetensors), the optimiser and schedule, the history ``result``
    (an ``sft.TrainResult``) and the RNG state.

    Written to a temporary folder and renamed, so an interrupted save never leaves a half checkpoint.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "peft_config"):
        model.save_pretrained(tmp)  # the adapter, as peft writes it
    else:
        save_file(trainable_state(model), tmp / "trainable.safetensors")
    save_file({"cpu_rng": torch.get_rng_state()}, tmp / "rng.safetensors")
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optimizer.pt")
    state = asdict(result)
    (tmp / "trainer_state.json").write_text(json.dumps(state))
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)
    return path


def load_checkpoint(path: str | Path, model, optimizer, scheduler) -> dict:
    """Restore what :func:`save_checkpoint` wrote; returns the history so far (safetensors + weights_only)."""
    path = Path(path)
    if (path / "adapter_model.safetensors").is_file():
        _load_adapter(path, model)
    else:
        _load_trainable(path, model)
    states = torch.load(path / "optimizer.pt", weights_only=True, map_location=model_device(model))
    optimizer.load_state_dict(states["optimizer"])
    scheduler.load_state_dict(states["scheduler"])
    torch.set_rng_state(load_file(path / "rng.safetensors")["cpu_rng"])
    state = json.loads((path / "trainer_state.json").read_text())
    state["eval_losses"] = [tuple(x) for x in state["eval_losses"]]
    return state


def _load_adapter(path: Path, model) -> None:
    from peft import set_peft_model_state_dict

    if not hasattr(model, "peft_config"):
        raise ValueError(f"Checkpoint {path} is a peft adapter but the model has none: wrap it with "
                         "peft.get_peft_model as before, or use a new output_dir.")
    weights = load_file(path / "adapter_model.safetensors")
    result = set_peft_model_state_dict(model, weights)
    if result.unexpected_keys:
        raise ValueError(f"Checkpoint {path} does not match this model (no parameter {result.unexpected_keys[0]!r}). "
                         "Use a new output_dir, or build the model the same way (same LoRA targets and rank).")


def _load_trainable(path: Path, model) -> None:
    weights = load_file(path / "trainable.safetensors")
    params = dict(model.named_parameters())
    missing = [n for n in weights if n not in params]
    if missing:
        raise ValueError(f"Checkpoint {path} does not match this model (no parameter {missing[0]!r}). Use a new "
                         "output_dir, or build the model the same way (same LoRA targets and rank) as before.")
    with torch.no_grad():
        for n, w in weights.items():
            params[n].copy_(w)
