"""Where tensors live and how runs repeat: device, dtype and seeds."""

from __future__ import annotations

import os
import random
import warnings

import numpy as np
import torch


def pick_device(prefer: str | torch.device | None = None) -> torch.device:
    """Choose the device: ``prefer`` if given, else CUDA, then Apple MPS (with a warning), then CPU.

    ``$COURSE_DEVICE`` overrides the automatic choice (e.g. ``COURSE_DEVICE=cpu`` on a GPU machine).

    Raises:
        ValueError: if ``prefer`` names a device this machine does not have.
    """
    prefer = prefer if prefer is not None else os.environ.get("COURSE_DEVICE") or None
    if prefer is not None:
        dev = torch.device(prefer)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("CUDA was requested but torch sees no GPU. Use device='cpu', or install a CUDA build "
                             "of torch (README: 'GPU install').")
        if dev.type == "mps" and not _mps_available():
            raise ValueError("MPS was requested but is not available on this machine. Use device='cpu'.")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        warnings.warn("Using Apple MPS: most chapters work, but some ops fall back to the CPU and numbers can "
                      "differ slightly from the CPU reference. Set COURSE_DEVICE=cpu to compare.", stacklevel=2)
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def pick_dtype(device: str | torch.device | None = None) -> torch.dtype:
    """A sensible compute dtype: bfloat16 on GPUs that support it, float16 on older GPUs, float32 on CPU/MPS.

    float32 on the CPU keeps smoke numbers exact and repeatable; CPU bfloat16 matmuls are also slower here.
    """
    dev = torch.device(device) if device is not None else pick_device()
    if dev.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def set_seed(seed: int = 0, *, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices) so runs repeat.

    Args:
        seed: the seed.
        deterministic: also ask torch for deterministic kernels (slower on GPU; CPU is already deterministic
            for the ops the course uses).
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds every CUDA device too
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def describe_device(device: str | torch.device | None = None) -> str:
    """One line naming the device, e.g. ``cuda (NVIDIA T4, 15.0 GiB)`` or ``cpu (2 threads)``."""
    dev = torch.device(device) if device is not None else pick_device()
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        return f"cuda ({props.name}, {props.total_memory / 2**30:.1f} GiB)"
    if dev.type == "mps":
        return "mps (Apple GPU)"
    return f"cpu ({torch.get_num_threads()} threads)"
