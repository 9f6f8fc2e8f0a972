"""Bad inputs to the scoring, position and decoding modules are refused where they are made, with a message that
names the value and the fix (prompting, icl, evaluation, positions, extrapolation, long_context, tinygpt, masks,
rouge, decoding, latency)."""

import functools
import math
import random

import pytest
import torch
from refusals import Case, check_refused, params

from course_utils import decoding as D
from course_utils import evaluation as ev
from course_utils import extrapolation as X
from course_utils import icl
from course_utils import latency as L
from course_utils import long_context as LC
from course_utils import masks as M
from course_utils import positions as P
from course_utils import prompting as pr
from course_utils import rouge as R
from course_utils import tinygpt as TG
from course_utils.data import Example

NAN, INF = math.nan, math.inf
VERB = {"positive": ["great"], "neutral": ["okay"], "negative": ["terrible"]}
POOL = [Example(f"text {i}", ("positive", "negative")[i % 2]) for i in range(4)]
IDS = torch.arange(40) % 7  # a token stream for the TinyGPT helpers
ROWS = [{"model": "original", "facts": 0.5}, {"model": "tuned", "facts": 0.25}]


class CharTok:
    """One id per character, so the answer search runs on tiny_llama."""

    pad_token_id, bos_token_id, eos_token_id = 0, 1, 2

    def __call__(self, text, add_special_tokens=True):
        ids = [3 + (ord(c) % 250) for c in text]
        return type("Enc", (), {"input_ids": ([self.bos_token_id] if add_special_tokens else []) + ids})()


class WordTok:
    """A tiny vocabulary, what resolve_token_bias needs."""

    eos_token_id = 0
    vocab = {"<eos>": 0, "I": 1, " I": 2}

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [self.vocab[text]] if text in self.vocab else [5, 6]}


@functools.cache
def _tiny():
    from course_utils.models import tiny_llama

    return tiny_llama()


@functools.cache
def _gpt(position: str = "rope") -> TG.TinyGPT:
    return TG.TinyGPT(TG.GPTConfig(block_size=16, n_layer=1, n_head=2, n_embd=16, position=position)).eval()


def _clf() -> pr.PromptClassifier:
    return pr.PromptClassifier(_tiny(), CharTok(), pr.SEED_TEMPLATE, VERB)


def _setup(**kw) -> X.ExtrapolationSetup:
    return X.ExtrapolationSetup(**{**dict(seq_len=8, n_layer=1, n_head=2, n_embd=16, steps=2, batch_size=2, lr=1e-3),
                                   **kw})


CASES = [
    # ---- prompting: templates, verbalizers, answer search, calibration, accuracy -----------------------------------
    Case("template-none", lambda: pr.Template(None), ["None", "[X] I feel [Z]"]),
    Case("template-int", lambda: pr.Template(42), ["42", "[X] I feel [Z]"]),
    Case("template-fill-none", lambda: pr.Template("[X] I feel [Z].").fill(None), ["None", "pass one text"]),
    Case("verbalizer-from-str", lambda: pr.Verbalizer("positive: great"), ["'positive: great'", "from_string"]),
    Case("verbalizer-list", lambda: pr.Verbalizer(["great"]), ["list", "Verbalizer({"]),
    Case("verbalizer-empty-label", lambda: pr.Verbalizer({"": ["great"]}), ["''", "'positive'"]),
    Case("verbalizer-word-none", lambda: pr.Verbalizer({"positive": [None]}), ["None", "['great', 'good']"]),
    Case("accuracy-one-label-for-two-rows", lambda: pr.accuracy(torch.zeros(2, 3), ["positive"], pr.Verbalizer(VERB)),
         ["1 items", "has 2", "one gold label per text"]),
    Case("accuracy-no-labels", lambda: pr.accuracy(torch.zeros(0, 3), [], pr.Verbalizer(VERB)),
         ["labels is empty", "gold label"]),
    Case("accuracy-wrong-label-count", lambda: pr.accuracy(torch.zeros(2, 2), ["positive", "neutral"],
                                                                pr.Verbalizer(VERB)),
         ["(2, 2)", "(2, 3)", "same verbalizer"]),
    Case("accuracy-labels-str", lambda: pr.accuracy(torch.zeros(1, 3), "positive", pr.Verbalizer(VERB)),
         ["'positive'", "gold label"]),
    Case("accuracy-1d-scores", lambda: pr.accuracy(torch.zeros(3), ["positive"], pr.Verbalizer(VERB)),
         ["(3,)", "clf.scores"]),
    Case("aggregate-wrong-columns", lambda: pr.Verbalizer(VERB).aggregate(torch.zeros(2, 4)),
         ["[N, 3]", "(2, 4)", "answer_search"]),
    Case("calibration-wrong-length", lambda: pr.contextual_calibration(torch.full((1, 3), 1 / 3),
                                                                       torch.tensor([0.5, 0.5])),
         ["(2,)", "same verbalizer"]),
    Case("calibration-zero-p_cf", lambda: pr.contextual_calibration(torch.full((1, 3), 1 / 3),
                                                                    torch.tensor([0.5, 0.5, 0.0])),
         ["0.0", "content-free"]),
    Case("calibration-log-probs", lambda: pr.contextual_calibration(torch.full((1, 3), 1 / 3),
                                                                    torch.full((3,), 1 / 3).log()),
         ["-1.09", "not log-probabilities"]),
    Case("answer-search-no-answers", lambda: pr.answer_search(_tiny(), CharTok(), pr.Template("[X] I feel [Z]."),
                                                              ["a"], []),
         ["answers is empty", "answer words"]),
    Case("answer-search-empty-answer", lambda: pr.answer_search(_tiny(), CharTok(), pr.Template("Q: [X] A:[Z]"),
                                                                ["a"], ["great", ""]),
         ["''", "at least one word"]),
    Case("answer-search-texts-str", lambda: pr.answer_search(_tiny(), CharTok(), pr.Template("[X] I feel [Z]."),
                                                             "I missed the bus", ["great"]),
         ["'I missed the bus'", "list of input texts"]),
    Case("answer-search-batch-zero", lambda: pr.answer_search(_tiny(), CharTok(), pr.Template("[X] I feel [Z]."),
                                                              ["a"], ["great"], batch_size=0),
         ["0", "batch_size=16"]),
    Case("answer-search-batch-bool", lambda: pr.answer_search(_tiny(), CharTok(), pr.Template("[X] I feel [Z]."),
                                                              ["a"], ["great"], batch_size=True),
         ["True", "batch_size=16"]),
    Case("continuation-without-tokens", lambda: pr.continuation_logprobs(_tiny(), CharTok(), ["ctx"], [[""]]),
         ["''", "at least one token"]),
    Case("continuations-fewer-than-contexts", lambda: pr.continuation_logprobs(_tiny(), CharTok(), ["a", "b"],
                                                                               [[" x"]]),
         ["2 items", "has 1", "one to one"]),
    Case("continuations-ragged", lambda: pr.continuation_logprobs(_tiny(), CharTok(), ["a", "b"],
                                                                  [[" x", " y"], [" x"]]),
         ["[2, 1]", "same answer list"]),
    Case("classifier-unknown-aggregate", lambda: pr.PromptClassifier(None, None, pr.SEED_TEMPLATE, VERB,
                                                                     aggregate="median"),
         ["'median'", "'sum'"]),
    Case("classifier-batch-zero", lambda: pr.PromptClassifier(None, None, pr.SEED_TEMPLATE, VERB, batch_size=0),
         ["0", "batch_size=16"]),
    Case("classifier-verbalizer-none", lambda: pr.PromptClassifier(None, None, pr.SEED_TEMPLATE, None),
         ["NoneType", "{'positive'"]),
    Case("classifier-prefixes-short", lambda: _clf().scores(["a", "b"], prefixes=["demo "]),
         ["1 items", "has 2", "one prefix per text"]),
    Case("classifier-texts-str", lambda: _clf().predict("great movie"), ["'great movie'", "texts to classify"]),
    Case("classifier-no-texts", lambda: _clf().scores([]), ["texts is empty", "texts to classify"]),
    Case("classifier-accuracy-mismatch", lambda: _clf().accuracy(["a", "b"], ["positive"]),
         ["1 items", "has 2", "one gold label per text"]),
    Case("ensemble-no-classifiers", lambda: pr.ensemble_scores([], ["a"]),
         ["classifiers is empty", "PromptClassifier"]),
    Case("label-search-no-candidates", lambda: pr.search_label_words(_clf(), ["a"], ["positive"], {"positive": []}),
         ["'positive'", "at least one"]),
    Case("label-search-uncovered-label", lambda: pr.search_label_words(_clf(), ["a"], ["neutral"],
                                                                       {"positive": ["great"], "negative": ["bad"]}),
         ["'neutral'", "every label"]),
    Case("prompt-pairs-examples-str", lambda: pr.prompt_pairs(pr.SEED_TEMPLATE, VERB, "a text"),
         ["'a text'", "Example(text, label)"]),
    # ---- icl: selection, orders, label corruption ------------------------------------------------------------------
    Case("demonstration-unknown-label", lambda: icl.demonstration(pr.Template(pr.SEED_TEMPLATE), pr.Verbalizer(VERB),
                                                                  Example("a", "mixed")),
         ["'mixed'", "'positive'"]),
    Case("select-random-k-bool", lambda: icl.select_random(POOL, True), ["True", "k=4"]),
    Case("select-random-k-float", lambda: icl.select_random(POOL, 2.5), ["2.5", "k=4"]),
    Case("select-balanced-pool-str", lambda: icl.select_balanced("abc", 1), ["'abc'", "Example(text, label)"]),
    Case("select-knn-rows-vs-pool", lambda: icl.select_knn(POOL, torch.randn(3, 8), torch.randn(1, 8), 2),
         ["3 rows", "4 examples", "embed"]),
    Case("select-knn-dims", lambda: icl.select_knn(POOL, torch.randn(4, 8), torch.randn(1, 6), 2),
         ["8 dimensions", "has 6", "same encoder"]),
    Case("orderings-n-negative", lambda: icl.orderings(POOL[:3], -1), ["-1", "n=6"]),
    Case("orderings-n-zero", lambda: icl.orderings(POOL[:3], 0), ["0", "n=6"]),
    Case("corrupt-labels-empty", lambda: icl.corrupt_labels(POOL, [], 0.5), ["labels is empty", "label space"]),
    Case("corrupt-labels-str", lambda: icl.corrupt_labels(POOL, "positive", 0.5), ["'positive'", "label space"]),
    Case("corrupt-labels-nan", lambda: icl.corrupt_labels(POOL, ["positive"], NAN), ["nan", "fraction=0.5"]),
    Case("icl-accuracy-no-test", lambda: icl.icl_accuracy(_clf(), [], []), ["test is empty", "test Example"]),
    Case("embed-texts-str", lambda: icl.embed("hello", encoder=(None, None)), ["'hello'", "list of texts"]),
    Case("embed-batch-zero", lambda: icl.embed(["hello"], encoder=(None, None), batch_size=0),
         ["0", "batch_size=64"]),
    # ---- evaluation: probe data, probes, results --------------------------------------------------------------------
    Case("load-facts-limit-zero", lambda: ev.load_facts(0), ["0", "limit=None"]),
    Case("load-facts-limit-negative", lambda: ev.load_facts(-1), ["-1", "limit=None"]),
    Case("load-facts-limit-bool", lambda: ev.load_facts(True), ["True", "limit=None"]),
    Case("arithmetic-n-negative", lambda: ev.arithmetic_questions(-3), ["-3", "n=20"]),
    Case("arithmetic-digits-zero", lambda: ev.arithmetic_questions(5, digits=0), ["0", "digits=1"]),
    Case("answer-matches-reply-none", lambda: ev.answer_matches(None, "Paris"), ["None", "reply"]),
    Case("answer-matches-aliases-str", lambda: ev.answer_matches("a cat", "dog", aliases="cat"),
         ["'cat'", "['USA']"]),
    Case("final-number-none", lambda: ev.final_number(None), ["None", "reply"]),
    Case("most-shifted-k-negative", lambda: ev.most_shifted(None, torch.arange(10), torch.zeros(9), k=-1),
         ["-1", "k=10"]),
    Case("most-shifted-kl-length", lambda: ev.most_shifted(None, torch.arange(10), torch.zeros(5)),
         ["(9,)", "kl_per_position"]),
    Case("next-token-logprobs-2d", lambda: ev.next_token_logprobs(_tiny(), torch.arange(8)[None]),
         ["[1, 8]", "input_ids[0]"]),
    Case("kl-reference-not-tensor", lambda: ev.kl_per_position(_tiny(), torch.arange(8), None),
         ["NoneType", "next_token_logprobs"]),
    Case("standard-error-n-bool", lambda: ev.standard_error(0.5, True), ["True", "number of items"]),
    Case("standard-error-nan", lambda: ev.standard_error(NAN, 10), ["nan", "[0, 1]"]),
    Case("eval-sizes-zero", lambda: ev.EvalSizes(sentiment=0, facts=8, arithmetic=6, ppl_tokens=256, kl_tokens=128),
         ["sentiment", "0", "sentiment=8"]),
    Case("eval-sizes-one-kl-token", lambda: ev.EvalSizes(sentiment=8, facts=8, arithmetic=6, ppl_tokens=256,
                                                         kl_tokens=1),
         ["kl_tokens", ">= 2", "kl_tokens=256"]),
    Case("format-results-empty", lambda: ev.format_results([]), ["rows is empty", "Harness.evaluate"]),
    Case("format-results-no-model", lambda: ev.format_results([{"facts": 0.5}]), ["'model'", "Harness.evaluate"]),
    Case("plot-results-baseline", lambda: ev.plot_results(ROWS, baseline=5), ["baseline=5", "0..1"]),
    # ---- positions: ALiBi, sinusoidal, RoPE ----------------------------------------------------------------------
    Case("alibi-heads-bool", lambda: P.alibi_slopes(True), ["True", "positive integer"]),
    Case("alibi-q-len-float", lambda: P.alibi_bias(4, 2.5), ["2.5", "q_len=8"]),
    Case("sinusoidal-negative-length", lambda: P.sinusoidal_positions(-1, 8), ["-1", "n_positions=64"]),
    Case("sinusoidal-zero-length", lambda: P.sinusoidal_positions(0, 8), ["0", "n_positions=64"]),
    Case("sinusoidal-negative-dim", lambda: P.sinusoidal_positions(4, -2), ["-2", "even"]),
    Case("sinusoidal-float-dim", lambda: P.sinusoidal_positions(4, 8.0), ["8.0", "dim=128"]),
    Case("sinusoidal-nan-base", lambda: P.sinusoidal_positions(4, 8, base=NAN), ["nan", "base=10000"]),
    Case("rope-inf-base", lambda: P.rope_inv_freq(8, base=INF), ["inf", "base=10000"]),
    Case("rope-inf-scale", lambda: P.rope_inv_freq(8, scale=INF), ["inf", "scale=1.0"]),
    Case("ntk-scale-below-one", lambda: P.ntk_base(10000.0, 0.5, 64), ["0.5", "scale=4.0"]),
    Case("ntk-nan-scale", lambda: P.ntk_base(10000.0, NAN, 64), ["nan", "scale=4.0"]),
    Case("ntk-negative-base", lambda: P.ntk_base(-10.0, 2.0, 64), ["-10.0", "base=10000"]),
    Case("ntk-inf-base", lambda: P.ntk_base(INF, 2.0, 64), ["inf", "base=10000"]),
    Case("rotate-half-odd", lambda: P.rotate_half(torch.zeros(2, 3)), ["(2, 3)", "even head_dim"]),
    Case("rope-nan-positions", lambda: P.rope_cos_sin(torch.tensor([0.0, NAN]), 8), ["nan", "torch.arange"]),
    Case("rope-list-positions", lambda: P.rope_cos_sin([0, 1, 2], 8), ["list", "torch.arange"]),
    Case("apply-rope-1d", lambda: P.apply_rope(torch.zeros(8)), ["[8]", "[batch, heads, seq, head_dim]"]),
    Case("rope-parameters-inf-factor", lambda: P.rope_parameters("linear", INF, base=1e4), ["inf", "factor=4.0"]),
    Case("rope-parameters-zero-base", lambda: P.rope_parameters("linear", 2.0, base=0), ["0", "base=10000"]),
    Case("rope-parameters-negative-original", lambda: P.rope_parameters("yarn", 2.0, base=1e4,
                                                                        original_max_position_embeddings=-5),
         ["-5", "2048"]),
    # ---- extrapolation ---------------------------------------------------------------------------------------------
    Case("setup-zero-factor", lambda: _setup(factors=(0, 1)), ["0", "factors=(1, 2, 4, 8)"]),
    Case("setup-nan-lr", lambda: _setup(lr=NAN), ["nan", "lr=1e-3"]),
    Case("setup-zero-seq-len", lambda: X.ExtrapolationSetup(seq_len=0, n_layer=1, n_head=2, n_embd=16, steps=2,
                                                            batch_size=2, lr=1e-3),
         ["seq_len", "0"]),
    Case("extended-factor-below-one", lambda: X.extended(_gpt("rope"), "interpolation", 0.5), ["0.5", "factor=4"]),
    Case("extended-nan-factor", lambda: X.extended(_gpt("rope"), "extrapolation", NAN), ["nan", "factor=4"]),
    Case("length-table-empty", lambda: X.format_length_table({}, 32), ["{}", "length_table("]),
    Case("length-table-zero-seq-len", lambda: X.format_length_table({"rope": {32: 1.0}}, 0), ["0", "setup.seq_len"]),
    Case("train-variants-positions-str", lambda: X.train_variants(_setup(), IDS, positions="rope", progress=False),
         ["'rope'", "['rope', 'alibi']"]),
    Case("extension-methods-str", lambda: X.extension_experiment(_gpt("rope"), IDS, IDS, _setup(), methods="ntk",
                                                                 progress=False),
         ["'ntk'", "['ntk']"]),
    # ---- long_context ------------------------------------------------------------------------------------------------
    Case("sliding-batch-of-documents", lambda: LC.sliding_window_perplexity(_gpt("alibi"), torch.zeros(2, 20).long(),
                                                                            8),
         ["(2, 20)", "each row"]),
    Case("sliding-float-ids", lambda: LC.sliding_window_perplexity(_gpt("alibi"), torch.rand(20), 8),
         ["float32", "input_ids"]),
    Case("sliding-float-window", lambda: LC.sliding_window_perplexity(_gpt("alibi"), IDS, 8.5), ["8.5", "window=512"]),
    Case("sliding-bool-stride", lambda: LC.sliding_window_perplexity(_gpt("alibi"), IDS, 8, True),
         ["True", "stride=window"]),
    Case("stride-sweep-no-strides", lambda: LC.stride_sweep(_gpt("alibi"), IDS, 8, [], progress=False),
         ["[]", "[64, 128, 256]"]),
    Case("plot-stride-sweep-empty", lambda: LC.plot_stride_sweep([]), ["results is empty", "stride_sweep"]),
    # ---- tinygpt -------------------------------------------------------------------------------------------------
    Case("gpt-zero-width", lambda: TG.TinyGPT(TG.GPTConfig(n_embd=0, n_head=1, position="none")), ["n_embd", "0"]),
    Case("gpt-config-dict", lambda: TG.TinyGPT({"n_layer": 1}), ["dict", "GPTConfig(n_layer=2"]),
    Case("gpt-dropout-above-one", lambda: TG.GPTConfig(dropout=1.5).validate(), ["1.5", "dropout=0.1"]),
    Case("gpt-layers-bool", lambda: TG.GPTConfig(n_layer=True).validate(), ["True", "n_layer=4"]),
    Case("gpt-nan-rope-base", lambda: TG.GPTConfig(rope_base=NAN).validate(), ["nan", "rope_base=10000"]),
    Case("gpt-float-vocab", lambda: TG.GPTConfig(vocab_size=256.0).validate(), ["256.0", "vocab_size=256"]),
    Case("generate-negative-temperature", lambda: _gpt("alibi").generate(torch.tensor([[1, 2]]), 3, temperature=-1),
         ["-1", "temperature=1.0"]),
    Case("generate-nan-temperature", lambda: _gpt("alibi").generate(torch.tensor([[1, 2]]), 3, temperature=NAN),
         ["nan", "temperature=1.0"]),
    Case("generate-negative-tokens", lambda: _gpt("alibi").generate(torch.tensor([[1, 2]]), -1),
         ["-1", "max_new_tokens=50"]),
    Case("generate-1d-input", lambda: _gpt("alibi").generate(torch.tensor([1, 2]), 3), ["[2]", "[[72, 105]]"]),
    Case("forward-1d-input", lambda: _gpt("alibi")(torch.tensor([1, 2, 3])), ["(3,)", "input_ids[None]"]),
    Case("lm-examples-zero-length", lambda: TG.lm_examples(IDS, 0, 3), ["0", "length=64"]),
    Case("lm-examples-negative-n", lambda: TG.lm_examples(IDS, 8, -1), ["-1", "n=100"]),
    Case("loss-by-position-zero-windows", lambda: TG.loss_by_position(_gpt("alibi"), IDS, 8, n_windows=0),
         ["0", "n_windows=16"]),
    Case("loss-by-position-length-one", lambda: TG.loss_by_position(_gpt("alibi"), IDS, 1, n_windows=2),
         ["1", "length=64"]),
    Case("perplexity-no-lengths", lambda: TG.perplexity_by_length(_gpt("alibi"), IDS, []), ["[]", "[64, 128]"]),
    Case("perplexity-zero-length", lambda: TG.perplexity_by_length(_gpt("alibi"), IDS, [0]), ["0", "[64, 128]"]),
    Case("train-lm-zero-steps", lambda: TG.train_lm(_gpt("alibi"), IDS, seq_len=8, steps=0, progress=False),
         ["0", "steps=200"]),
    Case("set-rope-inf-scale", lambda: _gpt("rope").set_rope(scale=INF), ["inf", "scale=4.0"]),
    # ---- masks ---------------------------------------------------------------------------------------------------
    Case("causal-negative-length", lambda: M.causal_mask(-1), ["-1", "T=8"]),
    Case("causal-bool-length", lambda: M.causal_mask(True), ["True", "T=8"]),
    Case("bidirectional-float-length", lambda: M.bidirectional_mask(2.5), ["2.5", "T=8"]),
    Case("prefix-lm-bool-prefix", lambda: M.prefix_lm_mask(4, True), ["True", "prefix_len=3"]),
    Case("encoder-decoder-negative", lambda: M.encoder_decoder_masks(-1, 3), ["-1", "src_len=8"]),
    Case("regions-prefix-too-long", lambda: M.mask_regions(M.causal_mask(4), 9), ["9", "between 0"]),
    Case("regions-float-mask", lambda: M.mask_regions(torch.ones(4, 4), 2), ["float32", "causal_mask(T)"]),
    Case("additive-int-dtype", lambda: M.to_additive_4d(M.causal_mask(4), dtype=torch.int64),
         ["torch.int64", "model.dtype"]),
    Case("additive-padding-shape", lambda: M.to_additive_4d(M.causal_mask(4), padding_mask=torch.ones(2, 3)),
         ["[B, 4]", "attention_mask"]),
    Case("prefix-labels-negative", lambda: M.prefix_labels(torch.arange(6)[None], -1),
         ["-1", "count from the end"]),
    Case("lm-loss-shape-mismatch", lambda: M.lm_loss(torch.randn(1, 6, 10), torch.zeros(1, 4, dtype=torch.long)),
         ["(1, 6, 10)", "(1, 4)", "same B and T"]),
    Case("token-logprobs-shape-mismatch", lambda: M.token_logprobs(torch.randn(1, 6, 10),
                                                                   torch.zeros(2, 6, dtype=torch.long)),
         ["(2, 6)", "same B and T"]),
    Case("forward-with-mask-length", lambda: M.forward_with_mask(_tiny(), torch.arange(3, 8)[None], M.causal_mask(4)),
         ["[4, 4]", "5 tokens", "causal_mask(5)"]),
    Case("target-losses-prefix-frac", lambda: M.target_losses(None, None, "A short text.", prefix_frac=1.5),
         ["1.5", "prefix_frac=0.5"]),
    Case("text-loss-empty", lambda: M.text_loss(None, None, ""), ["''", "a few words"]),
    Case("shuffle-words-none", lambda: M.shuffle_words(None), ["None", "text"]),
    Case("library-mask-zero", lambda: M.library_mask(0), ["0", "T=8"]),
    # ---- rouge ---------------------------------------------------------------------------------------------------
    Case("random-instruction-int-rng", lambda: R.random_instruction(0), ["0", "random.Random(0)"]),
    Case("random-instruction-hi-below-lo", lambda: R.random_instruction(random.Random(0), 10, 5),
         ["hi=5", "lo <= hi"]),
    Case("perturb-empty-text", lambda: R.perturb_instruction(random.Random(0), ""), ["''", "instruction"]),
    # ---- decoding ------------------------------------------------------------------------------------------------
    Case("ngrams-n-bool", lambda: D.ngrams("a b c", True), ["True", "n=2"]),
    Case("ngrams-n-float", lambda: D.ngrams("a b c", 2.5), ["2.5", "n=2"]),
    Case("distinct-no-texts", lambda: D.distinct_n([], 2), ["texts is empty", "at least one"]),
    Case("rep-l-float-window", lambda: D.rep_l("a b a", 1.5), ["1.5", "window=128"]),
    Case("find-loop-nan-repeats", lambda: D.find_loop("a b a b a b a b", min_repeats=NAN), ["nan", "min_repeats=3"]),
    Case("find-loop-float-period", lambda: D.find_loop("a b a b", max_period=2.5), ["2.5", "max_period=64"]),
    Case("find-loop-negative-min-length", lambda: D.find_loop("a b a b", min_length=-1), ["-1", "min_length=6"]),
    Case("repetitive-version-bool", lambda: D.repetitive_version("One. Two.", True), ["True", "times=2"]),
    Case("loop-stopping-zero-period", lambda: D.LoopStoppingCriteria(max_period=0), ["0", "max_period"]),
    Case("loop-stopping-one-repeat", lambda: D.LoopStoppingCriteria(min_repeats=1), ["1", "min_repeats"]),
    Case("self-reinforcement-none", lambda: D.self_reinforcement(None, None, None), ["None", "sentence"]),
    Case("text-stats-no-texts", lambda: D.text_stats([]), ["texts is empty", "generated text"]),
    Case("text-stats-finished-mismatch", lambda: D.text_stats(["a b"], [True, False]),
         ["2 items", "has 1", "one end-of-sequence flag per text"]),
    Case("setting-top-p-above-one", lambda: D.DecodingSetting("x", {"do_sample": True, "top_p": 1.5}),
         ["1.5", "top_p=0.9"]),
    Case("setting-zero-temperature", lambda: D.DecodingSetting("x", {"do_sample": True, "temperature": 0}),
         ["0", "temperature=0.7"]),
    Case("setting-negative-top-k", lambda: D.DecodingSetting("x", {"do_sample": True, "top_k": -1}),
         ["-1", "top_k=50"]),
    Case("sweep-prompts-str", lambda: D.decoding_sweep(None, None, "Tell me a story."),
         ["'Tell me a story.'", "prompt texts"]),
    Case("sweep-zero-new-tokens", lambda: D.decoding_sweep(None, None, ["Hi"], max_new_tokens=0),
         ["0", "max_new_tokens=96"]),
    Case("perplexity-prompts-str", lambda: D.continuation_perplexity(None, None, "ab", ["x", "y"]),
         ["'ab'", "prompt texts"]),
    Case("format-sweep-empty", lambda: D.format_sweep([]), ["rows is empty", "decoding_sweep"]),
    Case("plot-sweep-missing-column", lambda: D.plot_sweep([{"setting": "greedy", "perplexity": 2.0}], x="rep"),
         ["'rep'", "'perplexity'"]),
    Case("token-bias-nan", lambda: D.resolve_token_bias(WordTok(), {"I": NAN}), ["nan", "-5.0"]),
    Case("experts-vocab-mismatch", lambda: D.product_of_experts(torch.randn(1, 5), torch.randn(1, 6)),
         ["5", "6", "same vocabulary"]),
    Case("rule-adapter-nan-boost", lambda: D.RuleBasedAdapter(WordTok(), 0, eos_boost=NAN), ["nan", "eos_boost"]),
    Case("rule-adapter-float-ramp", lambda: D.RuleBasedAdapter(WordTok(), 0, ramp=2.5), ["2.5", "ramp=64"]),
    Case("rules-prompts-str", lambda: D.generate_with_rules(None, None, "Hello"), ["'Hello'", "prompt texts"]),
    Case("new-turn-markers-str", lambda: D.new_turn_rate(["### Instruction: x"], markers="###"),
         ["'###'", "['### Instruction']"]),
    Case("new-turn-texts-str", lambda: D.new_turn_rate("hello"), ["'hello'", "at least one text"]),
    Case("word-counts-str", lambda: D.word_counts("a b c"), ["'a b c'", "list of texts"]),
    Case("top-repeated-negative-k", lambda: D.top_repeated(["a b a b a b"], 1, -1), ["-1", "k=5"]),
    Case("words-none", lambda: D.words(None), ["None", "one text"]),
    # ---- latency -------------------------------------------------------------------------------------------------
    Case("latency-repeats-bool", lambda: L.measure_latency(_gpt("alibi"), torch.tensor([[1, 2]]), repeats=True),
         ["True", "repeats=10"]),
    Case("latency-float-warmup", lambda: L.measure_latency(_gpt("alibi"), torch.tensor([[1, 2]]), warmup=1.5),
         ["1.5", "warmup=2"]),
    Case("latency-list-ids", lambda: L.measure_latency(_gpt("alibi"), [[1, 2]]), ["list", "input_ids"]),
    Case("compare-latency-list", lambda: L.compare_latency([_gpt("alibi")], torch.tensor([[1, 2]])),
         ["list", "{'base': model"]),
    Case("compare-latency-rounds-bool", lambda: L.compare_latency({"m": _gpt("alibi")}, torch.tensor([[1, 2]]),
                                                                  rounds=True),
         ["True", "rounds=5"]),
]


@pytest.mark.parametrize("case", params(CASES))
def test_refused(case):
    check_refused(case)


def test_valid_inputs_still_work():
    """The boundary checks accept what the chapters pass (spot checks; each module's own tests cover the rest)."""
    assert P.ntk_base(10000.0, 1.0, 64) == pytest.approx(10000.0)
    assert ev.load_facts(None) and len(ev.load_facts(3)) == 3
    assert D.DecodingSetting("top-k off", {"do_sample": True, "top_k": 0, "temperature": 0.7}).name == "top-k off"
    assert len(icl.orderings(POOL[:2], 10)) == 2
    assert len(icl.orderings(POOL[:7], 3)) == 3
    assert M.prefix_labels(torch.arange(4)[None], 4).eq(M.IGNORE_INDEX).all()
    assert pr.answer_search(_tiny(), CharTok(), "[X] I feel [Z].", ["a"], ["great"]).shape == (1, 1)
    assert _gpt("alibi").generate(torch.tensor([[1, 2]]), 2, temperature=0).shape == (1, 4)
