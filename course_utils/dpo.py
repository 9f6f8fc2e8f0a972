"""Chapter 9: Direct Preference Optimization (Rafailov et al. 2023), written from the paper.

Preference data are triples: a prompt ``x``, a preferred answer ``y_w`` (chosen) and a worse one ``y_l``
(rejected). RLHF would fit a reward model to them and then run PPO against it; DPO shows the optimal policy of
that KL-regularised problem gives each answer an *implicit reward*

    r(x, y) = beta * (log pi_theta(y | x) - log pi_ref(y | x))

so the Bradley-Terry likelihood of the preferences becomes a loss on the policy itself (the paper's eq. 7):

    L = -log sigmoid( r(x, y_w) - r(x, y_l) )

``pi_ref`` is the model before DPO training, fixed throughout (here: the same model with its LoRA adapter switched
off), ``beta``
how far the policy may move from it. ``log pi(y | x)`` is the sum of the answer's token log-probabilities, the
same masked sum SFT trains (``sft.target_token_losses``). The loss equals TRL's ``DPOTrainer`` on the same batch
(tested).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .device import model_device
from .validate import non_empty, not_a_str, positive_float, positive_int


@dataclass(frozen=True)
class DPOSetup:
    """Sizes of chapter 9's DPO run (``config.sizes("dpo")``): ``n_pairs`` training pairs, ``steps`` optimiser
    steps of ``batch`` pairs at learning rate ``lr`` and ``beta``, repeated over ``seeds``; ``heldout``
    instructions answered with ``new_tokens`` tokens for the before/after comparison; ``max_len`` tokens per
    prompt + answer."""

    name: str
    n_pairs: int
    steps: int
    batch: int
    seeds: int
    heldout: int
    new_tokens: int
    max_len: int
    lr: float = 1e-4
    beta: float = 0.1

    def __post_init__(self):
        for name in ("n_pairs", "steps", "batch", "seeds", "heldout", "new_tokens", "max_len"):
            positive_int(name, getattr(self, name), "config.SIZES['dpo'] has working values")
        positive_float("lr", self.lr, "pass e.g. lr=1e-4")
        _check_beta(self.beta)


def _check_beta(beta) -> float:
    return positive_float("beta", beta, "it sets how far the policy may move from the reference; pass e.g. "
                                        "beta=0.1")


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor,
             beta: float = 0.1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The DPO loss of a batch of pairs, from sequence log-probabilities (each of shape ``(pairs,)``).

    Returns:
        ``(loss, chosen_rewards, rejected_rewards)``: the mean of ``-log sigmoid(r_w - r_l)`` over the pairs, and
        each pair's implicit rewards ``beta * (log pi - log pi_ref)`` (detached: for logging).

    Raises:
        ValueError: ``beta <= 0`` or tensors of different shapes.
    """
    _check_beta(beta)
    tensors = (policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps)
    if not all(isinstance(t, torch.Tensor) for t in tensors):
        raise TypeError(f"dpo_loss takes four tensors of sequence log-probabilities, got "
                        f"{[type(t).__name__ for t in tensors]}: pass e.g. the two halves of sequence_logps(...).")
    shapes = {tuple(t.shape) for t in (policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
                                       ref_rejected_logps)}
    if len(shapes) != 1:
        raise ValueError(f"The four log-probability tensors need one shape (one value per pair), got {shapes}.")
    chosen_rewards = beta * (policy_chosen_logps - ref_chosen_logps)
    rejected_rewards = beta * (policy_rejected_logps - ref_rejected_logps)
    losses = -F.logsigmoid(chosen_rewards - rejected_rewards)
    return losses.mean(), chosen_rewards.detach(), rejected_rewards.detach()


# ---------------------------------------------------------------------------------------------------------------
# Data: (prompt, chosen, rejected) rows -> token ids -> sequence log-probabilities
# ---------------------------------------------------------------------------------------------------------------

def check_rows(rows: Sequence[Mapping]) -> None:
    """Refuse rows that cannot train: empty, a missing field, or chosen == rejected.

    Raises:
        ValueError: naming the row and the fix.
    """
    if isinstance(rows, (str, bytes, Mapping)):
        raise TypeError(f"Expected a list of preference rows, got one {type(rows).__name__}: wrap it as [row].")
    if not rows:
        raise ValueError("No preference pairs: pass rows of {'prompt', 'chosen', 'rejected'}.")
    for i, r in enumerate(rows):
        if not isinstance(r, Mapping):
            raise TypeError(f"Pair {i} is a {type(r).__name__} ({r!r:.60}); each row is a dict "
                            "{'prompt': ..., 'chosen': ..., 'rejected': ...}.")
        wrong = [k for k in ("prompt", "chosen", "rejected") if k in r and not isinstance(r[k], str)]
        if wrong:
            raise TypeError(f"Pair {i}: {wrong[0]!r} must be a str, got {r[wrong[0]]!r} "
                            f"({type(r[wrong[0]]).__name__}): write the text.")
        missing = [k for k in ("prompt", "chosen", "rejected") if not isinstance(r.get(k), str) or not r.get(k)]
        if missing:
            raise ValueError(f"Pair {i} has no text for {missing}: each row needs 'prompt', 'chosen', 'rejected'.")
        if r["chosen"] == r["rejected"]:
            raise ValueError(f"Pair {i}: chosen and rejected are the same text, so there is no preference to learn.")


def tokenize_pairs(tok, rows: Sequence[Mapping], max_len: int, chat: bool = True) -> list[dict]:
    """Each row as two SFT examples sharing the prompt (``sft.tokenize_pair``: labels on the answer + EOS):
    ``{"chosen": ..., "rejected": ...}``. ``chat`` wraps the prompt in the chat template.

    A pair whose prompt + answer does not fit in ``max_len`` tokens is left out, with a warning: cutting it would
    compare a cut chosen answer (no end) with a whole rejected one, a preference nobody stated.

    Raises:
        ValueError: bad rows (:func:`check_rows`), or no pair fits.
    """
    import warnings

    from .sft import tokenize_pair

    check_rows(rows)
    positive_int("max_len", max_len, "pass the token budget of prompt + answer, e.g. max_len=192")
    data = []
    for r in rows:
        try:
            data.append({k: tokenize_pair(tok, r["prompt"], r[k], max_len, chat=chat, on_overflow="error")
                         for k in ("chosen", "rejected")})
        except ValueError:
            continue
    if not data:
        raise ValueError(f"No pair fits in max_len={max_len} tokens: raise max_len.")
    if len(data) < len(rows):
        warnings.warn(f"{len(rows) - len(data)} of {len(rows)} pairs are longer than max_len={max_len} tokens and "
                      "were left out (raise max_len to keep them).", stacklevel=2)
    return data


def sequence_logps(model, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``log pi(y | x)`` of every row: the sum of its target tokens' log-probabilities (labels not -100)."""
    from .sft import target_token_losses

    batch = {k: v.to(model_device(model)) for k, v in batch.items() if k != "weight"}
    return -target_token_losses(model, batch).sum(-1)


def _collate(examples: Sequence[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Chosen rows first, then rejected: one forward for both halves."""
    from .sft import SFTCollator

    return SFTCollator(pad_id)([e["chosen"] for e in examples] + [e["rejected"] for e in examples])


def _check_data(data) -> None:
    """Tokenized pairs: a non-empty list of {'chosen', 'rejected'} examples (tokenize_pairs' output)."""
    not_a_str("data", data, "pass tokenize_pairs(tok, rows, max_len)")
    non_empty("data", data, "pass tokenize_pairs(tok, rows, max_len)")
    if not all(isinstance(d, Mapping) and all(isinstance(d.get(k), Mapping) for k in ("chosen", "rejected"))
               for d in data):
        raise TypeError("data must be tokenized pairs {'chosen', 'rejected'}: pass tokenize_pairs(tok, rows, max_len), "
                        "not the text rows.")


def _check_reference(reference_logps, n: int) -> None:
    if reference_logps is None:
        return
    if (not isinstance(reference_logps, (tuple, list)) or len(reference_logps) != 2
            or any(not isinstance(t, torch.Tensor) or t.shape != (n,) for t in reference_logps)):
        raise ValueError(f"reference_logps must be two tensors of shape ({n},), one value per pair: pass "
                         "pair_logps(model, data, pad_id) of the same data.")


def _reference(model):
    """The reference policy: the same model with its LoRA adapter switched off (a peft model), so no second
    copy of the weights is needed."""
    if not hasattr(model, "disable_adapter"):
        raise TypeError("train_dpo trains a peft model (the reference is the model with its adapter off): wrap it "
                        "with peft.get_peft_model(model, finetune.lora_config()) first.")
    return model.disable_adapter()


@torch.no_grad()
def pair_logps(model, data: Sequence[dict], pad_id: int, batch_size: int = 8,
               reference: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``log pi(y_w | x)`` and ``log pi(y_l | x)`` of every pair (on the CPU), of the policy or, with
    ``reference=True``, of the reference (the peft model's adapter switched off)."""
    _check_data(data)
    positive_int("batch_size", batch_size, "pass e.g. batch_size=8")
    was_training = model.training
    model.eval()
    chosen, rejected = [], []
    with _reference(model) if reference else nullcontext():
        for i in range(0, len(data), batch_size):
            c, r = sequence_logps(model, _collate(data[i:i + batch_size], pad_id)).float().cpu().chunk(2)
            chosen.append(c)
            rejected.append(r)
    model.train(was_training)
    return torch.cat(chosen), torch.cat(rejected)


def preference_stats(model, data: Sequence[dict], pad_id: int, beta: float = 0.1, batch_size: int = 8,
                     reference_logps: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict:
    """How the policy ranks held-out pairs relative to the reference: the mean implicit reward margin
    ``r_w - r_l``, the share of pairs with a positive margin (``"positive margin"``: the chosen answer gained on
    the rejected one since the reference; not that the policy now gives it more probability), and how far the
    chosen and rejected answers' log-probabilities moved (nats per answer)."""
    _check_beta(beta)
    _check_data(data)
    _check_reference(reference_logps, len(data))
    pc, pr = pair_logps(model, data, pad_id, batch_size)
    rc, rr = reference_logps or pair_logps(model, data, pad_id, batch_size, reference=True)
    margin = beta * ((pc - rc) - (pr - rr))
    return {"reward margin": margin.mean().item(), "positive margin": (margin > 0).float().mean().item(),
            "chosen logp change": (pc - rc).mean().item(), "rejected logp change": (pr - rr).mean().item()}


# ---------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class DPOResult:
    """Per step: the loss, the mean reward margin and the share of the batch's pairs with a positive margin."""

    losses: list[float] = field(default_factory=list)
    margins: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)
    seconds: float = 0.0


def train_dpo(model, data: Sequence[dict], pad_id: int, steps: int, batch_size: int = 4, lr: float = 1e-4,
              beta: float = 0.1, seed: int = 0, max_grad_norm: float | None = 1.0, progress: bool = True,
              reference_logps: tuple[torch.Tensor, torch.Tensor] | None = None) -> DPOResult:
    """DPO on a peft (LoRA) model: the reference log-probabilities are computed once with the adapter off (as
    TRL's ``precompute_ref_log_probs``), then each step takes ``batch_size`` pairs (``sft.step_indices``' order),
    scores both answers with the policy, and follows :func:`dpo_loss` (AdamW, constant learning rate, gradient
    clipping). ``reference_logps``: :func:`pair_logps` of the reference, when already computed (several seeds
    share one reference).

    Raises:
        TypeError: ``model`` is not a peft model.
        ValueError: no pairs, ``steps < 1`` or ``batch_size < 1``.
        sft.TrainingDivergedError: the loss became NaN or infinite.
    """
    from tqdm.auto import tqdm

    from .sft import TrainingDivergedError, step_indices

    _check_data(data)
    positive_int("steps", steps, "pass e.g. steps=100")
    positive_int("batch_size", batch_size, "pass e.g. batch_size=4")
    positive_float("lr", lr, "pass e.g. lr=1e-4")
    _check_beta(beta)
    if max_grad_norm is not None:
        positive_float("max_grad_norm", max_grad_norm, "pass e.g. max_grad_norm=1.0, or None for no clipping")
    _check_reference(reference_logps, len(data))
    ref_c, ref_r = reference_logps or pair_logps(model, data, pad_id, reference=True)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    result, t0 = DPOResult(), time.perf_counter()
    model.train()
    for step in tqdm(range(steps), desc="DPO", disable=not progress):
        idx = step_indices(step, len(data), batch_size, seed)
        pc, pr = sequence_logps(model, _collate([data[i] for i in idx], pad_id)).chunk(2)
        dev = pc.device
        loss, cr, rr = dpo_loss(pc, pr, ref_c[idx].to(dev, pc.dtype), ref_r[idx].to(dev, pc.dtype), beta)
        if not math.isfinite(loss.item()):
            raise TrainingDivergedError(f"The DPO loss became {loss.item()} at step {step}: lower lr (now {lr}).")
        loss.backward()
        if max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        result.losses.append(loss.item())
        result.margins.append((cr - rr).mean().item())
        result.accuracies.append((cr > rr).float().mean().item())
    model.eval()
    result.seconds = time.perf_counter() - t0
    return result


# ---------------------------------------------------------------------------------------------------------------
# Chapter 9's pairs, from the course's own material
# ---------------------------------------------------------------------------------------------------------------

def instruction_rows() -> list[dict]:
    """Chapter 9's training instructions with written answers: the course's seed tasks (first instance each)
    and the curated set's training split, as ``{instruction, input, output}`` rows."""
    from .alignment import load_curated
    from .self_instruct import load_seed_tasks

    seeds = [{"instruction": t["instruction"], "input": t["instances"][0]["input"],
              "output": t["instances"][0]["output"]} for t in load_seed_tasks()]
    return seeds + [{k: r[k] for k in ("instruction", "input", "output")} for r in load_curated("train")]


def corrupted_pairs(rows: Sequence[Mapping], kinds: Sequence[str] = ("repeated", "truncated"),
                    seed: int = 0) -> list[dict]:
    """Preference pairs from instruction rows (``instruction``/``input``/``output``): chosen = the written
    answer, rejected = a known-bad version of it (``alignment.corrupt_responses``: the first sentence repeated,
    the answer cut to a fifth, another row's answer). One pair per row and kind (row by row, so any first n
    pairs mix the kinds), prompt = the instruction."""
    from .alignment import corrupt_responses, instruction_text

    not_a_str("kinds", kinds, f"pass a list, e.g. kinds=[{kinds!r}]")
    non_empty("kinds", kinds, "pass e.g. kinds=('repeated', 'truncated')")
    bad = corrupt_responses(rows, seed)
    unknown = set(kinds) - set(bad)
    if unknown:
        raise ValueError(f"Unknown corruption {sorted(unknown)}; choose from {sorted(bad)}.")
    return [{"prompt": instruction_text(r), "chosen": r["output"], "rejected": bad[k][i], "kind": k}
            for i, r in enumerate(rows) for k in kinds if bad[k][i] != r["output"]]


def answer_stats(model, tok, rows: Sequence[Mapping], max_new_tokens: int) -> dict:
    """Greedy chat answers to the rows' instructions, with the two behaviours the preference pairs are about:
    the share of answers that stop by themselves (EOS rate) and their repetition (seq-rep-4)."""
    from .alignment import instruction_text
    from .decoding import repetition_rate
    from .models import generate_batch

    not_a_str("rows", rows)
    non_empty("rows", rows, "pass held-out instruction rows, e.g. instruction_rows()[:20]")
    positive_int("max_new_tokens", max_new_tokens, "pass e.g. max_new_tokens=64")
    texts, finished = generate_batch(model, tok, [instruction_text(r) for r in rows], max_new_tokens=max_new_tokens,
                                     return_finished=True)
    return {"texts": texts, "EOS rate": sum(finished) / len(finished), "seq-rep-4": repetition_rate(texts)}


def judge_scores(judge, tok, rows: Sequence[Mapping], answers: Sequence[str]) -> torch.Tensor:
    """Chapter 9's likelihood judge (``alignment.relevance_scores``) on answers to the rows' instructions."""
    from .alignment import instruction_text, relevance_scores

    return relevance_scores(judge, tok, [instruction_text(r) for r in rows], list(answers))


def win_rate(scores: torch.Tensor, baseline: torch.Tensor) -> float:
    """The share of instructions on which ``scores`` beat the ``baseline``'s (ties count half)."""
    if not isinstance(scores, torch.Tensor) or not isinstance(baseline, torch.Tensor):
        raise TypeError(f"win_rate takes two tensors of scores, got {type(scores).__name__} and "
                        f"{type(baseline).__name__}: pass judge_scores(...) of each model.")
    if scores.shape != baseline.shape or scores.numel() == 0:
        raise ValueError(f"scores {tuple(scores.shape)} and baseline {tuple(baseline.shape)} need one shape with at "
                         "least one instruction: score both models' answers to the same instructions.")
    return ((scores > baseline).float() + 0.5 * (scores == baseline).float()).mean().item()


def run_seeds(model, tok, train: Sequence[dict], held_pairs: Sequence[dict], held_rows: Sequence[Mapping],
              setup: DPOSetup, progress: bool = True) -> tuple[dict, list[dict]]:
    """Chapter 9's experiment: the original model's answers, then for each seed a fresh LoRA on a copy of
    ``model``, trained with :func:`train_dpo`, and measured on held-out pairs (:func:`preference_stats`) and on
    its answers to held-out instructions (:func:`answer_stats`, and the judge's :func:`win_rate` against the
    original's answers). Returns ``(original, runs)``: the original's answer stats, and one dict per seed."""
    import copy

    from peft import get_peft_model

    from .device import set_seed
    from .finetune import lora_config

    original = answer_stats(model, tok, held_rows, setup.new_tokens)
    original_scores = judge_scores(model, tok, held_rows, original["texts"])
    # the reference is the original model for every seed: its log-probabilities once (pair_logps on a plain model)
    train_ref = pair_logps(model, train, tok.pad_token_id)
    held_ref = pair_logps(model, held_pairs, tok.pad_token_id)
    runs = []
    for seed in range(setup.seeds):
        set_seed(seed)
        policy = get_peft_model(copy.deepcopy(model), lora_config())
        result = train_dpo(policy, train, tok.pad_token_id, setup.steps, setup.batch, setup.lr, setup.beta, seed,
                           progress=progress, reference_logps=train_ref)
        answers = answer_stats(policy, tok, held_rows, setup.new_tokens)
        runs.append({"seed": seed, "losses": result.losses, "seconds": result.seconds,
                     **preference_stats(policy, held_pairs, tok.pad_token_id, setup.beta, reference_logps=held_ref),
                     **answers, "win rate": win_rate(judge_scores(model, tok, held_rows, answers["texts"]),
                                                     original_scores)})
        del policy
    return original, runs


def mean_and_se(runs: Sequence[Mapping], key: str) -> tuple[float, float]:
    """The mean of ``key`` over seeds and its standard error (``std / sqrt(n)``; 0 for one seed)."""
    not_a_str("runs", runs)
    non_empty("runs", runs, "pass run_seeds(...)'s runs")
    missing = [i for i, r in enumerate(runs) if key not in r]
    if missing:
        raise KeyError(f"Run {missing[0]} has no {key!r}; choose one of {sorted(runs[missing[0]])}.")
    values = torch.tensor([float(r[key]) for r in runs])
    se = values.std().item() / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return values.mean().item(), se


def plot_runs(original: Mapping, runs: Sequence[Mapping]):
    """Left: each seed's DPO loss per step (log 2 at the start: the policy is the reference). Right: the
    answers' EOS rate and repetition before and after, with the standard error over seeds. Returns the figure."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    for r in runs:
        left.plot(range(1, len(r["losses"]) + 1), r["losses"], alpha=0.7, label=f"seed {r['seed']}")
    left.axhline(math.log(2), color="grey", lw=0.8, ls="--")
    left.set(xlabel="step", ylabel="DPO loss", title="training")
    left.legend(fontsize=8)
    keys = ["EOS rate", "seq-rep-4"]
    after = [mean_and_se(runs, k) for k in keys]
    x = torch.arange(len(keys)).float()
    right.bar(x - 0.2, [original[k] for k in keys], 0.4, label="original")
    right.bar(x + 0.2, [m for m, _ in after], 0.4, yerr=[s for _, s in after], capsize=4, label="after DPO")
    right.set_xticks(x.tolist(), keys)
    right.set(title="held-out answers")
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig
