"""Every course helper hands a model its inputs on the model's own device.

On a GPU, a CPU tensor given to the model stops the lesson with a device-mismatch error. Here the model's weights
live on PyTorch's ``meta`` device (shapes, no values) and a hook records where every tensor given to the model lives,
then stops the call: a helper passes when all of them are on ``meta``. No GPU is needed to catch a tensor left on
the CPU.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest
import torch

from course_utils import alignment as al
from course_utils import (
    assistant,
    decoding,
    device,
    evaluation,
    forgetting,
    icl,
    knowledge,
    long_context,
    masks,
    models,
    new_knowledge,
    peft_methods,
    prompting,
    sample_optimization,
    self_instruct,
    sft,
    slick,
    tinygpt,
)
from course_utils.data import load_sentiment
from course_utils.prompting import SENTIMENT_TEMPLATE, SENTIMENT_WORDS


class _Stop(Exception):
    """Raised at the model's first call: meta tensors have no values to go on with."""


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)
    elif isinstance(value, Mapping):  # a dict, or a tokenizer's BatchEncoding
        for v in value.values():
            yield from _tensors(v)


def spy(model) -> list[torch.device]:
    """Record the devices of the tensors ``model`` (or its ``generate``) is called with, then stop the call."""
    seen: list[torch.device] = []

    def record(args, kwargs):
        seen.extend(t.device for t in _tensors([*args, *kwargs.values()]))
        raise _Stop

    model.register_forward_pre_hook(lambda _m, args, kwargs: record(args, kwargs), with_kwargs=True)
    model.generate = lambda *args, **kwargs: record(args, kwargs)  # generate reads values before its first forward
    return seen


def _check(seen: list[torch.device]) -> None:
    assert seen, "the helper never called the model"
    assert all(d.type == "meta" for d in seen), f"the model got tensors on {sorted({str(d) for d in seen})}, not meta"


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    from course_utils.config import DEFAULT_MODEL

    return models.prepare_tokenizer(AutoTokenizer.from_pretrained(models.ensure_cached(DEFAULT_MODEL)))


# ---- the inputs each helper is called with ---------------------------------------------------------------------------

ROWS = [{"instruction": "Name a colour.", "input": "", "output": "Red."},
        {"instruction": "Add 2 and 3.", "input": "", "output": "5"}]
FACTS = [{"question": "What is the capital of France?", "answer": "Paris", "aliases": [], "slick": "HighlyKnown"}]
TEXTS, LABELS = ["a fine film", "a dull film"], ["positive", "negative"]
TEMPLATE = prompting.Template(SENTIMENT_TEMPLATE)


def _ids(tok, text="The quick brown fox jumps over the lazy dog."):
    return tok(text, return_tensors="pt").input_ids  # on the CPU, on purpose: the helper must move it


def _data(tok):
    pairs = [("Review: great\nSentiment:", " positive"), ("Review: bad\nSentiment:", " negative")]
    return sft.build_dataset(tok, pairs, max_len=32)


def _batch(model, tok):
    return device.to_model(model, sft.SFTCollator(tok.pad_token_id)(_data(tok)))


def _harness(tok):
    sizes = evaluation.EvalSizes(sentiment=2, facts=2, arithmetic=2, ppl_tokens=64, kl_tokens=32, max_new_tokens=4)
    return evaluation.Harness(tok, sizes, instructions=ROWS)


def _no_stop(tok):
    return torch.zeros(len(tok), dtype=torch.bool)  # slick's real stop mask decodes the whole vocabulary: slow


#: helper name -> a call ``f(model, tok)``
CASES = {
    "device.encode": lambda m, t: m(**device.encode(t, ["a b", "c"], m, padding=True)),
    "device.to_model tensor": lambda m, t: m(device.to_model(m, _ids(t))),
    "device.to_model BatchEncoding": lambda m, t: m(**device.to_model(m, t("a b", return_tensors="pt"))),
    "device.to_model dict": lambda m, t: m(**device.to_model(m, dict(t("a b", return_tensors="pt")))),
    "models.generate_text chat": lambda m, t: models.generate_text(m, t, "Hi", max_new_tokens=4),
    "models.generate_text raw": lambda m, t: models.generate_text(m, t, "Hi", max_new_tokens=4, chat=False),
    "models.generate_batch": lambda m, t: models.generate_batch(m, t, ["Hi", "Hello there"], max_new_tokens=4),
    "models.continuation_logits": lambda m, t: models.continuation_logits(m, _ids(t), 2),
    "masks.forward_with_mask": lambda m, t: masks.forward_with_mask(m, _ids(t), masks.causal_mask(_ids(t).shape[1])),
    "masks.target_losses": lambda m, t: masks.target_losses(m, t, "Question: why? Answer: because."),
    "masks.text_loss": lambda m, t: masks.text_loss(m, t, "A short text."),
    "prompting.answer_search_naive": lambda m, t: prompting.answer_search_naive(m, t, TEMPLATE, TEXTS, ["good", "bad"]),
    "prompting.answer_search": lambda m, t: prompting.answer_search(m, t, TEMPLATE, TEXTS, ["good", "bad"]),
    "prompting.continuation_logprobs shared prefix": lambda m, t: prompting.continuation_logprobs(
        m, t, ["x is"], [[" a", " b c"]], shared_prefix="Some examples first.\n"),
    "prompting.PromptClassifier": lambda m, t: prompting.PromptClassifier(
        m, t, SENTIMENT_TEMPLATE, SENTIMENT_WORDS, calibrate=True).scores(TEXTS),
    "peft_methods.prompt_accuracy": lambda m, t: peft_methods.prompt_accuracy(
        m, t, TEXTS, LABELS, SENTIMENT_TEMPLATE, SENTIMENT_WORDS),
    "peft_methods.prompt_accuracy plain": lambda m, t: peft_methods.prompt_accuracy(
        m, t, TEXTS, LABELS, SENTIMENT_TEMPLATE, SENTIMENT_WORDS, plain=True),
    "sft.evaluate_loss": lambda m, t: sft.evaluate_loss(m, _data(t), pad_id=t.pad_token_id),
    "sft.token_loss_sum": lambda m, t: sft.token_loss_sum(m, _batch(m, t)),
    "sft.target_token_losses": lambda m, t: sft.target_token_losses(m, _batch(m, t)),
    "evaluation.next_token_logprobs": lambda m, t: evaluation.next_token_logprobs(m, _ids(t)[0]),
    "evaluation.Harness.set_reference": lambda m, t: _harness(t).set_reference(m),
    "evaluation.Harness.perplexity": lambda m, t: _harness(t).perplexity(m),
    "evaluation.Harness.sentiment_accuracy": lambda m, t: _harness(t).sentiment_accuracy(m),
    "evaluation.Harness.facts_accuracy": lambda m, t: _harness(t).facts_accuracy(m),
    "evaluation.Harness.arithmetic_accuracy": lambda m, t: _harness(t).arithmetic_accuracy(m),
    "evaluation.Harness.instructions_rouge": lambda m, t: _harness(t).instructions_rouge(m),
    "long_context.sliding_window_perplexity": lambda m, t: long_context.sliding_window_perplexity(
        m, _ids(t)[0], window=8, stride=4),
    "decoding.self_reinforcement": lambda m, t: decoding.self_reinforcement(m, t, "I like it.", repeats=2),
    "decoding.continuation_perplexity": lambda m, t: decoding.continuation_perplexity(m, t, ["Hi"], ["Hello."]),
    "decoding.generate_with_rules": lambda m, t: decoding.generate_with_rules(m, t, ["Once upon"], max_new_tokens=4),
    "decoding.decoding_sweep": lambda m, t: decoding.decoding_sweep(m, t, ["Hi"], max_new_tokens=4, progress=False),
    "sample_optimization.example_losses": lambda m, t: sample_optimization.example_losses(m, _data(t)),
    "sample_optimization.paraphrase": lambda m, t: sample_optimization.paraphrase(m, t, ["a fine film"]),
    "sample_optimization.dev_accuracy": lambda m, t: sample_optimization.dev_accuracy(
        m, t, load_sentiment("dev", limit=2)),
    "self_instruct.classify_tasks": lambda m, t: self_instruct.classify_tasks(
        m, t, ["Sort these words."], "Task: Add two numbers.\nIs it classification? No\n"),
    "slick.score_answers": lambda m, t: slick.score_answers(
        m, t, ["Q: Capital of France?\nA:"], [[[3, 4]]], stop_mask=_no_stop(t)),
    "slick.score_answers prefix": lambda m, t: slick.score_answers(
        m, t, ["Q: Capital of France?\nA:"], [[[3, 4]]], prefix="Q: 1+1?\nA: 2\n\n", stop_mask=_no_stop(t)),
    "slick.sample_answers": lambda m, t: slick.sample_answers(m, t, "Q: Capital of France?\nA:", 2, 0.5),
    "new_knowledge.accuracy_by_category": lambda m, t: new_knowledge.accuracy_by_category(
        m, t, FACTS, stop_mask=_no_stop(t)),
    "forgetting.fisher_diagonal": lambda m, t: forgetting.fisher_diagonal(
        m.requires_grad_(True), _data(t), pad_id=t.pad_token_id),
    "assistant.chat_reply": lambda m, t: assistant.chat_reply(m, t, [], "Hello", max_new_tokens=4),
    "assistant.chat_reply chat": lambda m, t: assistant.chat_reply(m, t, [], "Hello", max_new_tokens=4,
                                                                   template="chat"),
    "assistant.max_logit_difference": lambda m, t: assistant.max_logit_difference(m, m, t),
    "alignment.token_shift": lambda m, t: al.token_shift(m, m, t, ["Hello there"], max_new_tokens=4, progress=False),
    "alignment.judge_scores": lambda m, t: al.judge_scores(m, t, ["Say hi."], ["Hi!"]),
    "alignment.relevance_scores": lambda m, t: al.relevance_scores(m, t, ["Say hi."], ["Hi!"]),
    "alignment.reference_loss": lambda m, t: al.reference_loss(m, t, ROWS),
    "alignment.answer": lambda m, t: al.answer(m, t, ROWS, max_new_tokens=4),
    "alignment.answer with rules": lambda m, t: al.answer(m, t, ROWS, max_new_tokens=4, rules={}),
    "alignment.best_of_n": lambda m, t: al.best_of_n(m, t, ROWS, n=2, max_new_tokens=4, progress=False),
    "alignment.sample_correctness": lambda m, t: al.sample_correctness(
        m, t, [{"question": "What is 2 + 3?", "answer": "5"}], n=2, max_new_tokens=4, progress=False),
}


@pytest.mark.parametrize("name", CASES)
def test_helper_gives_the_model_tensors_on_its_device(tok, name):
    model = models.tiny_llama(vocab_size=len(tok), max_positions=1024).to("meta")
    seen = spy(model)
    with pytest.raises(_Stop):
        CASES[name](model, tok)
    _check(seen)


def test_sentence_embeddings_give_the_encoder_tensors_on_its_device(tok):
    encoder = models.tiny_llama(vocab_size=len(tok)).model.to("meta")  # hidden states, no LM head: an encoder's shape
    seen = spy(encoder)
    with pytest.raises(_Stop):
        icl.embed(["a b", "c"], encoder=(encoder, tok))
    _check(seen)


TINYGPT_CASES = {
    "knowledge.exact_match": lambda m, ids: knowledge.exact_match(m, [{"input_ids": [3, 4, 5],
                                                                      "labels": [-100, 4, 5]}]),
    "tinygpt.loss_by_position": lambda m, ids: tinygpt.loss_by_position(m, ids, 8, n_windows=2),
    "tinygpt.perplexity_by_length": lambda m, ids: tinygpt.perplexity_by_length(m, ids, [8, 16]),
    "long_context.sliding_window_perplexity": lambda m, ids: long_context.sliding_window_perplexity(m, ids, 8),
}


@pytest.mark.parametrize("name", TINYGPT_CASES)
def test_tinygpt_helpers_give_the_model_tensors_on_its_device(name):
    config = tinygpt.GPTConfig(vocab_size=64, block_size=16, n_layer=1, n_head=2, n_embd=16)
    model = tinygpt.TinyGPT(config).eval().to("meta")
    seen = spy(model)
    with pytest.raises(_Stop):
        TINYGPT_CASES[name](model, torch.arange(64) % 60 + 3)
    _check(seen)


def test_encode_and_to_model_put_inputs_on_the_model_device(tok):
    model = models.tiny_llama(vocab_size=len(tok)).to("meta")
    enc = device.encode(tok, ["a b", "c"], model, padding=True)
    assert {v.device.type for v in enc.values()} == {"meta"}
    batch = device.to_model(model, {"ids": torch.ones(2, dtype=torch.long), "pair": [torch.zeros(1), 3], "n": 5})
    assert batch["ids"].device.type == batch["pair"][0].device.type == "meta"
    assert batch["pair"][1] == 3 and batch["n"] == 5  # what is not a tensor stays as it is
    assert device.model_device(model).type == "meta"
    assert device.model_device(torch.nn.ReLU()).type == "cpu"  # no parameters: the CPU


# ---- data parallelism: how many processes, on what ------------------------------------------------------------------

@pytest.mark.parametrize("requested, n_gpus, exact, expected", [
    (2, 0, False, (2, "gloo", "cpu")),   # no GPU: CPU processes over gloo
    (2, 0, True, (2, "gloo", "cpu")),
    (2, 2, True, (2, "nccl", "cuda")),   # one process per GPU over NCCL
    (2, 4, False, (2, "nccl", "cuda")),
    (2, 1, False, (1, "nccl", "cuda")),  # never more processes than GPUs
    (4, 2, False, (2, "nccl", "cuda")),
    (2, 1, True, (2, "gloo", "cpu")),    # a 1-vs-2 comparison on a one-GPU Colab: both on the CPU
    (1, 1, True, (1, "nccl", "cuda")),
])
def test_launch_plan(requested, n_gpus, exact, expected):
    from course_utils.finetune import launch_plan

    plan = launch_plan(requested, n_gpus, exact=exact)
    assert (plan.processes, plan.backend, plan.device) == expected
    assert plan.note  # the notebook prints why


def test_launch_plan_rejects_nonsense():
    from course_utils.finetune import launch_plan

    with pytest.raises(ValueError, match="requested"):
        launch_plan(0, 1)
    with pytest.raises(ValueError, match="n_gpus"):
        launch_plan(2, -1)


def test_each_process_gets_its_own_gpu_or_the_cpu():
    from course_utils.finetune import process_device

    assert process_device(0, 0) == ("gloo", torch.device("cpu"))
    assert process_device(3, 0) == ("gloo", torch.device("cpu"))  # CPU processes share the CPU
    assert process_device(1, 2) == ("nccl", torch.device("cuda", 1))
    with pytest.raises(RuntimeError, match=r"LOCAL_RANK=1 has no GPU.*COURSE_DEVICE=cpu"):
        process_device(1, 1)  # the second process on a one-GPU machine


def test_course_device_cpu_means_no_gpu_for_the_run(monkeypatch):
    from course_utils.finetune import usable_gpus

    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert usable_gpus() == 0
