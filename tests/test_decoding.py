"""Repetition metrics against hand-computed values, the loop detector, the rule-based adapter inside generate,
and the chapter's claims about the default model (self-reinforcement; penalties cut repetition)."""

import math

import pytest
import torch
from transformers import LogitsProcessorList, StoppingCriteriaList

from course_utils import decoding as dc


def test_words_and_ngrams():
    assert dc.words("I'm a city-builder.") == ["i", "'", "m", "a", "city", "-", "builder", "."]
    assert dc.ngrams("a b c d", 2) == [("a", "b"), ("b", "c"), ("c", "d")]
    assert dc.ngrams([1, 2, 3], 3) == [(1, 2, 3)]
    assert dc.ngrams([1, 2], 3) == []
    with pytest.raises(ValueError, match="n >= 1"):
        dc.ngrams("a b", 0)


def test_distinct_n_by_hand():
    # "a b a b" has bigrams ab, ba, ab: 2 unique of 3; "c d" adds cd: 3 unique of 4 over the corpus.
    assert dc.distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert dc.distinct_n(["a b a b", "c d"], 2) == pytest.approx(3 / 4)
    assert dc.distinct_n(["a b a b"], 1) == pytest.approx(2 / 4)
    assert dc.distinct_n([[1, 2, 3]], 1) == 1.0
    assert dc.distinct_n(["a"], 2) == 0.0  # no bigram at all
    with pytest.raises(ValueError, match="list of texts"):
        dc.distinct_n("a b a b", 2)


def test_seq_rep_and_rep_l_by_hand():
    # 4-grams of "a b c a b c a": abca bcab cabc abca -> 3 unique of 4 -> seq-rep 1/4
    assert dc.seq_rep_n("a b c a b c a", 4) == pytest.approx(0.25)
    assert dc.seq_rep_n("a b c d e", 4) == 0.0
    assert dc.seq_rep_n([7] * 10, 4) == pytest.approx(1 - 1 / 7)
    assert dc.repetition_rate(["a b c a b c a", "a b c d e"], 4) == pytest.approx(0.125)
    with pytest.raises(ValueError, match="non-empty"):
        dc.repetition_rate([])
    # rep/l: of the 4 tokens after the first in "a b a c a", positions 2 and 4 repeat an earlier one.
    assert dc.rep_l("a b a c a", 128) == pytest.approx(2 / 4)
    assert dc.rep_l("a b a c a", 1) == 0.0  # a window of one token sees only the previous one
    with pytest.raises(ValueError, match="window"):
        dc.rep_l("a b", 0)


def test_find_loop():
    loop = dc.find_loop("x y a b c a b c a b c")
    assert loop == dc.Loop(start=2, period=3, repeats=3.0) and loop.length == 9
    assert dc.find_loop([5] * 6) == dc.Loop(start=0, period=1, repeats=6.0)  # period 1, not 2 or 3
    assert dc.find_loop("so . . . then") is None  # an ellipsis is shorter than min_length
    assert dc.find_loop("so . . . then", min_length=3) == dc.Loop(start=1, period=1, repeats=3.0)
    assert dc.find_loop("a b c a b c") is None  # only twice
    assert dc.find_loop("a b c a b c", min_repeats=2).period == 3
    assert dc.find_loop("a b a b a b a", max_period=1) is None
    assert dc.loop_rate(["a a a a a a", "a b c"]) == 0.5
    with pytest.raises(ValueError, match="min_repeats"):
        dc.find_loop("a a", min_repeats=1)
    with pytest.raises(ValueError, match="max_period"):
        dc.find_loop("a a", max_period=0)


def test_loop_stopping_criteria():
    stop = dc.LoopStoppingCriteria(prompt_length=2, min_repeats=3, max_period=4)
    ids = torch.tensor([[9, 9, 1, 2, 1, 2, 1, 2], [9, 9, 1, 2, 3, 4, 5, 6]])
    assert stop(ids, None).tolist() == [True, False]


def test_remove_repeated_sentences_and_top_repeated():
    text = "I am here. I am here. You are there! I AM here."
    assert dc.remove_repeated_sentences(text) == "I am here. You are there!"
    assert dc.top_repeated(["a b a b a b"], n=2, k=2) == [("a b", 3), ("b a", 2)]


def test_text_stats():
    s = dc.text_stats(["a b a b a b a b", "c d e f"], finished=[False, True])  # the first loops: 8 words
    assert s["EOS rate"] == 0.5 and s["words"] == 6 and s["loop rate"] == 0.5
    assert s["seq-rep-4"] == pytest.approx((1 - 2 / 5) / 2)


def test_product_of_experts_is_a_logit_bias():
    torch.manual_seed(0)
    base, rules = torch.randn(3, 11), torch.randn(3, 11)
    expected = (base + rules).log_softmax(-1)
    assert torch.allclose(dc.product_of_experts(base, rules), expected, atol=1e-6)


class _Tok:
    """A whitespace tokenizer over a tiny vocabulary (what resolve_token_bias needs)."""

    eos_token_id = 0
    vocab = {"<eos>": 0, "I": 1, " I": 2, "###": 3, "yes": 4}

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [self.vocab[text]] if text in self.vocab else [5, 6]}


def test_resolve_token_bias_and_errors():
    assert dc.resolve_token_bias(_Tok(), {"I": -5, "###": 2}) == {1: -5.0, 2: -5.0, 3: 2.0}
    with pytest.raises(ValueError, match="single token"):
        dc.resolve_token_bias(_Tok(), {"multi word": 1})
    with pytest.raises(ValueError, match="ramp"):
        dc.RuleBasedAdapter(_Tok(), 0, ramp=0)


def test_rule_scores_by_hand():
    rules = dc.RuleBasedAdapter(_Tok(), prompt_length=2, eos_boost=8.0, ramp=4, repeat_penalty=0.5,
                                token_bias={"###": -3})
    ids = torch.tensor([[3, 3, 4, 4]])  # the prompt's "###" tokens are not counted as repeats
    s = rules.rule_scores(ids, vocab_size=7)[0]
    assert s[0] == pytest.approx(8.0 * 2 / 4)  # two new tokens of a ramp of four
    assert s[4] == pytest.approx(-0.5 * 2)  # "yes" generated twice
    assert s[3] == pytest.approx(-3.0)  # the fixed bias only
    assert s[5] == 0
    scores = torch.zeros(1, 7)
    assert torch.equal(rules(ids, scores), s[None])


def test_adapter_inside_generate(tiny):
    """A LogitsProcessor in generate: a huge EOS boost ends every row at once; a huge repeat penalty makes the
    tiny model never reuse a token."""
    ids = torch.tensor([[5, 6, 7, 8]])
    tok = type("T", (), {"eos_token_id": 2})()
    stop = dc.RuleBasedAdapter(tok, prompt_length=4, eos_boost=1e4, ramp=1, repeat_penalty=0)
    out = tiny.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=0,
                        logits_processor=LogitsProcessorList([stop]), eos_token_id=2)
    new = out[0, 4:].tolist()
    assert len(new) == 2 and new[-1] == 2  # no boost before the first new token; the whole boost after it
    fresh = dc.RuleBasedAdapter(tok, prompt_length=4, eos_boost=0, repeat_penalty=1e4)
    out = tiny.generate(ids, max_new_tokens=20, do_sample=False, pad_token_id=0, eos_token_id=None,
                        logits_processor=LogitsProcessorList([fresh]))
    new = out[0, 4:].tolist()
    assert len(new) == 20 and len(set(new)) == 20
    plain = tiny.generate(ids, max_new_tokens=20, do_sample=False, pad_token_id=0, eos_token_id=None)[0, 4:].tolist()
    assert len(set(plain)) < 20  # a random tiny model repeats under greedy decoding


def test_loop_stopping_inside_generate(tiny):
    """A processor that forces the loop 10 11 12 10 11 12 ...: the criterion stops the row after three rounds."""

    def force_loop(input_ids, scores):
        forced = torch.full_like(scores, -1e9)
        forced[:, 10 + (input_ids.shape[1] - 4) % 3] = 0
        return forced

    ids = torch.tensor([[5, 6, 7, 8]])
    crit = StoppingCriteriaList([dc.LoopStoppingCriteria(prompt_length=4, min_repeats=3, max_period=8)])
    cut = tiny.generate(ids, max_new_tokens=60, do_sample=False, pad_token_id=0, eos_token_id=None,
                        logits_processor=LogitsProcessorList([force_loop]), stopping_criteria=crit)[0, 4:].tolist()
    assert cut == [10, 11, 12] * 3


def test_continuation_perplexity_errors(tiny):
    with pytest.raises(ValueError, match="prompts for"):
        dc.continuation_perplexity(tiny, None, ["a"], [])


class _WordTok:
    """Token i is the word "w<i>" (pad 0, EOS 2): a text's words are its tokens, so n-grams of words are n-grams
    of generated ids."""

    pad_token_id, eos_token_id, padding_side = 0, 2, "right"

    def __call__(self, texts, return_tensors=None, padding=False, add_special_tokens=True):
        from transformers import BatchEncoding

        rows = [[int(w[1:]) for w in t.split()] for t in ([texts] if isinstance(texts, str) else texts)]
        if return_tensors is None:
            return {"input_ids": rows[0] if isinstance(texts, str) else rows}
        width = max(map(len, rows))

        def pad(row):
            fill = [0] * (width - len(row))
            return fill + row if self.padding_side == "left" else row + fill

        return BatchEncoding({"input_ids": torch.tensor([pad(r) for r in rows]),
                              "attention_mask": torch.tensor([pad([1] * len(r)) for r in rows])})

    def batch_decode(self, rows, skip_special_tokens=True):
        return [" ".join(f"w{i}" for i in r.tolist() if not (skip_special_tokens and i in (0, 2))) for r in rows]


def test_sweep_applies_the_no_repeat_ban(tiny):
    """The chapter's no-repeat settings reach generate: greedy decoding of the tiny model repeats 3-grams, the
    no-repeat 3-gram setting writes none, the 5-gram one no repeated 5-gram (on the same prompts)."""
    names = ("greedy", "no-repeat 3-gram", "no-repeat 5-gram")
    settings = [s for s in dc.DECODING_SETTINGS if s.name in names]
    assert [s.name for s in settings] == list(names)
    rows = dc.decoding_sweep(tiny, _WordTok(), ["w5 w6 w7 w8", "w9 w10"], settings, max_new_tokens=40, chat=False,
                             progress=False)
    greedy, ban3, ban5 = ({r["setting"]: r["texts"] for r in rows}[n] for n in names)
    assert min(len(t.split()) for t in greedy + ban3 + ban5) > 30
    assert all(dc.seq_rep_n(t, 3) > 0 for t in greedy)  # without a ban the tiny model repeats
    assert all(dc.seq_rep_n(t, 3) == 0 for t in ban3), ban3
    assert all(dc.seq_rep_n(t, 5) == 0 for t in ban5) and any(dc.seq_rep_n(t, 3) > 0 for t in ban5)


def test_decoding_settings_are_generate_kwargs():
    names = [s.name for s in dc.DECODING_SETTINGS]
    assert names[0] == "greedy" and len(set(names)) == len(names)
    for s in dc.DECODING_SETTINGS:  # sampling settings switch off generate's default top-k of 50
        assert not s.kwargs.get("do_sample") or s.kwargs.get("top_k") == 0
    with pytest.raises(ValueError, match="at least one"):
        dc.decoding_sweep(None, None, [], dc.DECODING_SETTINGS)


@pytest.mark.model
def test_self_reinforcement_real_model(real_model):
    """The chapter's claim: the more often a sentence is already in the context, the likelier it is repeated."""
    model, tok = real_model
    p = dc.self_reinforcement(model, tok, "The cat sat quietly on the old red mat.", repeats=6)
    assert p[0] < 0.3 and p[-1] > 0.8 and p[-1] > p[1] > p[0]
    with pytest.raises(ValueError, match="repeats"):
        dc.self_reinforcement(model, tok, "x", repeats=1)


@pytest.mark.model
def test_sweep_penalties_cut_repetition_real_model(real_model):
    """The chapter's claim at the scale where it holds: greedy decoding of the default model loops on long
    answers, and a no-repeat 3-gram ban drives seq-rep-4 to zero while keeping the text scoreable."""
    model, tok = real_model
    prompts = ["Describe your favourite city.", "Write a poem about the sea."]
    settings = [dc.DECODING_SETTINGS[0], dc.DecodingSetting("no-repeat 3-gram", {"no_repeat_ngram_size": 3})]
    rows = dc.decoding_sweep(model, tok, prompts, settings, max_new_tokens=96, progress=False)
    greedy, banned = rows
    assert greedy["seq-rep-4"] > 0.2 and greedy["loop rate"] > 0
    assert banned["seq-rep-4"] < greedy["seq-rep-4"] / 2
    assert math.isfinite(banned["perplexity"]) and banned["perplexity"] > greedy["perplexity"]
    assert dc.decoding_sweep(model, tok, prompts, settings[:1], max_new_tokens=96, progress=False)[0]["texts"] \
        == greedy["texts"]  # repeatable
