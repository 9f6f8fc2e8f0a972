"""Mutation check of the tests: break one line of course_utils at a time and see that the named tests fail.

    .venv/bin/python tools/mutations.py                 # every mutation (a few minutes on 2 cores)
    .venv/bin/python tools/mutations.py --only icl_corrupt_noop --only judge_constant
    .venv/bin/python tools/mutations.py --list

For each mutation, ``course_utils/`` is copied into a fresh temporary folder (the checkout's other top-level entries
are linked beside it, so paths such as ``lessons_src/`` resolve as usual), one exact text is replaced in one file,
and the mutation's tests run there with ``PYTHONPATH`` on the copy, so the broken package is imported instead of the
editable install. A first check proves that: ``course_utils.__file__`` must lie in the copy, and a copy whose
``__init__`` raises must fail the tests. The unbroken copy must pass every selected test. The checkout is never
written to (no bytecode either).

Exit status 1 if a mutation survives (its tests still pass), the unbroken copy fails them, or a mutation's text is
not found exactly once (the code moved: update the mutation).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "course_utils"
NOT_LINKED = {PACKAGE, ".git", ".venv", "build", "sft_course.egg-info", ".pytest_cache", ".ruff_cache"}
CANARY = "mutation-canary: the copy of course_utils was imported"
TIMEOUT_S = 300


@dataclass(frozen=True)
class Mutation:
    """Replace ``old`` (which must occur exactly once) by ``new`` in ``course_utils/<file>``; ``tests`` are pytest
    node ids that must then fail."""

    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]
    what: str


MUTATIONS = (
    # one per test that was weak
    Mutation("icl_corrupt_noop", "icl.py",
             "return [Example(ex.text, rng.choice(list(labels))) if i in chosen else ex for i, ex in enumerate(demos)]",
             "return list(demos)",
             ("tests/test_icl.py::test_corrupt_labels_keeps_inputs_and_label_space",
              "tests/test_icl.py::test_corrupt_labels_redraws_the_asked_fraction_uniformly"),
             "corrupt_labels returns its input unchanged"),
    Mutation("judge_constant", "alignment.py", "return p @ torch.arange(1.0, 6.0)",
             "return torch.full((len(contexts),), 3.0)",
             ("tests/test_alignment.py::test_judge_score_is_the_expected_digit_by_hand",),
             "the LLM judge gives every answer 3"),
    Mutation("tinygpt_tied_counted_twice", "tinygpt.py", "return sum(p.numel() for p in self.parameters())",
             "return sum(p.numel() for _, p in self.named_parameters(remove_duplicate=False))",
             ("tests/test_tinygpt.py::test_generate_and_describe",),
             "the tied embedding / head is counted twice"),
    Mutation("colab_cell_in_any_notebook", "course/lessons.py", 'if "google.colab" in sys.modules:',
             'if "google.colab" in sys.modules or "get_ipython" in globals():',
             ("tests/test_lessons.py::test_colab_cell_does_nothing_off_colab",),
             "the Colab set-up cell installs in any Jupyter kernel"),
    Mutation("slick_stop_max", "slick.py", "torch.logsumexp(logp[-1][stop], 0)", "logp[-1][stop].max()",
             ("tests/test_slick.py::test_exact_sample_probability_by_hand",),
             "P(stop) is the likeliest stop token's, not all of them"),
    Mutation("slick_temperature_ignored", "slick.py", "logits.float() / temperature", "logits.float()",
             ("tests/test_slick.py::test_exact_sample_probability_by_hand",),
             "the sampling probability ignores the temperature"),
    Mutation("no_repeat_ban_dropped", "decoding.py", "**dict(s.kwargs))",
             '**{k: v for k, v in s.kwargs.items() if k != "no_repeat_ngram_size"})',
             ("tests/test_decoding.py::test_sweep_applies_the_no_repeat_ban",),
             "the sweep drops no_repeat_ngram_size"),
    Mutation("effective_rank_unsquared", "lora.py", "sq = s.detach().double().sort(descending=True).values ** 2",
             "sq = s.detach().double().sort(descending=True).values",
             ("tests/test_peft_methods.py::test_full_update_is_low_rank_on_the_tiny_model",),
             "effective rank on singular values, not energies"),
    Mutation("latency_mean", "latency.py", "return statistics.median(times)", "return statistics.mean(times)",
             ("tests/test_latency.py::test_median_of_timed_runs_after_warmup",),
             "latency is the mean of the runs, not the median"),
    Mutation("latency_last_round", "latency.py",
             "best[name] = min(best[name], measure_latency(model, input_ids, repeats=repeats, warmup=1))",
             "best[name] = measure_latency(model, input_ids, repeats=repeats, warmup=1)",
             ("tests/test_latency.py::test_compare_latency_times_every_model_and_refuses_none",),
             "compare_latency keeps the last round, not the fastest"),
    # central code
    Mutation("causal_mask_peeks", "masks.py", "return torch.ones(T, T, dtype=torch.bool).tril()",
             "return torch.ones(T, T, dtype=torch.bool).tril(1)",
             ("tests/test_masks.py::test_scratch_masks_match_transformers_masking_utils",),
             "the causal mask lets each token see the next one"),
    Mutation("tinygpt_not_causal", "tinygpt.py", "is_causal=True", "is_causal=False",
             ("tests/test_tinygpt.py::test_causal",),
             "TinyGPT attends to the future"),
    Mutation("lora_scaling_alpha", "lora.py", "self.scaling = r, alpha, alpha / r", "self.scaling = r, alpha, alpha",
             ("tests/test_lora.py::test_lora_linear_init_scaling_and_no_op",),
             "LoRA scales by alpha, not alpha / r"),
    Mutation("sft_prompt_trained", "sft.py", '"labels": [IGNORE_INDEX] * len(prompt_ids) + response_ids',
             '"labels": prompt_ids + response_ids',
             ("tests/test_sft.py::test_labels_mask_the_prompt_and_end_with_eos",),
             "SFT labels keep the prompt tokens (loss on the prompt)"),
    Mutation("rouge_lcs_diagonal", "rouge.py", "left = prev[j] + 1", "left = prev[j + 1] + 1",
             ("tests/test_rouge.py::test_lcs_length_hand_cases", "tests/test_rouge.py::test_rouge_l_hand_cases"),
             "the LCS recurrence extends the wrong cell"),
    Mutation("resume_rng_not_restored", "checkpoints.py", 'torch.set_rng_state(rng["cpu_rng"])', "pass",
             ("tests/test_resume.py::test_a_signal_finishes_the_step_saves_and_resumes_bit_for_bit",
              "tests/test_resume.py::test_a_stopped_command_resumes_to_the_uninterrupted_result"),
             "a resumed run keeps the fresh random state (other dropout masks)"),
    Mutation("resume_other_run_accepted", "checkpoints.py", "    if diffs:\n        raise OtherRunError",
             "    if False:\n        raise OtherRunError",
             ("tests/test_resume.py::test_a_checkpoint_resumes_only_its_own_run",),
             "another run's checkpoint is resumed (two runs mixed)"),
    Mutation("stop_not_deferred", "checkpoints.py", "        self.signal = signal.Signals(signum).name",
             "        raise KeyboardInterrupt",
             ("tests/test_resume.py::test_a_signal_finishes_the_step_saves_and_resumes_bit_for_bit",),
             "Ctrl-C stops in the middle of a step"),
)


def make_tree(tmp: Path) -> Path:
    """A fresh copy of the package beside links to the checkout's other entries; returns the tree's root."""
    tree = tmp / "tree"
    tree.mkdir()
    shutil.copytree(ROOT / PACKAGE, tree / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    for entry in ROOT.iterdir():
        if entry.name not in NOT_LINKED:
            (tree / entry.name).symlink_to(entry)
    return tree


def checked_text(package: Path, m: Mutation) -> str:
    """The file ``m`` mutates, refused loudly unless ``m.old`` occurs exactly once in it."""
    text = (package / m.file).read_text()
    if text.count(m.old) != 1:
        raise SystemExit(f"mutation {m.name}: {m.old!r} occurs {text.count(m.old)} times in {PACKAGE}/{m.file}, "
                         "not once: the code moved; update the mutation's text in tools/mutations.py.")
    return text


def env_for(tree: Path) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", COURSE_PROFILE="smoke", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", PYTHONDONTWRITEBYTECODE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(tree), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def run_tests(tree: Path, tests: tuple[str, ...]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        return subprocess.run(cmd, cwd=tree, env=env_for(tree), capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(cmd, 124, "", f"timed out after {TIMEOUT_S} s")


def tail(proc: subprocess.CompletedProcess, n: int = 15) -> str:
    return "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-n:])


def check_the_copy_is_imported(tests: tuple[str, ...]) -> None:
    """The copy, not the editable install, is what python and pytest import."""
    with tempfile.TemporaryDirectory(prefix="mutations-") as tmp:
        tree = make_tree(Path(tmp))
        where = subprocess.run([sys.executable, "-c", f"import {PACKAGE}; print({PACKAGE}.__file__)"], cwd=tree,
                               env=env_for(tree), capture_output=True, text=True, timeout=120)
        path = Path(where.stdout.strip() or "?").resolve()
        if not path.is_relative_to(tree.resolve()):
            raise SystemExit(f"{PACKAGE} was imported from {path}, not from the copy in {tree}: PYTHONPATH is not "
                             f"honoured, so the mutations would test the checkout.\n{where.stderr}")
        print(f"imported from the copy: {path}")
        init = tree / PACKAGE / "__init__.py"
        init.write_text(f"raise ImportError({CANARY!r})\n" + init.read_text())
        proc = run_tests(tree, tests[:1])
        if proc.returncode == 0 or CANARY not in proc.stdout + proc.stderr:
            raise SystemExit(f"pytest did not import the broken copy (rc {proc.returncode}):\n{tail(proc)}")
        print("pytest imports the copy: a copy that cannot be imported fails the tests")


def check_baseline(mutations: list[Mutation]) -> None:
    """The unbroken copy passes every selected test (else a failure would mean nothing)."""
    tests = tuple(dict.fromkeys(t for m in mutations for t in m.tests))
    with tempfile.TemporaryDirectory(prefix="mutations-") as tmp:
        proc = run_tests(make_tree(Path(tmp)), tests)
    if proc.returncode != 0:
        raise SystemExit(f"the unbroken copy fails the selected tests (rc {proc.returncode}): fix them first.\n"
                         f"{tail(proc, 30)}")
    print(f"unbroken copy: all {len(tests)} test selections pass")


def run_mutation(m: Mutation) -> tuple[str, float, str]:
    """('yes' | 'NO' | 'error', seconds, output tail): 'yes' when the tests fail on the broken copy."""
    with tempfile.TemporaryDirectory(prefix="mutations-") as tmp:
        tree = make_tree(Path(tmp))
        (tree / PACKAGE / m.file).write_text(checked_text(tree / PACKAGE, m).replace(m.old, m.new))
        start = time.perf_counter()
        proc = run_tests(tree, m.tests)
        seconds = time.perf_counter() - start
    caught = {0: "NO", 1: "yes"}.get(proc.returncode, "error")  # 1: tests failed; others: could not run them
    return caught, seconds, tail(proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", metavar="NAME", help="run this mutation only (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = parser.parse_args(argv)
    known = {m.name: m for m in MUTATIONS}
    if args.list:
        for m in MUTATIONS:
            print(f"{m.name:28} {m.file:18} {m.what}")
        return 0
    unknown = [n for n in args.only or () if n not in known]
    if unknown:
        parser.error(f"unknown mutation(s) {unknown}: choose from {sorted(known)} (see --list)")
    chosen = [known[n] for n in args.only] if args.only else list(MUTATIONS)
    for m in chosen:  # fail before running anything when a mutation no longer applies
        checked_text(ROOT / PACKAGE, m)
    check_the_copy_is_imported(chosen[0].tests)
    check_baseline(chosen)
    rows = []
    for m in chosen:
        caught, seconds, out = run_mutation(m)
        rows.append((m, caught, seconds))
        print(f"{m.name}: caught {caught} ({seconds:.0f} s)", flush=True)
        if caught != "yes":
            print("   " + out.replace("\n", "\n   "))
    print("\n| mutation | file | test | caught |\n|---|---|---|---|")
    for m, caught, _ in rows:
        tests = "<br>".join(t.removeprefix("tests/") for t in m.tests)
        print(f"| {m.name} ({m.what}) | {PACKAGE}/{m.file} | {tests} | {caught} |")
    survived = [m.name for m, caught, _ in rows if caught != "yes"]
    print(f"\n{len(rows) - len(survived)} of {len(rows)} mutations caught" +
          (f"; not caught: {', '.join(survived)}" if survived else ""))
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
