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


#: ``$COURSE_DTYPE`` names a weight dtype that overrides :func:`pick_dtype` (the GPU check forces each path).
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
#: ``$COURSE_AUTOCAST`` overrides the training compute dtype of :func:`autocast_dtype`: a name above or ``none``.
LOW_PRECISION = (torch.bfloat16, torch.float16)


def _env_dtype(var: str) -> torch.dtype | None | str:
    value = os.environ.get(var, "").strip().lower()
    if not value:
        return "unset"
    if value == "none":
        return None
    if value not in DTYPES:
        raise ValueError(f"${var}={value!r} is not a dtype this course knows: use one of {sorted(DTYPES)}"
                         + (" or 'none'" if var == "COURSE_AUTOCAST" else "") + ", or unset it.")
    return DTYPES[value]


def gpu_capability(device: str | torch.device | None = None) -> tuple[int, int] | None:
    """The CUDA compute capability, e.g. ``(7, 5)`` for a T4 or ``(9, 0)`` for an H100; ``None`` off CUDA."""
    dev = torch.device(device) if device is not None else pick_device()
    if dev.type != "cuda":
        return None
    return tuple(torch.cuda.get_device_capability(dev))


def has_native_bf16(device: str | torch.device | None = None) -> bool:
    """True on GPUs with bfloat16 tensor cores (compute capability >= 8.0: A100, L4, H100, RTX 30xx and later).

    ``torch.cuda.is_bf16_supported()`` is also true on a T4 (7.5), where bfloat16 is emulated: slow, and a trap
    for training. The course asks for the hardware.
    """
    cap = gpu_capability(device)
    return cap is not None and cap >= (8, 0)


def pick_dtype(device: str | torch.device | None = None) -> torch.dtype:
    """The weight dtype to load a model in.

    - CPU and Apple MPS: float32 (exact, repeatable smoke numbers; CPU bfloat16 matmuls are slower here).
    - GPUs with native bfloat16 (compute capability >= 8.0): bfloat16, half the memory and the fast kernels.
    - Older GPUs (a T4 on Colab, 7.5; a V100, 7.0): float32 weights. The course's models are small (135M and
      270M parameters: 0.5 and 1.1 GB in float32), and float16 *weights* overflow and lose updates; training
      still runs its matmuls in float16 under autocast with a gradient scaler (:func:`autocast_dtype`).

    ``$COURSE_DTYPE`` (float32 / bfloat16 / float16) overrides this.
    """
    forced = _env_dtype("COURSE_DTYPE")
    if forced != "unset":
        if forced is None:
            raise ValueError("$COURSE_DTYPE=none is not a weight dtype: use float32, bfloat16 or float16.")
        return forced
    return torch.bfloat16 if has_native_bf16(device) else torch.float32


def autocast_dtype(device: str | torch.device | None = None,
                   weight_dtype: torch.dtype = torch.float32) -> torch.dtype | None:
    """The dtype training computes in under ``torch.autocast`` (``None``: no autocast, plain float32).

    - Weights already in bfloat16 / float16: that dtype (the trainable weights get float32 master copies).
    - float32 weights on a GPU: bfloat16 where it is native, else float16 (which needs a gradient scaler).
    - float32 weights on a CPU or MPS: ``None``.

    ``$COURSE_AUTOCAST`` (bfloat16 / float16 / none) overrides this.
    """
    forced = _env_dtype("COURSE_AUTOCAST")
    if forced != "unset":
        return forced
    if weight_dtype in LOW_PRECISION:
        return weight_dtype
    dev = torch.device(device) if device is not None else pick_device()
    if dev.type == "cuda":
        return torch.bfloat16 if has_native_bf16(dev) else torch.float16
    return None


#: (rtol, atol) for "these two computations agree": float32 rounding, or the coarser grid of 16-bit floats
#: accumulated through a network's layers (bfloat16 keeps 8 significant bits, float16 11).
TOLERANCES = {torch.float64: (1e-7, 1e-6), torch.float32: (1e-5, 1e-4),
              torch.float16: (1e-2, 1e-2), torch.bfloat16: (5e-2, 5e-2)}


def compute_dtype(model_or_dtype) -> torch.dtype:
    """The dtype a model computes in (its first floating-point parameter's), or the dtype itself."""
    if isinstance(model_or_dtype, torch.dtype):
        return model_or_dtype
    if isinstance(model_or_dtype, torch.Tensor):
        return model_or_dtype.dtype
    for p in model_or_dtype.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def tolerance(model_or_dtype) -> dict[str, float]:
    """``{"rtol": ..., "atol": ...}`` for comparing two results computed in this dtype (or by this model).

    One place for every "scratch = library" and "fast = naive" check, so the same cell passes in float32 on
    a CPU and in bfloat16 / float16 on a GPU: :func:`assert_close` (scaled by the largest value, the right
    test for a network's outputs) or ``torch.allclose(a, b, **tolerance(model))`` for small, unit-scale values.
    """
    dtype = compute_dtype(model_or_dtype)
    if dtype not in TOLERANCES:
        raise ValueError(f"No tolerance for {dtype}: compare floating-point results (one of {list(TOLERANCES)}).")
    rtol, atol = TOLERANCES[dtype]
    return {"rtol": rtol, "atol": atol}


def assert_close(actual, expected, model_or_dtype, what: str = "the two results") -> float:
    """Assert ``actual`` matches ``expected`` within :func:`tolerance`; returns the largest absolute difference.

    The test is ``max|actual - expected| <= atol + rtol * max|expected|``: rounding errors of a deep network
    scale with its activations, not with each element, so an element near zero may differ by as much as a
    large one. The error names the difference and the tolerance, so a failure reads as a finding.
    """
    actual, expected = torch.as_tensor(actual).float(), torch.as_tensor(expected).float()
    expected = expected.to(actual.device)
    if actual.shape != expected.shape:
        raise AssertionError(f"{what} have different shapes: {tuple(actual.shape)} and {tuple(expected.shape)}.")
    tol = tolerance(model_or_dtype)
    if not actual.numel():
        return 0.0
    diff = (actual - expected).abs().max().item()
    bound = tol["atol"] + tol["rtol"] * expected.abs().max().item()
    if not diff <= bound:  # also catches NaN
        raise AssertionError(f"{what} differ by up to {diff:.3g}, beyond the {compute_dtype(model_or_dtype)} "
                             f"tolerance {bound:.3g} (atol={tol['atol']:g} + rtol={tol['rtol']:g} x the largest "
                             "value).")
    return diff


def model_device(model) -> torch.device:
    """The device of a model's (first) parameter: where every input tensor must go."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def to_model(model, batch):
    """``batch`` (a tensor, a dict / ``BatchEncoding`` of tensors, or a list of them) on the model's device."""
    dev = model_device(model)
    if isinstance(batch, dict):
        return {k: to_model(model, v) for k, v in batch.items()}
    if hasattr(batch, "to"):  # a tensor, or a tokenizer's BatchEncoding
        return batch.to(dev)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_model(model, b) for b in batch)
    return batch


def encode(tok, text, model, **kwargs):
    """Tokenise ``text`` (a string or a list) into tensors on the model's device: ``model(**encode(tok, t, model))``.

    The one way lessons build model inputs, so nothing reaches a GPU model from the CPU.
    """
    return tok(text, return_tensors="pt", **kwargs).to(model_device(model))


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
