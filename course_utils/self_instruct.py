"""Self-Instruct (Wang et al. 2023): a model writes its own instruction data, bootstrapped from a few seed tasks.

The loop of ``yizhongw/self-instruct`` in four steps, each its own function and each resumable from its JSONL
output (stop the kernel, run the cell again: finished work is read back, nothing is redone or lost):

1. :func:`generate_instructions`: show the model 8 instructions (6 human seeds + 2 it wrote earlier) as a
   numbered list and let it continue the list; keep the new ones that pass the filters.
2. :func:`identify_classification`: ask, few-shot, "Is it classification? Yes / No".
3. :func:`generate_instances`: inputs and outputs per instruction: **input-first** for ordinary tasks,
   **output-first** (class label, then an input) for classification tasks, so the labels stay balanced
   instead of following whatever inputs the model happens to write.
4. :func:`filter_instances`: drop empty or copied outputs, truncated fields, conflicting duplicates.

Filters (step 1) follow the reference scripts: fewer than 4 or more than 150 words, a blacklisted word (image,
graph, file... things a text model cannot do), "Write a program", starting with punctuation or a non-ASCII
character, and ROUGE-L >= 0.7 against any instruction already in the pool (diversity). Every candidate's fate
is saved, so :class:`FilterReport` can count what each filter removed.
"""

from __future__ import annotations

import random
import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import torch

from . import validate
from .instructions import read_jsonl, write_jsonl
from .rouge import RougePool
from .validate import int_at_least, non_negative_int, not_a_str, positive_float, positive_int, probability, same_length

# Self-Instruct's blacklist (Wang et al. 2023) plus Alpaca's additions (Taori et al. 2023): tasks a text-only model
# cannot do.
BLACKLIST = ("image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps", "draw",
             "plot", "go to", "video", "audio", "music", "flowchart", "diagram")
SIMILARITY_THRESHOLD = 0.7  # reject at ROUGE-L >= 0.7 against the pool


# ---------------------------------------------------------------------------------------------------------------
# Seed tasks
# ---------------------------------------------------------------------------------------------------------------

def validate_seed_task(row: object, where: str = "seed task") -> dict:
    """Check one seed task in Self-Instruct's format (id, name, instruction, instances, is_classification).

    Raises:
        ValueError: a missing field, no instances, or an instance without ``input`` / ``output``.
    """
    if not isinstance(row, Mapping):
        raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}.")
    missing = [k for k in ("instruction", "instances", "is_classification") if k not in row]
    if missing:
        raise ValueError(f"{where}: missing field(s) {missing} (Self-Instruct's seed format: id, name, "
                         "instruction, instances [{input, output}], is_classification).")
    if not isinstance(row["instances"], list) or not row["instances"]:
        raise ValueError(f"{where}: 'instances' must be a non-empty list of {{input, output}}.")
    for inst in row["instances"]:
        if not isinstance(inst, Mapping) or "output" not in inst:
            raise ValueError(f"{where}: every instance needs an 'output' (and an 'input', possibly empty).")
    return {"id": row.get("id", where), "name": row.get("name", ""), "instruction": str(row["instruction"]).strip(),
            "instances": [{"input": str(i.get("input", "")), "output": str(i["output"])} for i in row["instances"]],
            "is_classification": bool(row["is_classification"])}


def load_seed_tasks(path: str | Path | None = None) -> list[dict]:
    """The seed task pool: the course's own (``course_utils/data/seed_tasks.jsonl``), or the original 175
    tasks when you have them (``path="seed_tasks.jsonl"`` from ``yizhongw/self-instruct/data``).

    Raises:
        ValueError: a pool with no valid task.
    """
    path = Path(path) if path else Path(str(files("course_utils.data") / "seed_tasks.jsonl"))
    tasks, _ = read_jsonl(path, validate_seed_task)
    if not tasks:
        raise ValueError(f"{path} holds no valid seed task; Self-Instruct needs a pool to start from.")
    return tasks


# ---------------------------------------------------------------------------------------------------------------
# Step 1: new instructions
# ---------------------------------------------------------------------------------------------------------------

def _check_prompt_mix(n_prompt, n_machine) -> None:
    positive_int("n_prompt", n_prompt, "pass e.g. n_prompt=8 (the reference's)")
    non_negative_int("n_machine", n_machine, "pass e.g. n_machine=2 (the reference's)")
    if n_machine > n_prompt:
        raise ValueError(f"n_machine={n_machine} is more than the n_prompt={n_prompt} instructions a prompt shows: "
                         "pass n_machine <= n_prompt, e.g. 2 of 8.")


def sample_prompt_instructions(seed: Sequence[str], machine: Sequence[str], rng: random.Random,
                               n_prompt: int = 8, n_machine: int = 2) -> list[str]:
    """``n_machine`` instructions the model wrote (fewer while it has written fewer) and the rest human seeds,
    shuffled: the reference's 6 + 2 mix, so the seeds anchor quality and the new ones push diversity.

    Raises:
        ValueError: too few seeds to fill the prompt.
    """
    _check_prompt_mix(n_prompt, n_machine)
    not_a_str("seed", seed)
    not_a_str("machine", machine)
    k = min(n_machine, len(machine))
    if len(seed) < n_prompt - k:
        raise ValueError(f"Need at least {n_prompt - k} seed instructions for a prompt, have {len(seed)}.")
    chosen = rng.sample(list(machine), k) + rng.sample(list(seed), n_prompt - k)
    rng.shuffle(chosen)
    return chosen


def encode_prompt(instructions: Sequence[str], classification_only: bool = False) -> str:
    """The reference's prompt: a numbered list the model continues at the next number."""
    not_a_str("instructions", instructions)
    head = ("Come up with a series of classification tasks. Try to specify the possible output labels when "
            "possible.\n" if classification_only else "Come up with a series of tasks:\n")
    body = "".join(f"{i}. {' '.join(t.split())}\n" for i, t in enumerate(instructions, 1))
    return f"{head}{body}{len(instructions) + 1}."


def parse_instructions(response: str, first_number: int = 9, complete: bool = False) -> list[str]:
    """The numbered items of a continuation (it starts right after ``"{first_number}."``).

    Item ``first_number`` is the first line; later lines count only while they start with the next number
    (``"10."``), so the chatter a small model adds after its item is ignored. A blank line ends the list (the
    reference's stop sequence). The last item is dropped unless ``complete`` (the model stopped by itself or
    the list ended before the token limit): generation cut at the limit may have cut it mid-sentence.
    """
    text = response.split("\n\n")[0]
    ended = complete or "\n\n" in response
    lines = text.split("\n")
    items, expect = [lines[0]], first_number + 1
    for line in lines[1:]:
        m = re.match(rf"\s*{expect}\s?\.\s*(.*)", line)
        if not m:
            ended = True  # the list stopped here; what came before is whole
            break
        items.append(m.group(1))
        expect += 1
    if not ended:
        items = items[:-1]
    items = [" ".join(s.split()) for s in items]
    return [s[0].upper() + s[1:] for s in items if s]


def instruction_filter(instruction: str, blacklist: Sequence[str] = BLACKLIST) -> str | None:
    """Why an instruction is rejected by the reference's heuristics, or ``None`` when it passes."""
    words = instruction.split()
    if len(words) <= 3:
        return "too short (<= 3 words)"
    if len(words) > 150:
        return "too long (> 150 words)"
    low = instruction.lower()
    if any(re.search(rf"\b{re.escape(w)}\b", low) for w in blacklist):
        return "blacklisted word"
    if low.startswith("write a program"):
        return "'Write a program'"
    if instruction[0] in string.punctuation:
        return "starts with punctuation"
    if not instruction[0].isascii():
        return "non-ASCII start"
    return None


def _normalize(text: str) -> str:
    return " ".join(text.lower().split())


@dataclass(frozen=True)
class BootstrapConfig:
    """Decoding and stopping settings of step 1 (the reference's: temperature 0.7, top-p 0.5, 8-task prompts)."""

    target: int = 20  # new instructions to keep
    max_requests: int = 40  # give up after this many prompts (a small model may stall)
    batch_size: int = 8
    max_new_tokens: int = 48  # one or two items: a small model rarely lists more
    temperature: float = 0.7
    top_p: float = 0.5
    repetition_penalty: float = 1.2  # stands in for the API's presence_penalty=2
    n_prompt: int = 8
    n_machine: int = 2
    seed: int = 0

    def __post_init__(self):
        for name in ("target", "max_requests", "batch_size", "max_new_tokens"):
            positive_int(name, getattr(self, name), f"pass e.g. {name}={getattr(BootstrapConfig, name)}")
        positive_float("temperature", self.temperature, "pass e.g. temperature=0.7 (the reference's)")
        if not 0 < positive_float("top_p", self.top_p, "pass e.g. top_p=0.5") <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}: pass e.g. top_p=0.5 (the reference's).")
        positive_float("repetition_penalty", self.repetition_penalty, "pass e.g. repetition_penalty=1.2 (1: none)")
        _check_prompt_mix(self.n_prompt, self.n_machine)


def _continue(model, tok, prompts: list[str], max_new_tokens: int, seed: int,
              **kw) -> tuple[list[str], list[bool]]:
    """Raw-text continuations of a batch (no chat template: the model continues the list), and whether each
    ended by itself."""
    from .models import generate_batch

    torch.manual_seed(seed)  # per batch, so a resumed run samples exactly what an uninterrupted one would
    return generate_batch(model, tok, prompts, max_new_tokens=max_new_tokens, chat=False,
                          batch_size=len(prompts), return_finished=True, **kw)


def _check_seed_tasks(seed_tasks, need: tuple[str, ...] = ("instruction",)) -> None:
    """Seed tasks are dicts (load_seed_tasks()); a list of instruction strings is the usual slip."""
    not_a_str("seed_tasks", seed_tasks, "pass load_seed_tasks()")
    for i, t in enumerate(seed_tasks):
        if not isinstance(t, Mapping) or any(k not in t for k in need):
            raise TypeError(f"seed task {i} is {t!r}; seed tasks are dicts with {list(need)} as "
                            "load_seed_tasks() returns them: pass load_seed_tasks().")


def generate_instructions(model, tok, seed_tasks: Sequence[Mapping], out_path: str | Path,
                          cfg: BootstrapConfig = BootstrapConfig(), progress: bool = True) -> list[str]:
    """Step 1. Prompt, parse, filter, until ``cfg.target`` new instructions are kept or ``cfg.max_requests``.

    One JSONL row per prompt (``request_idx``, the prompt's instructions, the raw response, and every candidate
    with ``kept``, ``reason``, ``max_rouge``, ``most_similar``). A rerun reads the file, rebuilds the pool, and
    continues at the next request: the result is the same as an uninterrupted run.

    Returns:
        The kept machine instructions, in the order they were accepted.
    """
    from tqdm.auto import tqdm

    if not isinstance(cfg, BootstrapConfig):
        raise TypeError(f"cfg must be a BootstrapConfig, got {type(cfg).__name__}: pass e.g. "
                        "BootstrapConfig(target=20).")
    _check_seed_tasks(seed_tasks)
    seeds = [t["instruction"] for t in seed_tasks]
    if not seeds:
        raise ValueError("The seed pool is empty: load_seed_tasks() first.")
    pool, machine = RougePool(seeds), []
    known = {_normalize(s) for s in seeds}
    done, _ = read_jsonl(out_path) if Path(out_path).exists() else ([], [])
    for row in done:  # replay: rebuild the pool exactly as it was
        for c in row["candidates"]:
            if c["kept"]:
                machine.append(c["instruction"])
                pool.add(c["instruction"])
                known.add(_normalize(c["instruction"]))
    next_idx = 1 + max((r["request_idx"] for r in done), default=-1)
    bar = tqdm(total=cfg.target, initial=min(len(machine), cfg.target), desc="new instructions",
               disable=not progress)
    while len(machine) < cfg.target and next_idx < cfg.max_requests:
        idxs = range(next_idx, min(next_idx + cfg.batch_size, cfg.max_requests))
        shown = [sample_prompt_instructions(seeds, machine, random.Random(cfg.seed * 100_003 + i), cfg.n_prompt,
                                            cfg.n_machine) for i in idxs]
        responses, finished = _continue(model, tok, [encode_prompt(s) for s in shown], cfg.max_new_tokens,
                              cfg.seed * 100_003 + next_idx, do_sample=True, temperature=cfg.temperature,
                              top_p=cfg.top_p, repetition_penalty=cfg.repetition_penalty)
        rows = []
        for i, s, resp, fin in zip(idxs, shown, responses, finished):
            cands = []
            for inst in parse_instructions(resp, cfg.n_prompt + 1, complete=fin):
                reason, sim, similar = instruction_filter(inst), 0.0, ""
                if reason is None:
                    sim, j = pool.max_similarity(inst)
                    similar = pool.texts[j] if j >= 0 else ""
                    if _normalize(inst) in known:
                        reason = "duplicate"
                    elif not pool.is_novel(inst, SIMILARITY_THRESHOLD):  # exact, not the rounded float
                        reason = "ROUGE-L >= 0.7 to the pool"
                kept = reason is None and len(machine) < cfg.target
                if kept:
                    machine.append(inst)
                    pool.add(inst)
                    known.add(_normalize(inst))
                    bar.update(1)
                cands.append({"instruction": inst, "kept": kept, "reason": reason or ("" if kept else "target met"),
                              "max_rouge": round(sim, 4), "most_similar": similar})
            rows.append({"request_idx": i, "prompt_instructions": s, "response": resp, "finished": fin,
                         "candidates": cands})
        write_jsonl(rows, out_path, append=True)
        next_idx = idxs[-1] + 1
    bar.close()
    return machine


# ---------------------------------------------------------------------------------------------------------------
# Step 2: classification or not
# ---------------------------------------------------------------------------------------------------------------

CLF_HEAD = "Can the following task be regarded as a classification task with finite output labels?\n\n"


def classification_shots(seed_tasks: Sequence[Mapping], n_shots: int = 16,
                         seed: int = 0) -> tuple[list[Mapping], list[Mapping]]:
    """Few-shot examples for step 2, half classification and half not, and the seed tasks left over (used to
    calibrate the decision threshold).

    Raises:
        ValueError: a pool without both kinds of task.
    """
    int_at_least("n_shots", n_shots, 2, "pass e.g. n_shots=16 (half classification, half not)")
    _check_seed_tasks(seed_tasks, ("instruction", "is_classification"))
    rng = random.Random(seed)
    yes = [t for t in seed_tasks if t["is_classification"]]
    no = [t for t in seed_tasks if not t["is_classification"]]
    if not yes or not no:
        raise ValueError("The few-shot examples need both classification and non-classification seed tasks.")
    k = min(n_shots // 2, len(yes) - 1 if len(yes) > 1 else 1)
    shots = rng.sample(yes, k) + rng.sample(no, min(n_shots - k, len(no)))
    rng.shuffle(shots)
    rest = [t for t in seed_tasks if all(t is not s for s in shots)]
    return shots, rest


def classification_prompt(shots: Sequence[Mapping]) -> str:
    """The few-shot prefix of step 2: each shot as ``Task: ...`` / ``Is it classification? Yes|No``."""
    return CLF_HEAD + "".join(f"Task: {t['instruction']}\nIs it classification? "
                              f"{'Yes' if t['is_classification'] else 'No'}\n\n" for t in shots)


def classify_tasks(model, tok, instructions: Sequence[str], prefix: str, batch_size: int = 8) -> torch.Tensor:
    """P(Yes) / (P(Yes) + P(No)) for each instruction after the few-shot ``prefix`` (one forward each: the
    reference generates 3 tokens at temperature 0; comparing the two answers' probabilities is the same decision
    without parsing, and gives a score)."""
    from .prompting import continuation_logprobs

    not_a_str("instructions", instructions)
    positive_int("batch_size", batch_size, "pass e.g. batch_size=8")
    contexts = [f"Task: {i}\nIs it classification?" for i in instructions]
    lp = continuation_logprobs(model, tok, contexts, [[" Yes", " No"]] * len(contexts), batch_size=batch_size,
                               shared_prefix=prefix)
    return lp.softmax(-1)[:, 0]


def calibrate_threshold(p_yes: torch.Tensor, labels: Sequence[bool]) -> float:
    """The threshold on P(Yes) with the best balanced accuracy on labelled tasks (midway between neighbours).

    A small model's Yes/No probabilities lean one way (chapter 2's calibration problem); labelled seed tasks
    that are not among the shots tell us where to cut.
    """
    if not isinstance(p_yes, torch.Tensor) or p_yes.ndim != 1:
        raise TypeError(f"p_yes must be a 1-D tensor of probabilities (classify_tasks(...)), got "
                        f"{type(p_yes).__name__}.")
    same_length("p_yes", p_yes, "labels", labels, "give one label per scored task")
    y = torch.tensor(list(labels), dtype=torch.bool)
    if y.all() or not y.any():
        raise ValueError("Calibration needs labelled tasks of both kinds.")
    cands = torch.sort(p_yes).values
    cuts = torch.cat([cands[:1] - 1e-6, (cands[1:] + cands[:-1]) / 2, cands[-1:] + 1e-6])
    best, best_acc = 0.5, -1.0
    for c in cuts.tolist():
        pred = p_yes >= c
        acc = ((pred & y).sum() / y.sum() + (~pred & ~y).sum() / (~y).sum()).item() / 2
        if acc > best_acc:
            best, best_acc = c, acc
    return best


def identify_classification(model, tok, instructions: Sequence[str], seed_tasks: Sequence[Mapping],
                            out_path: str | Path, threshold: float | None = None, n_shots: int = 16,
                            progress: bool = True) -> dict[str, bool]:
    """Step 2, resumable: ``{instruction: is_classification}``; rows ``{instruction, is_classification, p_yes,
    threshold}``. Without a ``threshold``, it is calibrated on the seed tasks that are not shots."""
    from tqdm.auto import tqdm

    not_a_str("instructions", instructions)
    if threshold is not None:
        probability("threshold", threshold, "pass e.g. threshold=0.5, or None to calibrate it on the seed tasks")
    int_at_least("n_shots", n_shots, 2, "pass e.g. n_shots=16 (half classification, half not)")
    done, _ = read_jsonl(out_path) if Path(out_path).exists() else ([], [])
    result = {r["instruction"]: r["is_classification"] for r in done}
    todo = [i for i in dict.fromkeys(instructions) if i not in result]
    if todo:
        shots, rest = classification_shots(seed_tasks, n_shots)
        prefix = classification_prompt(shots)
        if threshold is None:
            threshold = calibrate_threshold(classify_tasks(model, tok, [t["instruction"] for t in rest], prefix),
                                            [t["is_classification"] for t in rest])
    for s in tqdm(range(0, len(todo), 8), desc="classification?", disable=not progress or not todo):
        batch = todo[s:s + 8]
        p = classify_tasks(model, tok, batch, prefix)
        rows = [{"instruction": i, "is_classification": bool(q >= threshold), "p_yes": round(q.item(), 4),
                 "threshold": round(threshold, 4)} for i, q in zip(batch, p)]
        write_jsonl(rows, out_path, append=True)
        result.update({r["instruction"]: r["is_classification"] for r in rows})
    return {i: result[i] for i in instructions}


# ---------------------------------------------------------------------------------------------------------------
# Step 3: instances, input-first or output-first
# ---------------------------------------------------------------------------------------------------------------

INPUT_FIRST_HEAD = ("Come up with examples for the following tasks. If the task doesn't require additional input, "
                    "you can generate the output directly.\n\n")
OUTPUT_FIRST_HEAD = ("Given the classification task definition and the class labels, generate an input that "
                     "corresponds to each of the class labels. If the task doesn't require input, just generate "
                     "the correct class label.\n\n")


def _show_input(text: str) -> str:
    return text.strip() if text.strip() else "(none)"


def instance_prompt(instruction: str, classification: bool, demos: Sequence[Mapping]) -> str:
    """Few-shot prompt for one task. Input-first: ``Task / Input / Output``; output-first (classification):
    ``Task / Class label / Input``, so the label is chosen before the input is written."""
    head = OUTPUT_FIRST_HEAD if classification else INPUT_FIRST_HEAD
    shots = []
    for t in demos:
        inst = t["instances"][0]
        if classification:
            shots.append(f"Task: {t['instruction']}\nClass label: {inst['output']}\n"
                         f"Input: {_show_input(inst['input'])}")
        else:
            shots.append(f"Task: {t['instruction']}\nInput: {_show_input(inst['input'])}\nOutput: {inst['output']}")
    opener = "Class label:" if classification else "Input:"
    return head + "\n\n".join(shots) + f"\n\nTask: {instruction}\n{opener}"


def parse_instance(response: str, classification: bool) -> dict | None:
    """The first ``{input, output}`` in a continuation of :func:`instance_prompt` (``None`` when unparseable).

    The continuation starts right after ``"Input:"`` (or ``"Class label:"``) and is cut at the next ``Task:``:
    ``" <first field>\nOutput: <second field>"`` (``Input:`` for output-first).
    """
    text = response.split("\nTask:")[0]
    second = "Output:" if not classification else "Input:"
    if second not in text:
        return None
    a, b = text.split(second, 1)
    # the first field is one line; an output may span lines (a list) up to a blank line; a class input is a line
    a, b = a.strip(), b.split("\n\n")[0].strip()
    if classification:
        b = b.split("\n")[0].strip()
    inp, out = (a, b) if not classification else (b, a)
    if inp.lower() in ("(none)", "none", "n/a"):
        inp = ""
    return {"input": inp, "output": out}


def generate_instances(model, tok, tasks: Mapping[str, bool], seed_tasks: Sequence[Mapping], out_path: str | Path,
                       max_new_tokens: int = 64, batch_size: int = 8, n_demos: int = 3, seed: int = 0,
                       progress: bool = True) -> list[dict]:
    """Step 3, resumable: one greedy instance per ``{instruction: is_classification}``.

    Demonstrations are seed tasks of the same kind (classification or not), drawn per instruction with a fixed
    seed. The two fields are generated in turn: first the input (or, output-first, the class label) up to the
    end of its line, then the prompt is extended with it and the field label, and the second field is generated.
    (In one call a small model tends to stop after the first field.) Rows: ``{instruction, is_classification,
    response, instances}``; ``instances`` is empty when nothing parseable came back.
    """
    from tqdm.auto import tqdm

    from .models import generate_batch

    if not isinstance(tasks, Mapping):
        raise TypeError(f"tasks must be a dict {{instruction: is_classification}} (identify_classification's "
                        f"result), got {type(tasks).__name__}.")
    _check_seed_tasks(seed_tasks, ("instruction", "instances", "is_classification"))
    for name, value in (("max_new_tokens", max_new_tokens), ("batch_size", batch_size), ("n_demos", n_demos)):
        positive_int(name, value)
    done, _ = read_jsonl(out_path) if Path(out_path).exists() else ([], [])
    have = {r["instruction"] for r in done}
    todo = [(i, c) for i, c in tasks.items() if i not in have]
    by_kind = {k: [t for t in seed_tasks if t["is_classification"] == k] for k in (True, False)}
    for s in tqdm(range(0, len(todo), batch_size), desc="instances", disable=not progress or not todo):
        batch = todo[s:s + batch_size]
        prompts = [instance_prompt(i, c, random.Random(f"{seed}:{i}").sample(by_kind[c], min(n_demos, len(by_kind[c]))))
                   for i, c in batch]
        kw = {"chat": False, "batch_size": batch_size, "repetition_penalty": 1.2}
        firsts = [f.split("\n")[0].strip() for f in generate_batch(model, tok, prompts, max_new_tokens=32, **kw)]
        seconds = [("Input:" if c else "Output:") for _, c in batch]
        prompts2 = [f"{p} {f}\n{lab}" for p, f, lab in zip(prompts, firsts, seconds)]
        outs = generate_batch(model, tok, prompts2, max_new_tokens=max_new_tokens, **kw)
        rows = []
        for (i, c), f, lab, o in zip(batch, firsts, seconds, outs):
            resp = f" {f}\n{lab} {o}"
            inst = parse_instance(resp, c) if f else None
            rows.append({"instruction": i, "is_classification": c, "response": resp,
                         "instances": [inst] if inst else []})
        write_jsonl(rows, out_path, append=True)
        done += rows
    order = {i: n for n, i in enumerate(tasks)}
    return sorted((r for r in done if r["instruction"] in order), key=lambda r: order[r["instruction"]])


# ---------------------------------------------------------------------------------------------------------------
# Step 4: filter and assemble
# ---------------------------------------------------------------------------------------------------------------

def instance_filter(instance: Mapping | None) -> str | None:
    """Why an instance is rejected (the reference's ``prepare_for_finetuning`` rules), or ``None``."""
    if instance is None:
        return "unparseable instance"
    inp, out = instance["input"].strip(), instance["output"].strip()
    if not out:
        return "empty output"
    if inp and inp == out:
        return "input equals output"
    if inp.endswith(":") or out.endswith(":"):
        return "field ends with ':' (truncated)"
    return None


def filter_instances(rows: Sequence[Mapping]) -> tuple[list[dict], Counter]:
    """Step 4: instruction data ``{instruction, input, output}`` from step 3's rows, and the count of rejections
    per rule. A task with two instances of the same input but different outputs is dropped whole (the model
    contradicts itself); exact duplicates are kept once."""
    removed: Counter = Counter()
    data = []
    for r in rows:
        instances = r["instances"] or [None]
        good = []
        for inst in instances:
            reason = instance_filter(inst)
            if reason:
                removed[reason] += 1
            else:
                good.append({"input": inst["input"].strip(), "output": inst["output"].strip()})
        outputs_by_input: dict[str, set] = {}
        for g in good:
            outputs_by_input.setdefault(g["input"], set()).add(g["output"])
        if any(len(o) > 1 for o in outputs_by_input.values()):
            removed["same input, different outputs"] += len(good)
            continue
        seen = set()
        for g in good:
            key = (g["input"], g["output"])
            if key in seen:
                removed["duplicate instance"] += 1
                continue
            seen.add(key)
            data.append({"instruction": r["instruction"], **g, "is_classification": r["is_classification"]})
    return data, removed


@dataclass
class FilterReport:
    """How many candidates each filter removed, over the whole run (step 1 and step 4)."""

    proposed: int = 0
    kept_instructions: int = 0
    kept_examples: int = 0
    removed: Counter = field(default_factory=Counter)

    @classmethod
    def from_runs(cls, step1_path: str | Path, step4_removed: Counter | None = None,
                  kept_examples: int = 0) -> FilterReport:
        """Count step 1's rejections from its JSONL file and add step 4's."""
        rows, _ = read_jsonl(step1_path)
        cands = [c for r in rows for c in r["candidates"]]
        removed = Counter(c["reason"] for c in cands if not c["kept"])
        removed.update(step4_removed or {})
        return cls(len(cands), sum(c["kept"] for c in cands), kept_examples, removed)

    def table(self) -> str:
        """One line per filter, largest first."""
        lines = [f"{self.proposed} instructions proposed, {self.kept_instructions} kept; "
                 f"{self.kept_examples} examples after the instance filters"]
        lines += [f"  {n:5d}  {why}" for why, n in self.removed.most_common()]
        return "\n".join(lines)

    def plot(self, ax=None):
        """Horizontal bars: candidates removed per filter."""
        import matplotlib.pyplot as plt

        items = self.removed.most_common()[::-1]
        ax = ax or plt.subplots(figsize=(6.5, 0.35 * len(items) + 1.2))[1]
        ax.barh([w for w, _ in items], [n for _, n in items], color="C3")
        ax.set_xlabel("candidates removed")
        ax.set_title(f"Self-Instruct filters: {self.proposed} proposed, {self.kept_instructions} kept")
        return ax


# ---------------------------------------------------------------------------------------------------------------
# The whole loop, sized per profile
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SelfInstructSetup:
    """Sizes of chapter 7's run: how many instructions to make, and the short LoRA SFT on them."""

    target: int  # new instructions to keep (step 1)
    max_requests: int
    batch_size: int
    n_heldout: int  # seed tasks kept out of the loop, to evaluate the fine-tune on human-written references
    sft_steps: int
    sft_batch: int
    max_len: int  # tokens per training example
    answer_tokens: int  # generated per held-out answer

    def __post_init__(self):
        for name in ("target", "max_requests", "batch_size", "sft_steps", "sft_batch", "max_len", "answer_tokens"):
            positive_int(name, getattr(self, name), "config.SIZES['self_instruct'] has working values")
        non_negative_int("n_heldout", self.n_heldout, "pass e.g. n_heldout=12")

    def bootstrap_config(self, seed: int = 0) -> BootstrapConfig:
        """Step 1's settings for this size."""
        return BootstrapConfig(target=self.target, max_requests=self.max_requests, batch_size=self.batch_size,
                               seed=seed)


def split_seed_tasks(seed_tasks: Sequence[Mapping], n_heldout: int, seed: int = 0) -> tuple[list, list]:
    """``(pool, heldout)``: ``n_heldout`` tasks (classification ones in proportion) kept out of every prompt and
    demonstration, so the fine-tuned model can be judged on tasks and references it never saw.

    Raises:
        ValueError: ``n_heldout`` that leaves fewer than 16 tasks in the pool.
    """
    non_negative_int("n_heldout", n_heldout, "pass e.g. n_heldout=12")
    _check_seed_tasks(seed_tasks, ("instruction", "is_classification"))
    if len(seed_tasks) - n_heldout < 16:
        raise ValueError(f"Holding out {n_heldout} of {len(seed_tasks)} seed tasks leaves too few to prompt with "
                         "(need 16); hold out fewer.")
    rng = random.Random(seed)
    clf = [t for t in seed_tasks if t["is_classification"]]
    gen = [t for t in seed_tasks if not t["is_classification"]]
    k = round(n_heldout * len(clf) / len(seed_tasks))
    held = rng.sample(clf, k) + rng.sample(gen, n_heldout - k)
    ids = {id(t) for t in held}
    return [t for t in seed_tasks if id(t) not in ids], held


def bootstrap(model, tok, seed_tasks: Sequence[Mapping], out_dir: str | Path, setup: SelfInstructSetup,
              progress: bool = True) -> tuple[list[dict], FilterReport]:
    """All four steps into ``out_dir`` (each resumable), the result also saved as ``instruction_data.jsonl``.

    Returns:
        The instruction data and the report of what each filter removed.
    """
    out = Path(out_dir)
    new = generate_instructions(model, tok, seed_tasks, out / "step1_instructions.jsonl",
                                setup.bootstrap_config(), progress)
    kinds = identify_classification(model, tok, new, seed_tasks, out / "step2_classification.jsonl",
                                    progress=progress)
    rows = generate_instances(model, tok, kinds, seed_tasks, out / "step3_instances.jsonl",
                              batch_size=setup.batch_size, progress=progress)
    data, removed = filter_instances(rows)
    write_jsonl(data, out / "instruction_data.jsonl")
    return data, FilterReport.from_runs(out / "step1_instructions.jsonl", removed, len(data))


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m course_utils.self_instruct --out runs/si``: the four steps from the command line (resumable:
    run the same command again after a stop), then a summary of what each filter removed."""
    import argparse

    from .config import profile, sizes
    from .models import load_model

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--out", required=True, help="folder for the step files and instruction_data.jsonl")
    ap.add_argument("--model", default=None, help="model name (default: the profile's, offline SmolLM2)")
    ap.add_argument("--profile", default=None, help="smoke | cpu | gpu (default: $COURSE_PROFILE or auto)")
    ap.add_argument("--seed-tasks", default=None, help="a seed_tasks.jsonl (default: the course's 72)")
    ap.add_argument("--target", type=validate.cli_number(int, 1), default=None,
                    help="new instructions to keep (default: the profile's)")
    args = ap.parse_args(argv)
    P = profile(args.profile)
    setup = sizes("self_instruct", P.name)
    if args.target is not None:  # --target 0 is refused by SelfInstructSetup, not ignored
        setup = SelfInstructSetup(**{**setup.__dict__, "target": args.target,
                                     "max_requests": max(setup.max_requests, 2 * args.target)})
    model, tok = load_model(args.model or P.model_name)
    pool, _ = split_seed_tasks(load_seed_tasks(args.seed_tasks), 0 if args.seed_tasks else setup.n_heldout)
    data, report = bootstrap(model, tok, pool, args.out, setup)
    print(report.table())
    print(f"wrote {len(data)} examples to {Path(args.out) / 'instruction_data.jsonl'}; fine-tune on them with\n"
          f"  python -m course_utils.finetune --data {Path(args.out) / 'instruction_data.jsonl'} --method lora")


if __name__ == "__main__":
    main()
