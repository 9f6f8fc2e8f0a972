"""Every exercise checker passes a correct answer and fails a wrong one and the blank with a hint; progress."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_utils.course import checks
from course_utils.course.exercises.ch01 import check_causal_mask


@pytest.fixture(autouse=True)
def progress_path(tmp_path, monkeypatch):
    """Passes go to a temporary file, never to the learner's ~/.cache."""
    path = tmp_path / "progress.json"
    monkeypatch.setenv(checks.PROGRESS_ENV, str(path))
    return path


# ---- correct answers, built from the course's (or the library's) own code ----------------------------------

def sliding_window_transformers(T, w):
    from transformers.masking_utils import sliding_window_causal_mask_function

    return sliding_window_causal_mask_function(w)(0, 0, torch.arange(T)[:, None], torch.arange(T)[None, :])


def packed(lengths):
    from course_utils.masks import causal_mask

    return torch.block_diag(*[causal_mask(n) for n in lengths])


def verbalize(label_words, z):
    from course_utils.prompting import Verbalizer

    return Verbalizer(label_words)(z)


def label_scores(how):
    from course_utils.prompting import Verbalizer

    def fn(lp, answers, label_words):
        v = Verbalizer(label_words)
        return v.aggregate(lp[:, [answers.index(z) for z in v.answers]], how)

    return fn


def format_demos(demos, sep, drop_last_sep=False):
    from course_utils.data import Example
    from course_utils.icl import format_demonstrations
    from course_utils.prompting import Template, Verbalizer

    v = Verbalizer({y: y for y in ("positive", "neutral", "negative")})
    out = format_demonstrations(Template("Review: [X]\nSentiment: [Z]"), v, [Example(t, y) for t, y in demos], sep)
    return out[: len(out) - len(sep)] if drop_last_sep and demos else out


def knn(pool_emb, query_emb, k, cosine=True):
    from course_utils.icl import select_knn

    if cosine:
        pool_emb, query_emb = F.normalize(pool_emb, dim=-1), F.normalize(query_emb, dim=-1)
    return select_knn(list(range(len(pool_emb))), pool_emb, query_emb, k)


def knn_prompt(nearest_last=True):
    from course_utils.icl import select_knn

    def fn(query, pool, pool_emb, query_emb, k):
        rows = select_knn(pool, F.normalize(pool_emb, dim=-1), F.normalize(query_emb, dim=-1)[None], k,
                          most_similar_first=not nearest_last)[0]
        return "".join(f"Review: {t}\nSentiment: {y}\n\n" for t, y in rows) + f"Review: {query}\nSentiment:"

    return fn


def adam_bytes(n):
    from course_utils.memory import bytes_per_param

    return n * sum(bytes_per_param().values())


def lora_class(kind="right"):
    from course_utils.lora import LoRALinear

    class Wrong(LoRALinear):
        def __init__(self, base, r, alpha):
            super().__init__(base, r, alpha)
            if kind == "random B":
                torch.nn.init.normal_(self.lora_B)

        def forward(self, x):
            if kind == "no scaling":
                return self.base(x) + x @ self.lora_A.T @ self.lora_B.T
            return super().forward(x)

    return LoRALinear if kind == "right" else Wrong


def effective_rank_unsquared(s, energy):
    if not s.any():
        return 0
    return int((s.cumsum(0) / s.sum() < energy - 1e-6).sum()) + 1


def rotate_interleaved(x):
    return torch.stack((-x[..., 1::2], x[..., 0::2]), -1).flatten(-2)


def rope(x, base):
    from course_utils.positions import apply_rope

    return apply_rope(x, base=base)


def alpaca(instruction, input=""):  # noqa: A002
    from course_utils.instructions import alpaca_prompt

    return alpaca_prompt(instruction, input)


def distinct(texts, n):
    from course_utils.decoding import distinct_n

    return distinct_n(texts, n)


def distinct_per_text(texts, n):
    vals = [len({tuple(t[i:i + n]) for i in range(len(t) - n + 1)}) / (len(t) - n + 1) for t in texts if len(t) >= n]
    return sum(vals) / len(vals) if vals else 0.0


def rouge_filter(chained=True):
    from course_utils.rouge import RougePool

    def fn(candidates, pool, threshold):
        index, kept = RougePool(pool), []
        for c in candidates:
            if index.is_novel(c, threshold):
                kept.append(c)
                if chained:
                    index.add(c)
        return kept

    return fn


def l2sp(model, anchor, alpha, half=True):
    total = sum(((p - anchor[n]) ** 2).sum() for n, p in model.named_parameters() if n in anchor)
    return (0.5 if half else 1.0) * alpha * total


def hard_weights(losses, frac, boost, rescale=True):
    from course_utils.sample_optimization import hard_example_weights

    w = torch.tensor(hard_example_weights(losses, frac, boost))
    if not rescale:  # undo the mean-1 rescaling
        w = w / w.min()
    return w.tolist()


def weight_gib(n, dtype, unit=2**30, bits=False):
    return n * torch.empty((), dtype=dtype).element_size() * (8 if bits else 1) / unit


def param_count(cfg, tied=None, gqa=True):
    from course_utils.memory import llama_param_count

    cfg = dict(cfg)
    if tied is not None:
        cfg["tie_embeddings"] = tied
    if not gqa:
        cfg["num_kv_heads"] = cfg["num_heads"]
    return llama_param_count(**cfg)


def profile_name(name, env, cuda, env_wins=False, normalise=True, strict=True):
    raw = (env if env is not None else name if name is not None else "auto") if env_wins else \
        (name if name is not None else env if env is not None else "auto")
    key = raw.strip().lower() if normalise else raw
    if key in ("", "auto"):
        return "gpu" if cuda else "cpu"
    if strict and key not in ("smoke", "cpu", "gpu"):
        raise ValueError(key)
    return key


def repetition_penalty(ids, scores, p, sign_aware=True, per_occurrence=False):
    if per_occurrence:
        out = scores.clone()
        for b, row in enumerate(ids):
            for t in row:
                out[b, t] = out[b, t] * p if out[b, t] < 0 else out[b, t] / p
        return out
    s = scores.gather(1, ids)
    s = torch.where(s < 0, s * p, s / p) if sign_aware else s / p
    return scores.scatter(1, ids, s)


def keep_instruction(text, whole_words=True):
    from course_utils.self_instruct import BLACKLIST, instruction_filter

    if not whole_words and any(w in text.lower() for w in BLACKLIST):
        return False
    return instruction_filter(text) is None


def conversation(history, message, head_per_turn=False, compact=False):
    from course_utils.assistant import alpaca_conversation

    out = alpaca_conversation(history, message)
    if head_per_turn and history:
        head = alpaca_conversation([], "").split("### Instruction:")[0]
        out = out.replace("### Instruction:", head + "### Instruction:")[len(head):]
    if compact:
        out = out.replace("\n\n###", "\n###")
    return out


CORRECT = {
    "01.causal_mask": lambda T: torch.ones(T, T, dtype=torch.bool).tril(),
    "01.sliding_window_mask": sliding_window_transformers,
    "01.packed_mask": packed,
    "02.verbalize": verbalize,
    "02.label_scores": label_scores("sum"),
    "02.calibrate": lambda p, cf: __import__("course_utils.prompting").prompting.contextual_calibration(p, cf),
    "03.format_demos": format_demos,
    "03.knn_indices": knn,
    "03.knn_prompt": knn_prompt(),
    "05.adam_bytes": adam_bytes,
    "04.lora_params": lambda shapes, r: sum(r * (i + o) for o, i in shapes),
    "05.micro_batch_losses": lambda losses: [t.sum() / sum(x.numel() for x in losses) for t in losses],
    "05.zero_bytes": lambda n, g, stage: n * (2 / (g if stage >= 3 else 1) + 2 / (g if stage >= 2 else 1)
                                              + 12 / (g if stage >= 1 else 1)),
    "04.lora_layer": lora_class(),
    "04.effective_rank": lambda s, e: __import__("course_utils.lora").lora.effective_rank(s, e),
    "06.rotate_half": lambda x: __import__("course_utils.positions").positions.rotate_half(x),
    "06.apply_rope": rope,
    "06.alibi_slopes": lambda n: __import__("course_utils.positions").positions.alibi_slopes(n),
    "07.alpaca_prompt": alpaca,
    "07.distinct_n": distinct,
    "07.rouge_filter": rouge_filter(),
    "08.sft_labels": lambda p, r, eos: (p + r + [eos], [-100] * len(p) + r + [eos]),
    "08.l2sp_penalty": l2sp,
    "08.hard_weights": hard_weights,
    "00.weight_gib": weight_gib,
    "00.param_count": param_count,
    "00.profile_name": profile_name,
    "09.shift_kind": lambda r: __import__("course_utils.alignment").alignment.shift_kind(r),
    "09.pass_at_k": lambda n, c, k: __import__("course_utils.alignment").alignment.pass_at_k(n, c, k),
    "09.repetition_penalty": repetition_penalty,
    "10.effective_data": lambda u, e: __import__("course_utils.data_scaling").data_scaling.effective_data(u, e),
    "10.slick_category": lambda pg, ps: __import__("course_utils.slick").slick.categorize(pg, ps),
    "10.sample_probability": lambda lg, a, st, t: __import__("course_utils.slick").slick.sample_probability(
        lg, a, st, t),
    "11.merge_lora": lambda W, A, B, alpha, r: W + B @ A * alpha / r,
    "11.keep_instruction": keep_instruction,
    "11.alpaca_conversation": conversation,
}

# (exercise, a wrong answer, a fragment of the hint it must get)
WRONG = [
    ("01.causal_mask", lambda T: torch.ones(T, T, dtype=torch.bool), "peeking at the future"),
    ("01.causal_mask", lambda T: torch.ones(T, T).tril(), "boolean"),
    ("01.causal_mask", lambda T: torch.ones(T, T, dtype=torch.bool).triu(), "transposed"),
    ("01.sliding_window_mask",
     lambda T, w: torch.ones(T, T, dtype=torch.bool).tril() & (torch.arange(T)[:, None] - torch.arange(T) <= w),
     "one too wide"),
    ("01.packed_mask", lambda lengths: torch.ones(sum(lengths), sum(lengths), dtype=torch.bool).tril(), "boundary"),
    ("02.verbalize", lambda label_words, z: z, "returned a word"),
    ("02.label_scores", label_scores("mean"), "'mean' aggregation"),
    ("02.label_scores", lambda lp, answers, lw: torch.stack(
        [lp[:, [answers.index(w) for w in ws]].sum(1) for ws in lw.values()], 1), "multiplies probabilities"),
    ("02.calibrate", lambda p, cf: p / cf, "renormalise"),
    ("02.calibrate", lambda p, cf: (p * cf) / (p * cf).sum(-1, keepdim=True), "divide"),
    ("03.format_demos", lambda demos, sep: format_demos(demos, sep, drop_last_sep=True), "the last one too"),
    ("03.knn_indices", lambda p, q, k: knn(p, q, k, cosine=False), "dot product"),
    ("03.knn_indices", lambda p, q, k: [row[::-1] for row in knn(p, q, k)], "reverse order"),
    ("03.knn_prompt", knn_prompt(nearest_last=False), "nearest one comes first"),
    ("05.adam_bytes", lambda n: 12 * n, "12 bytes per parameter"),
    ("05.adam_bytes", lambda n: adam_bytes(n) / 2**30, "GiB"),
    ("04.lora_params", lambda shapes, r: sum(r * i for o, i in shapes), "only one of the two"),
    ("04.lora_params", lambda shapes, r: sum(o * i for o, i in shapes), "the full matrix"),
    ("05.micro_batch_losses", lambda losses: [t.mean() / len(losses) for t in losses], "weighs a token"),
    ("05.micro_batch_losses", lambda losses: [t.mean() for t in losses], "sum of the micro-batch means"),
    ("05.zero_bytes", lambda n, g, stage: 16 * n / (g if stage else 1), "shards"),
    ("04.lora_layer", lora_class("random B"), "is B zero?"),
    ("04.lora_layer", lora_class("no scaling"), "not scaled"),
    ("04.effective_rank", effective_rank_unsquared, "s ** 2"),
    ("06.rotate_half", rotate_interleaved, "neighbours (2i, 2i+1)"),
    ("06.rotate_half", lambda x: torch.cat((x.chunk(2, -1)[1], -x.chunk(2, -1)[0]), -1), "signs are swapped"),
    ("06.apply_rope", lambda x, base: rope(x, 10000.0), "`base` argument"),
    ("06.apply_rope", lambda x, base: rope(x, base).roll(1, dims=-2), "position 0"),
    ("06.alibi_slopes", lambda n: [2 ** (-8 * (h + 1) / n) for h in range(n)], "not a power of two"),
    ("07.alpaca_prompt", lambda i, inp="": alpaca(i, inp or "x").replace("### Input:\nx", "### Input:\n"),
     "pick the other template"),
    ("07.alpaca_prompt", lambda i, inp="": alpaca(i, inp).replace("Response:\n", "Response:"), "whitespace"),
    ("07.distinct_n", distinct_per_text, "averages the texts"),
    ("07.rouge_filter", rouge_filter(chained=False), "joins the pool"),
    ("08.sft_labels", lambda p, r, eos: (p + r, [-100] * len(p) + r), "then EOS"),
    ("08.sft_labels", lambda p, r, eos: (p + r + [eos], p + r + [eos]), "-100"),
    ("08.l2sp_penalty", lambda m, a, alpha: l2sp(m, a, alpha, half=False), "alpha / 2"),
    ("08.l2sp_penalty", lambda m, a, alpha: l2sp(m, a, alpha).detach(), "differentiable"),
    ("08.hard_weights", lambda losses, f, b: hard_weights(losses, f, b, rescale=False), "mean 1"),
    ("08.hard_weights", lambda losses, f, b: hard_weights(-losses, f, b), "easy examples"),
    ("00.weight_gib", lambda n, d: weight_gib(n, d, unit=1e9), "GB (10 ** 9 bytes)"),
    ("00.weight_gib", lambda n, d: weight_gib(n, d, bits=True), "counts bits"),
    ("00.weight_gib", lambda n, d: n * 2 / 2**30, "element_size()"),
    ("00.param_count", lambda c: param_count(c, tied=not c["tie_embeddings"]), "tied model shares"),
    ("00.param_count", lambda c: param_count(c, gqa=False), "grouped-query attention"),
    ("00.param_count", lambda c: param_count(c) - c["num_layers"] * 2 * c["hidden_size"] - c["hidden_size"],
     "RMSNorm weights are missing"),
    ("00.profile_name", lambda n, e, c: profile_name(n, e, c, env_wins=True), "argument wins"),
    ("00.profile_name", lambda n, e, c: profile_name(n, e, c, normalise=False, strict=False), "case- and space"),
    ("00.profile_name", lambda n, e, c: profile_name(n, e, c, strict=False), "raise ValueError"),
    ("00.profile_name", lambda n, e, c: profile_name(n, e, not c), "'gpu' when CUDA"),
    ("09.shift_kind", lambda r: "unshifted" if r == 1 else "marginal" if r <= 2 else "shifted", "top 3"),
    ("09.shift_kind", lambda r: "unshifted" if r <= 1 else "marginal" if r <= 4 else "shifted", "beyond"),
    ("09.shift_kind", lambda r: r, "return one of"),
    ("09.pass_at_k", lambda n, c, k: 1 - (1 - c / n) ** k, "without replacement"),
    ("09.pass_at_k", lambda n, c, k: c / n, "one minus the chance"),
    ("09.repetition_penalty", lambda i, s, p: repetition_penalty(i, s, p, sign_aware=False), "negative logit"),
    ("09.repetition_penalty", lambda i, s, p: repetition_penalty(i, s, p, per_occurrence=True), "penalised once"),
    ("09.repetition_penalty", lambda i, s, p: s / p, "not in input_ids"),
    ("10.effective_data", lambda u, e: u * e, "counts every repeated token"),
    ("10.effective_data", lambda u, e: u * 15.4 * (1 - math.exp(-(e - 1) / 15.4)), "first epoch"),
    ("10.effective_data", lambda u, e: u + u * 15.4 * (1 - math.exp(-e / 15.4)), "R = E - 1"),
    ("10.slick_category", lambda pg, ps: "HighlyKnown" if pg == 1 else "WeaklyKnown" if ps > 0 else "Unknown",
     "MaybeKnown"),
    ("10.slick_category", lambda pg, ps: "HighlyKnown" if pg > 0.5 else "MaybeKnown" if pg > 0 else
     "WeaklyKnown" if ps > 0 else "Unknown", "MaybeKnown"),
    ("10.slick_category", lambda pg, ps: "HighlyKnown" if pg == 1 else "MaybeKnown" if pg > 0 else
     "WeaklyKnown" if ps > 0.1 else "Unknown", "one right sample"),
    ("10.slick_category", lambda pg, ps: "known", "return one of"),
    ("10.sample_probability", lambda lg, a, st, t: torch.softmax(lg / t, -1)[torch.arange(len(a)), a].prod(),
     "also *stop*"),
    ("10.sample_probability", lambda lg, a, st, t: (lambda p: p[torch.arange(len(a)), a].prod() * p[-1][st].sum())(
        torch.softmax(lg, -1)), "temperature"),
    ("10.sample_probability", lambda lg, a, st, t: torch.log_softmax(lg / t, -1)[torch.arange(len(a)), a].sum(),
     "[0, 1]"),
    ("11.merge_lora", lambda W, A, B, alpha, r: W + B @ A, "not scaled"),
    ("11.merge_lora", lambda W, A, B, alpha, r: W + B @ A * r / alpha, "upside down"),
    ("11.merge_lora", lambda W, A, B, alpha, r: B @ A * alpha / r, "only the update"),
    ("11.keep_instruction", lambda t: keep_instruction(t, whole_words=False), "whole words"),
    ("11.keep_instruction", lambda t: len(t.split()) > 3, "should be rejected"),
    ("11.alpaca_conversation", lambda h, m: conversation(h, m, head_per_turn=True), "not once per turn"),
    ("11.alpaca_conversation", lambda h, m: conversation(h, m, compact=True), "whitespace differs"),
    ("11.alpaca_conversation", lambda h, m: conversation(h, m) + "\n", "ends with"),
]


def blank(*args, **kwargs):
    # TODO (the learner's blank)
    raise NotImplementedError


def test_every_exercise_has_a_correct_and_a_wrong_answer_here():
    assert set(CORRECT) == set(checks.all_exercises())
    assert {ex for ex, _, _ in WRONG} == set(checks.all_exercises())


@pytest.mark.parametrize("exercise_id", sorted(CORRECT))
def test_correct_answer_passes_and_is_recorded(exercise_id, capsys, progress_path):
    assert checks.check(exercise_id, CORRECT[exercise_id]) is True
    assert "✓" in capsys.readouterr().out
    assert exercise_id in checks.load_progress()


@pytest.mark.parametrize("exercise_id, answer, hint", WRONG, ids=[f"{e}-{h[:20]}" for e, _, h in WRONG])
def test_wrong_answer_fails_with_its_hint(exercise_id, answer, hint, capsys):
    assert checks.check(exercise_id, answer) is False
    out = capsys.readouterr().out
    assert out.startswith(f"✗ {exercise_id} not yet") and hint in out, out
    assert exercise_id not in checks.load_progress()


@pytest.mark.parametrize("exercise_id", sorted(CORRECT))
def test_blank_and_none_fail_without_raising(exercise_id, capsys):
    assert checks.check(exercise_id, blank) is False
    assert "still the blank" in capsys.readouterr().out
    assert checks.check(exercise_id, lambda *a, **k: None) is False
    assert "not yet" in capsys.readouterr().out
    assert checks.load_progress() == {}


def test_public_checkers_and_crashing_answers():
    assert check_causal_mask(CORRECT["01.causal_mask"]) is True
    assert check_causal_mask(lambda T: 1 / 0) is False  # a crash is a hint, not an exception
    assert check_causal_mask("not a function") is False
    with pytest.raises(KeyError, match="known"):
        checks.check("01.no_such_exercise", blank)
    with pytest.raises(KeyError, match="99.no_chapter"):
        checks.check("99.no_chapter", blank)


def test_exercise_modules_load_lazily():
    """Importing the registry imports no chapter's checkers; checking one exercise imports its chapter only."""
    import subprocess
    import sys

    code = ("import sys; from course_utils.course import checks; "
            "print(sorted(m for m in sys.modules if '.exercises.ch' in m)); "
            "checks.verdict('06.rotate_half', None); "
            "print(sorted(m for m in sys.modules if '.exercises.ch' in m))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]" and out[1] == "['course_utils.course.exercises.ch06']", out


def test_every_chapter_has_the_three_tiers():
    chapters = {ex.chapter for ex in checks.all_exercises().values()}
    for ch in chapters:
        tiers = sorted(ex.tier for ex in checks.all_exercises().values() if ex.chapter == ch)
        assert tiers == sorted(checks.TIERS), ch


def test_progress_file_table_widget_and_cli(progress_path, capsys):
    assert checks.progress_file() == progress_path
    assert checks.load_progress() == {}
    checks.record_pass("04.lora_params")
    first = checks.load_progress()["04.lora_params"]
    checks.record_pass("04.lora_params")  # the first pass is kept
    assert checks.load_progress() == {"04.lora_params": first}
    rows = checks.progress_rows("04")
    assert [r["id"] for r in rows] == ["04.lora_params", "04.lora_layer", "04.effective_rank"]
    assert [r["passed"] for r in rows] == [True, False, False]
    assert checks.progress_rows("04_peft") == rows
    table = checks.progress_table()
    assert f"1 of {len(checks.all_exercises())} exercises passed" in table
    assert "✓ passed" in table and "· not yet" in table
    widget = checks.progress_widget("04")
    assert "04.lora_layer" in widget.value and "✅ passed" in widget.value

    from course_utils.__main__ import main

    assert main(["progress", "--chapter", "4"]) == 0
    out = capsys.readouterr().out
    assert "04.lora_params" in out and "01.causal_mask" not in out and "1 of 3 exercises passed" in out


def test_unreadable_or_unwritable_progress_never_raises(progress_path, monkeypatch, tmp_path, capsys):
    progress_path.write_text("{not json")
    assert checks.load_progress() == {}
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv(checks.PROGRESS_ENV, str(blocker / "progress.json"))  # its parent is a file
    assert checks.check("05.adam_bytes", CORRECT["05.adam_bytes"]) is True
    assert "progress not saved" in capsys.readouterr().out


def test_default_progress_file_is_in_the_cache(monkeypatch):
    monkeypatch.delenv(checks.PROGRESS_ENV)
    assert checks.progress_file().parts[-3:] == (".cache", "sft-course", "progress.json")
    assert math.isclose(adam_bytes(1), 16)
