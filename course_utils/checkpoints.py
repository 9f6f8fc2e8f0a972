"""Checkpoints that make a fine-tune resumable: the trainable weights (safetensors), the optimiser and schedule,
the loss history, the random state and the run's fingerprint, written atomically (a temporary folder, then a
rename; the previous checkpoint stays on disk until the new one is in place).

``sft.train(..., TrainConfig(output_dir=..., checkpoint_every=N))`` writes ``output_dir/checkpoint-last`` every
N steps and when stopped; calling it again resumes from there, on exactly the batches the uninterrupted run
would have seen (:func:`sft.step_indices`). A peft model's checkpoint holds its weights as a peft adapter
(``adapter_config.json`` + ``adapter_model.safetensors``), so any checkpoint also loads with
``PeftModel.from_pretrained``; other models' as ``trainable.safetensors``.

A checkpoint resumes only the run that wrote it: :func:`run_fingerprint` records the settings that change the
result (steps, learning rate, schedule, seed, ...), a hash of the training data and of the model's trainable
shapes and configuration, and :func:`check_same_run` refuses another run's checkpoint with what differs.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import threading
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .device import model_device

#: The settings of ``sft.TrainConfig`` that change what a run computes (not how it is shown or where it is saved;
#: ``grad_accum`` is left out: the update is the same, and a GPU may change it to fit its memory).
RUN_SETTINGS = ("steps", "batch_size", "lr", "weight_decay", "warmup_steps", "schedule", "max_grad_norm", "seed",
                "autocast")
FINGERPRINT = "run.json"
#: The configuration entries that tell models apart (not ``use_cache`` and others that a run switches on and off).
_CONFIG_KEYS = ("model_type", "_name_or_path", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "intermediate_size", "max_position_embeddings")


class OtherRunError(ValueError):
    """The checkpoint in ``output_dir`` was written by a run with other settings, data or model."""


def _digest(parts: Sequence) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def run_fingerprint(model, train_data: Sequence[dict], cfg) -> dict:
    """What identifies a run: its result-changing settings, a hash of its examples (ids, labels, weights,
    positions) and a hash of the model (its configuration, trainable parameter names and shapes, LoRA scales)."""
    settings = {k: getattr(cfg, k) for k in RUN_SETTINGS}
    data = _digest([[e.get("input_ids"), e.get("labels"), e.get("weight", 1.0), e.get("position_ids")]
                    for e in train_data])
    config = getattr(model, "config", None)
    config = {k: getattr(config, k, None) for k in _CONFIG_KEYS} if config is not None else type(model).__name__
    shapes = [(n, list(p.shape), str(p.dtype)) for n, p in model.named_parameters() if p.requires_grad]
    scales = [(n, m.scaling) for n, m in model.named_modules() if isinstance(getattr(m, "scaling", None),
                                                                              (int, float, dict))]
    model_id = _digest([config, shapes, scales])
    return {"settings": settings, "data": data, "model": model_id}


def check_same_run(path: str | Path, fingerprint: dict) -> None:
    """Raise :class:`OtherRunError` when the checkpoint at ``path`` belongs to another run (what differs, and the
    fix). A checkpoint without a fingerprint (older course versions) is accepted."""
    path = Path(path)
    saved_file = path / FINGERPRINT
    if not saved_file.is_file():
        return
    saved = json.loads(saved_file.read_text())
    diffs = [f"{k}={saved['settings'].get(k)!r} there, {v!r} now" for k, v in fingerprint["settings"].items()
             if saved["settings"].get(k) != v]
    if saved.get("data") != fingerprint["data"]:
        diffs.append("other training data (another file, --limit, --max-len, tokenizer or packing)")
    if saved.get("model") != fingerprint["model"]:
        diffs.append("another model (another base, method, rank, alpha or target modules)")
    if diffs:
        raise OtherRunError(f"The checkpoint in {path} was written by another run: {'; '.join(diffs)}. Resuming "
                            "would mix the two. Use a new output_dir, or start this run afresh with "
                            "overwrite=True (--overwrite on the command line), which deletes the checkpoint.")


def trainable_state(model) -> dict[str, torch.Tensor]:
    """The parameters that training changes (all of them for full fine-tuning, the LoRA / adapter ones otherwise)."""
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def _previous(path: Path) -> Path:
    return path.with_name(path.name + ".previous")


def save_checkpoint(path: str | Path, model, optimizer, scheduler, result: Any, fingerprint: dict | None = None
                    ) -> Path:
    """Write ``path/``: the trainable weights (safetensors), the optimiser and schedule, the history ``result``
    (an ``sft.TrainResult``), the RNG state (CPU, and every GPU's) and the run's ``fingerprint``.

    Written to a temporary folder; the old checkpoint is renamed aside, the new one renamed into place, then the
    old one deleted: at every moment a whole checkpoint is on disk (:func:`find_checkpoint` finds it).
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # a save killed half-way leaves one; its files must not mix in
    tmp.mkdir(parents=True)
    if hasattr(model, "peft_config"):
        model.save_pretrained(tmp)  # the adapter, as peft writes it
    else:
        save_file(trainable_state(model), tmp / "trainable.safetensors")
    rng = {"cpu_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng.update({f"cuda_rng_{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    save_file(rng, tmp / "rng.safetensors")
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optimizer.pt")
    if fingerprint is not None:
        (tmp / FINGERPRINT).write_text(json.dumps(fingerprint, indent=1))
    (tmp / "trainer_state.json").write_text(json.dumps(asdict(result)))  # written last: it marks a whole folder
    old = _previous(path)
    if path.exists():  # else a stopped save left the previous one aside: it stays until the new one is in place
        shutil.rmtree(old, ignore_errors=True)
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def find_checkpoint(path: str | Path) -> Path | None:
    """The whole checkpoint at ``path``, or the previous one when a save was stopped between its two renames."""
    path = Path(path)
    for candidate in (path, _previous(path)):
        if (candidate / "trainer_state.json").is_file():
            return candidate
    return None


def delete_checkpoint(path: str | Path) -> None:
    """Remove the checkpoint at ``path`` and any half-written or previous copy (a fresh start)."""
    path = Path(path)
    for p in (path, _previous(path), path.with_name(path.name + ".tmp")):
        shutil.rmtree(p, ignore_errors=True)


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
    rng = load_file(path / "rng.safetensors")
    torch.set_rng_state(rng["cpu_rng"])
    cuda = [rng[f"cuda_rng_{i}"] for i in range(sum(k.startswith("cuda_rng_") for k in rng))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
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


# ---------------------------------------------------------------------------------------------------------------
# Stopping a run: Ctrl-C, the notebook's stop button, SIGTERM
# ---------------------------------------------------------------------------------------------------------------

class TrainingStopped(KeyboardInterrupt):
    """A run was stopped (Ctrl-C / the stop button: ``SIGINT``; ``SIGTERM``) before its last step. ``checkpoint`` is
    the folder it resumes from (``None`` if it has none); ``exit_code`` what a command should exit with (130 / 143).
    A ``KeyboardInterrupt``, so an uncaught stop still stops the program."""

    def __init__(self, message: str, signal_name: str, step: int, checkpoint: Path | None):
        super().__init__(message)
        self.signal_name, self.step, self.checkpoint = signal_name, step, checkpoint
        self.exit_code = 128 + getattr(signal.Signals, signal_name, signal.SIGINT).value


class StopRequests:
    """While a run trains: the first ``SIGINT`` / ``SIGTERM`` is only recorded (``.signal``), and the loop stops at
    the end of the step it lands in, so weights, optimiser, schedule and step counter stop together and the
    checkpoint is consistent. A second Ctrl-C stops at once. (Handlers can only be set in the main thread;
    elsewhere signals keep their usual effect.)"""

    def __init__(self):
        self.signal: str | None = None
        self._old: dict = {}

    def _handle(self, signum, frame):
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # pressed twice: the user does not want to wait for the step
        self.signal = signal.Signals(signum).name

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                old = signal.signal(sig, self._handle)
                self._old[sig] = signal.SIG_DFL if old is None else old
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def stop_error(step: int, signal_name: str, save, ckpt: Path | None) -> TrainingStopped:
    """Write the checkpoint with ``save()`` (``None`` when the stop came in the middle of a step, whose state is half
    updated) and build the :class:`TrainingStopped` that says how to resume."""
    if save is not None:
        save()
    found = find_checkpoint(ckpt) if ckpt is not None else None
    if ckpt is None:
        how = "there is no checkpoint: set output_dir (and checkpoint_every) to make a run resumable."
    elif save is None:
        kept = f"the last one, in {found}, is kept" if found else "there is none yet"
        how = f"it came in the middle of a step, so no checkpoint was written now; {kept}."
    else:
        how = f"checkpoint saved to {ckpt}."
    message = f"Stopped ({signal_name}) at step {step}: {how} Run the same training again to resume."
    print(message)
    return TrainingStopped(message, signal_name, step, found)
