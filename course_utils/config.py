"""Course profiles and every chapter's sizes, in one place.

A profile names a scale: ``smoke`` (CI, seconds per cell), ``cpu`` (a laptop, minutes per chapter, real results)
or ``gpu`` (Colab / a workstation). Every size a chapter uses is in :data:`SIZES` below, one table per section
(a chapter or a concept) and profile, and is read through one function::

    from course_utils.config import profile, sizes
    P = profile()                          # COURSE_PROFILE=smoke|cpu|gpu, default: gpu if CUDA else cpu
    S = sizes("self_instruct", P.name)     # a SelfInstructSetup (the class lives with its concept)
    P.train_steps, S.target

Lessons and chapter modules never write a size per profile themselves: a new size goes into :data:`SIZES`.
The cpu sizes were measured on a 2-core CPU (SmolLM2-135M: about 8 generated tokens/s single-stream, about
1.7 s per LoRA step at batch 8 x 64 tokens); each is the smallest at which the chapter's claims clear their noise.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import types
from dataclasses import asdict, dataclass
from typing import Any

PROFILE_ENV = "COURSE_PROFILE"
PROFILE_NAMES = ("smoke", "cpu", "gpu")

#: The offline default model (see ``course_utils.models``).
DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class Profile:
    """Sizes a chapter reads instead of literals.

    Attributes:
        name: ``smoke`` (CI, seconds), ``cpu`` (laptop, minutes) or ``gpu`` (Colab / workstation).
        model_name: the real model chapters load (``course_utils.models.load_model`` name).
        n_examples: examples a chapter scores or trains on.
        eval_examples: held-out examples for evaluation.
        train_steps: optimiser steps of a fine-tuning run.
        batch_size: examples per step.
        seq_len: tokens per training example (truncation length).
        max_new_tokens: tokens generated per prompt in demos.
        n_seeds: repetitions of a random experiment (error bars over seeds).
    """

    name: str
    n_examples: int
    eval_examples: int
    train_steps: int
    batch_size: int
    seq_len: int
    max_new_tokens: int
    n_seeds: int
    model_name: str = DEFAULT_MODEL

    def to_dict(self) -> dict:
        """The profile as a plain dict (for printing as a table)."""
        return asdict(self)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def profile_name(name: str | None = None) -> str:
    """Resolve a profile name: the argument, else ``$COURSE_PROFILE``, else ``gpu`` if CUDA else ``cpu``.

    Raises:
        ValueError: for a name that is not ``smoke``, ``cpu``, ``gpu`` or ``auto``.
    """
    raw = name if name is not None else os.environ.get(PROFILE_ENV, "auto")
    if not isinstance(raw, str):
        raise TypeError(f"A profile is named by a str, got {raw!r} ({type(raw).__name__}): choose one of "
                        f"{', '.join(PROFILE_NAMES)} or 'auto'.")
    key = raw.strip().lower()
    if key in ("", "auto"):
        return "gpu" if _cuda_available() else "cpu"
    if key not in PROFILE_NAMES:
        source = "argument" if name is not None else f"${PROFILE_ENV}"
        raise ValueError(
            f"Unknown course profile {raw!r} (from {source}). Choose one of {', '.join(PROFILE_NAMES)} "
            f"or 'auto', e.g. `export {PROFILE_ENV}=smoke`."
        )
    return key


def profile(name: str | None = None) -> Profile:
    """The active :class:`Profile` (see :func:`profile_name` for how it is chosen)."""
    return sizes("course", profile_name(name))


#: Every size of the course: section -> profile -> the values. A section is a concept whose module defines the
#: class its sizes build (see :data:`_CLASSES`), or a chapter (``chNN``) whose lesson reads plain values.
SIZES: dict[str, dict[str, dict]] = {
    # The course-wide sizes (a :class:`Profile`): every chapter's model, example counts and generation length.
    "course": {
        "smoke": dict(n_examples=16, eval_examples=16, train_steps=4, batch_size=4, seq_len=64, max_new_tokens=24,
                      n_seeds=2),
        "cpu": dict(n_examples=200, eval_examples=100, train_steps=60, batch_size=8, seq_len=128, max_new_tokens=64,
                    n_seeds=5),
        "gpu": dict(n_examples=2000, eval_examples=500, train_steps=600, batch_size=16, seq_len=256,
                    max_new_tokens=128, n_seeds=10),
    },
    # Chapter 3: orderings of the same demonstrations.
    "ch03": {"smoke": dict(orderings=6), "cpu": dict(orderings=24), "gpu": dict(orderings=24)},
    # Chapter 6: TinyGPTs with each position encoding, trained at length L and read at 1-8 L (extrapolation).
    "extrapolation": {
        # CI: every variant trains in a few seconds; the numbers mean little.
        "smoke": dict(seq_len=32, n_layer=2, n_head=4, n_embd=64, steps=40, batch_size=16, lr=2e-3,
                      extend_steps=10, extend_batch=8, extend_eval_every=5),
        # A laptop: about 1.5 min per variant on 2 cores; the results of the chapter's text.
        "cpu": dict(seq_len=64, n_layer=4, n_head=8, n_embd=128, steps=600, batch_size=32, lr=2e-3),
        # A GPU: longer context, bigger model, more steps.
        "gpu": dict(seq_len=128, n_layer=6, n_head=8, n_embd=256, steps=3000, batch_size=64, lr=1e-3,
                    extend_steps=200, extend_batch=32, extend_eval_every=20),
    },
    # Chapter 6 on the real model: bytes sampled from the ALiBi TinyGPT, tokens of the document RoPE scaling is
    # scored on, the sliding window, and a document past the window (0: skipped; one forward pass takes minutes
    # on 2 cores).
    "ch06": {
        "smoke": dict(sample_bytes=40, doc_tokens=256, window=64, long_doc_tokens=0),
        "cpu": dict(sample_bytes=200, doc_tokens=2048, window=512, long_doc_tokens=0),
        "gpu": dict(sample_bytes=200, doc_tokens=8000, window=1024, long_doc_tokens=16000),
    },
    # Chapter 7 (and the capstone's data): the Self-Instruct loop and its LoRA fine-tune.
    "self_instruct": {
        # CI: one batch of prompts, a few SFT steps; about a minute on 2 cores.
        "smoke": dict(target=8, max_requests=8, batch_size=8, n_heldout=4, sft_steps=4, sft_batch=4, max_len=160,
                      answer_tokens=32),
        # A laptop: ~120 instructions (about 10 minutes for the chapter on 2 cores).
        "cpu": dict(target=120, max_requests=200, batch_size=8, n_heldout=12, sft_steps=60, sft_batch=8,
                    max_len=192, answer_tokens=64),
        # A GPU: a thousand instructions and a longer fine-tune.
        "gpu": dict(target=1000, max_requests=1600, batch_size=32, n_heldout=12, sft_steps=300, sft_batch=16,
                    max_len=256, answer_tokens=128),
    },
    # Chapter 8: the same budget for every fine-tune (smoke: half the batch keeps CI's run short), and the data of
    # the sample-strategy comparison (examples per label, dev examples).
    "ch08": {
        "smoke": dict(steps=2, batch=4, n_per_label=2, dev=6, chat_convs=4, chat_steps=2, chat_batch=2),
        "cpu": dict(steps=30, batch=8, n_per_label=16, dev=60, chat_convs=16, chat_steps=5, chat_batch=4),
        "gpu": dict(steps=200, batch=8, n_per_label=40, dev=60, chat_convs=32, chat_steps=10, chat_batch=8),
    },
    # Chapter 9's DPO run (a dpo.DPOSetup): pairs, steps of `batch` pairs, seeds, held-out answers.
    "dpo": {
        "smoke": dict(n_pairs=16, steps=4, batch=2, seeds=2, heldout=4, new_tokens=16, max_len=192),
        "cpu": dict(n_pairs=209, steps=100, batch=2, seeds=3, heldout=20, new_tokens=64, max_len=192),
        "gpu": dict(n_pairs=209, steps=300, batch=8, seeds=3, heldout=20, new_tokens=128, max_len=256),
    },
    # Chapter 8's probes (an EvalSizes): it evaluates nine models, so smaller than the capstone's; smoke replies
    # are 8 tokens, which is most of the chapter's CI time.
    "sft_probes": {
        "smoke": dict(sentiment=12, facts=8, arithmetic=6, ppl_tokens=256, kl_tokens=128, max_new_tokens=8),
        "cpu": dict(sentiment=60, facts=48, arithmetic=24, ppl_tokens=1024, kl_tokens=256),
        "gpu": dict(sentiment=120, facts=240, arithmetic=100, ppl_tokens=8000, kl_tokens=2048),
    },
    # Chapter 9. prompts, long_tokens: long-form prompts per decoding setting and tokens per answer (section 2);
    # new_tokens: tokens per answer to an instruction (enough for the ~115-token curated answers at cpu size);
    # heldout: held-out instructions; k: examples per fine-tune; batch, steps, lr: each LoRA fine-tune's budget;
    # pool: distilled candidates; samples: answers per prompt in best-of-n; arith: questions for pass@n.
    "ch09": {
        # sa_*: the self-alignment loop of section 7 (self_alignment.self_align): training and held-out arithmetic
        # questions, samples per question, LoRA steps and batch, tokens per answer, and whether the random-pick
        # control runs too (one digit allows 72 distinct questions in all)
        "smoke": dict(prompts=1, long_tokens=16, new_tokens=8, heldout=2, k=2, batch=2, steps=1, lr=2e-3, pool=2,
                      samples=2, arith=2, sa_train=4, sa_heldout=8, sa_n=2, sa_steps=2, sa_batch=2, sa_new_tokens=8,
                      sa_control=False),
        "cpu": dict(prompts=6, long_tokens=128, new_tokens=144, heldout=6, k=12, batch=4, steps=12, lr=2e-3, pool=24,
                    samples=4, arith=24, sa_train=32, sa_heldout=40, sa_n=4, sa_steps=16, sa_batch=8, sa_new_tokens=16,
                    sa_control=True),
        "gpu": dict(prompts=40, long_tokens=256, new_tokens=192, heldout=20, k=40, batch=16, steps=60, lr=1e-3,
                    pool=59, samples=8, arith=100, sa_train=32, sa_heldout=40, sa_n=8, sa_steps=16, sa_batch=8,
                    sa_new_tokens=16, sa_control=True),
    },
    # Chapter 10: the biographies of fictional people (a BiosSetup).
    "knowledge": {
        # CI: seconds; nothing is memorised, the numbers mean little.
        "smoke": dict(n_people=20, n_layer=2, n_head=4, n_embd=64, steps=20, batch_size=16, lr=3e-3, qa_steps=10,
                      qa_lr=1e-4, qa_evals=2, rewrites=2),
        # A laptop: a few minutes per pretraining run on 2 cores.
        "cpu": dict(n_people=100, n_layer=4, n_head=4, n_embd=128, steps=400, batch_size=32, lr=3e-3, qa_steps=200,
                    qa_lr=1e-4, rewrites=20),
        # A GPU: more people, a deeper model, longer training.
        "gpu": dict(n_people=1000, n_layer=8, n_head=8, n_embd=256, steps=6000, batch_size=64, lr=1e-3,
                    qa_steps=1000, qa_lr=1e-4, rewrites=20),
    },
    # Chapter 10: repeated data under a fixed token budget (a DataScalingSetup).
    "data_scaling": {
        # CI: seconds; the numbers mean little.
        "smoke": dict(seq_len=32, n_layer=2, n_head=4, n_embd=64, budget_tokens=16 * 32 * 16, batch_size=16,
                      lr=2e-3, repetitions=(1, 4, 16), n_evals=2, val_windows=16),
        # A laptop: about 30 s per run on 2 free cores.
        "cpu": dict(seq_len=64, n_layer=4, n_head=8, n_embd=128, budget_tokens=4096 * 64, batch_size=16, lr=2e-3),
        # A GPU: a wider model on the same budget overfits repeated data sooner.
        "gpu": dict(seq_len=128, n_layer=6, n_head=8, n_embd=256, budget_tokens=2048 * 128, batch_size=32,
                    lr=1e-3, repetitions=(1, 2, 4, 8, 16, 32)),
    },
    # Chapter 10: fine-tuning on new knowledge (a NewKnowledgeSetup; ``slick`` is its SliCKSizes).
    "new_knowledge": {
        "smoke": dict(slick=dict(n_sets=2, n_samples=4), n_facts=40, n_test_per_category=2, n_train=8, steps=4,
                      eval_every=2, batch_size=4),
        # cpu: 32 facts x 10 epochs (40 steps of 8), measured every epoch-and-a-bit; about 6 minutes for both runs
        "cpu": dict(slick=dict(n_sets=3, n_samples=16), n_facts=240, n_test_per_category=12, n_train=32, steps=40,
                    eval_every=8),
        "gpu": dict(slick=dict(n_sets=10, n_samples=16), n_facts=240, n_test_per_category=12, n_train=48,
                    steps=200, eval_every=10, unknown_fractions=(0.0, 0.5, 1.0), single_categories=True),
    },
    # Chapter 10: answers sampled for one fact.
    "ch10": {"smoke": dict(n_draw=8), "cpu": dict(n_draw=48), "gpu": dict(n_draw=96)},
    # Chapter 11: the capstone's fine-tune (an AssistantSetup) and its evaluation harness (an EvalSizes).
    "assistant": {
        "smoke": dict(steps=4, batch_size=4, lr=3e-4, max_len=160, answer_tokens=16),
        "cpu": dict(steps=60, batch_size=8, lr=3e-4, max_len=192, answer_tokens=64),
        "gpu": dict(steps=300, batch_size=16, lr=3e-4, max_len=256, answer_tokens=128),
    },
    "evaluation": {
        "smoke": dict(sentiment=12, facts=8, arithmetic=6, ppl_tokens=256, kl_tokens=128),
        "cpu": dict(sentiment=120, facts=80, arithmetic=40, ppl_tokens=2048, kl_tokens=512),
        "gpu": dict(sentiment=120, facts=240, arithmetic=100, ppl_tokens=8000, kl_tokens=2048),
    },
}

#: The class a section's sizes build (``module:Class``, imported when read); the other sections give plain values.
_CLASSES = {
    "course": "course_utils.config:Profile",
    "extrapolation": "course_utils.extrapolation:ExtrapolationSetup",
    "self_instruct": "course_utils.self_instruct:SelfInstructSetup",
    "sft_probes": "course_utils.evaluation:EvalSizes",
    "dpo": "course_utils.dpo:DPOSetup",
    "knowledge": "course_utils.knowledge:BiosSetup",
    "data_scaling": "course_utils.data_scaling:DataScalingSetup",
    "new_knowledge": "course_utils.new_knowledge:NewKnowledgeSetup",
    "assistant": "course_utils.assistant:AssistantSetup",
    "evaluation": "course_utils.evaluation:EvalSizes",
}


def sizes(section: str, name: str | None = None) -> Any:
    """The sizes of one section (:data:`SIZES`) for a profile (default: the active one, :func:`profile_name`).

    A section with a class in :data:`_CLASSES` gives an instance of it (a ``name`` or ``profile`` field is
    filled with the profile's name); a chapter's section gives a ``SimpleNamespace`` of its values.

    Raises:
        ValueError: an unknown section or profile, naming the known ones.
    """
    if not isinstance(section, str) or section not in SIZES:
        raise ValueError(f"Unknown size section {section!r}; choose one of {', '.join(SIZES)} "
                         "(or add it to SIZES in course_utils/config.py).")
    name = profile_name(name)
    values = dict(SIZES[section][name])
    if section not in _CLASSES:
        return types.SimpleNamespace(**values)
    module, cls_name = _CLASSES[section].split(":")
    cls = getattr(importlib.import_module(module), cls_name)
    fields = {f.name for f in dataclasses.fields(cls)}
    for key in ("name", "profile"):
        if key in fields:
            values[key] = name
    return cls(**values)


#: The three course-wide profiles, built from :data:`SIZES` (for tables that compare them, as chapter 0's).
PROFILES: dict[str, Profile] = {n: sizes("course", n) for n in PROFILE_NAMES}
