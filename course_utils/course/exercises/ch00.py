"""Chapter 0's exercises: setup and tour.

Each checker raises :class:`Hint` for each way an answer can be wrong.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import torch

from course_utils.course.checks import Hint, exercise
from course_utils.course.exercises import call


@exercise("00.weight_gib", "warm-up", "the memory of a model's weights, in GiB")
def check_weight_gib(fn: Callable[[int, torch.dtype], float]) -> None:
    """``fn(n_params, dtype)``: ``n_params`` times the dtype's bytes per element, in GiB (``2 ** 30`` bytes)."""
    for n, dtype in ((134_515_008, torch.float32), (1_711_376_384, torch.bfloat16), (6_738_415_616, torch.int8)):
        out = call(fn, n, dtype)
        if not isinstance(out, (int, float)) or isinstance(out, bool):
            raise Hint(f"return a number (GiB), got {type(out).__name__}.")
        size = torch.empty((), dtype=dtype).element_size()
        ref = n * size / 2**30
        if math.isclose(out, ref, rel_tol=1e-6):
            continue
        if math.isclose(out, n * size / 1e9, rel_tol=1e-6):
            raise Hint("that is GB (10 ** 9 bytes); a GiB is 2 ** 30 bytes, which is what torch and nvidia-smi use.")
        if math.isclose(out, n * size, rel_tol=1e-6):
            raise Hint("that is the number of bytes: divide by 2 ** 30 to get GiB.")
        if math.isclose(out, 8 * ref, rel_tol=1e-6) or math.isclose(out, 8 * n * size / 1e9, rel_tol=1e-6):
            raise Hint("that counts bits: a weight in this dtype takes element_size() bytes, 8 bits each.")
        raise Hint(f"for {n:,} weights in {dtype}: each takes torch.empty((), dtype=dtype).element_size() bytes.")


_SHAPES_00 = ("SmolLM2-135M", "Llama-2-7B", "Llama-2-70B")


@exercise("00.param_count", "core", "the parameter count of a Llama-style config")
def check_param_count(fn: Callable[[dict], int]) -> None:
    """``fn(config)`` must equal ``memory.llama_param_count(**config)`` (keys as in ``memory.MODEL_SHAPES``)."""
    from course_utils.memory import MODEL_SHAPES, llama_param_count

    for name in _SHAPES_00:
        cfg = dict(MODEL_SHAPES[name])
        out = call(fn, dict(cfg))
        ref = llama_param_count(**cfg)
        if isinstance(out, float) and out.is_integer():
            out = int(out)
        if out == ref:
            continue
        h, L, v = cfg["hidden_size"], cfg["num_layers"], cfg["vocab_size"]
        untied = llama_param_count(**{**cfg, "tie_embeddings": not cfg["tie_embeddings"]})
        no_gqa = llama_param_count(**{**cfg, "num_kv_heads": cfg["num_heads"]})
        if out == untied:
            raise Hint(f"{name}: tie_embeddings={cfg['tie_embeddings']}: a tied model shares one vocab x hidden "
                       "matrix between the embedding and the LM head; an untied one has two.")
        if out == no_gqa:
            raise Hint(f"{name} uses grouped-query attention: k_proj and v_proj have num_kv_heads * head_dim "
                       "outputs (head_dim = hidden_size // num_heads), not hidden_size.")
        if out in (ref - L * 2 * h - h, ref - L * 2 * h, ref - h):
            raise Hint("the RMSNorm weights are missing: two per layer and one final norm, hidden_size each.")
        if out == ref - L * h * cfg["intermediate_size"]:
            raise Hint("the MLP has three matrices (gate_proj, up_proj, down_proj): SwiGLU, not two.")
        raise Hint(f"{name}: expected {ref:,}, got {out!r}. Count the embeddings ({v} x {h}), per layer the 4 "
                   "attention and 3 MLP linears (no biases) and 2 norms, then the final norm.")


@exercise("00.profile_name", "stretch", "which profile a notebook runs with")
def check_profile_name(fn: Callable[[Any, Any, bool], str]) -> None:
    """``fn(name, env, cuda)`` must equal ``config.profile_name(name)`` with ``$COURSE_PROFILE=env`` (``None``:
    unset) and CUDA available or not; an unknown name raises ``ValueError``."""
    from unittest import mock

    from course_utils import config

    cases = [(None, None, False), (None, None, True), ("smoke", None, True), (None, "cpu", True),
             ("gpu", "smoke", False), (None, " Smoke ", False), ("AUTO", "smoke", True), (None, "", False),
             (None, "auto", True)]
    for name, env, cuda in cases:
        environ = {k: v for k, v in os.environ.items() if k != config.PROFILE_ENV}
        if env is not None:
            environ[config.PROFILE_ENV] = env
        with mock.patch.dict(os.environ, environ, clear=True), mock.patch.object(config, "_cuda_available",
                                                                                 lambda: cuda):
            ref = config.profile_name(name)
        out = call(fn, name, env, cuda)
        if out == ref:
            continue
        where = f"name={name!r}, env={env!r}, cuda={cuda}"
        if name is not None and env is not None and out == env.strip().lower():
            raise Hint(f"{where}: an explicit argument wins over $COURSE_PROFILE.")
        if out in (name, env) and out is not None and out != out.strip().lower():
            raise Hint(f"{where}: names are case- and space-insensitive: strip() and lower() them.")
        if ref in ("gpu", "cpu") and out != ref:
            raise Hint(f"{where}: 'auto' (or nothing set) means 'gpu' when CUDA is available, else 'cpu'.")
        raise Hint(f"{where}: expected {ref!r}, got {out!r}.")
    try:
        out = fn("large", None, False)
    except ValueError:
        return
    raise Hint(f"an unknown profile name ('large') should raise ValueError, not return {out!r}: a typo in "
               "COURSE_PROFILE must not silently run another profile.")
