"""Bad inputs to the fine-tuning engine, its data readers and its command line: each refused with the value and
the fix (cases in tests/refusals.py's format; tools/bad_inputs.py counts them)."""

import json
from pathlib import Path

import pytest
import torch
from refusals import Case, check_refused, params

from course_utils import finetune, sft
from course_utils.models import tiny_llama

_TINY = None


def _tiny():
    """A tiny Llama with a 32-token context window (built once, on first use)."""
    global _TINY
    if _TINY is None:
        torch.manual_seed(0)
        _TINY = tiny_llama(vocab_size=64, max_positions=32)
    return _TINY


def _ex(n: int = 4, weight: float = 1.0) -> dict:
    return {"input_ids": list(range(1, n + 1)), "labels": [-100] + list(range(2, n + 1)), "weight": weight}


def _train(data=None, **kw):
    cfg = sft.TrainConfig(**{"steps": 1, "batch_size": 1, "plot": None, "progress": False, **kw})
    return sft.train(_tiny(), data or [_ex()], cfg, pad_id=0)


class _Tok:
    """Enough of a tokenizer for tokenize_pair: one id per character."""
    eos_token_id = 1

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": [2 + ord(c) % 60 for c in text]}


def _file(tmp: Path, name: str, text: str | bytes) -> str:
    path = tmp / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


_TMP = Path(__import__("tempfile").mkdtemp(prefix="bad-inputs-"))
ROW = json.dumps({"prompt": "Q", "completion": " A"})

CASES = [
    # TrainConfig: numbers outside their domain, bools where counts go
    Case("steps-bool", lambda: _train(steps=True), ["steps", "int", "True"]),
    Case("steps-zero", lambda: _train(steps=0), ["steps must be >= 1"]),
    Case("batch-size-float", lambda: _train(batch_size=2.0), ["batch_size", "2.0"]),
    Case("warmup-negative", lambda: _train(warmup_steps=-1), ["warmup_steps", "-1"]),
    Case("warmup-longer-than-run", lambda: _train(warmup_steps=5), ["warmup_steps=5", "steps=1"]),
    Case("eval-every-negative", lambda: _train(eval_every=-2), ["eval_every", "-2"]),
    Case("checkpoint-every-negative", lambda: _train(checkpoint_every=-1), ["checkpoint_every", "-1"]),
    Case("weight-decay-negative", lambda: _train(weight_decay=-0.1), ["weight_decay", "-0.1"]),
    Case("weight-decay-nan", lambda: _train(weight_decay=float("nan")), ["weight_decay", "nan"]),
    Case("max-grad-norm-negative", lambda: _train(max_grad_norm=-1.0), ["max_grad_norm", "-1.0", "None"]),
    Case("max-grad-norm-inf", lambda: _train(max_grad_norm=float("inf")), ["max_grad_norm", "inf"]),
    Case("lr-negative", lambda: _train(lr=-1e-3), ["learning rate", "-0.001", "positive"]),
    Case("seed-float", lambda: _train(seed=0.5), ["seed", "0.5"]),
    # examples
    Case("example-longer-than-context", lambda: _train([_ex(40)]), ["40 tokens", "context window is 32", "max_len"]),
    Case("example-negative-weight", lambda: _train([_ex(weight=-1.0)]), ["weight -1.0", ">= 0"]),
    Case("example-nan-weight", lambda: _train([_ex(weight=float("nan"))]), ["weight nan"]),
    Case("example-not-a-dict", lambda: _train([[1, 2, 3]]), ["example 0", "build_dataset"]),
    Case("example-labels-length", lambda: _train([{"input_ids": [1, 2, 3], "labels": [1]}]),
         ["3 ids but 1 labels"]),
    Case("pair-negative-weight", lambda: sft.build_dataset(_Tok(), [("a", "b")], 16, weights=[-2.0]),
         ["weight -2.0", ">= 0"]),
    Case("pair-not-strings", lambda: sft.build_dataset(_Tok(), [("a", 3)], 16), ["strings", "3"]),
    # data files
    Case("limit-zero", lambda: finetune.load_pairs("sentiment", limit=0), ["limit", "positive", "0"]),
    Case("limit-zero-file", lambda: finetune.load_pairs(_file(_TMP, "one.jsonl", ROW), limit=0), ["limit", "0"]),
    Case("limit-bool", lambda: finetune.load_pairs("sentiment", limit=True), ["limit", "True"]),
    Case("missing-file", lambda: finetune.load_pairs(str(_TMP / "nope.jsonl")), ["nope.jsonl", "--data sentiment"]),
    Case("directory", lambda: finetune.load_pairs(str(_TMP)), ["is a directory", "JSONL file"]),
    Case("json-array-file", lambda: finetune.load_pairs(_file(_TMP, "array.json", f"[{ROW}, {ROW}]")),
         ["array.json:1", "JSON array", "one object per line"]),
    Case("json-array-over-lines", lambda: finetune.load_pairs(_file(_TMP, "lines.json", f"[\n{ROW},\n{ROW}\n]")),
         ["lines.json:1", "JSON array"]),
    Case("bad-json-line", lambda: finetune.load_pairs(_file(_TMP, "bad.jsonl", f"{ROW}\n{{'prompt': 1}}\n")),
         ["bad.jsonl:2", "not valid JSON"]),
    Case("row-not-object", lambda: finetune.load_pairs(_file(_TMP, "num.jsonl", "3\n")), ["num.jsonl:1", "3"]),
    Case("empty-file", lambda: finetune.load_pairs(_file(_TMP, "empty.jsonl", "\n\n")), ["empty.jsonl", "no rows"]),
    Case("non-string-field", lambda: finetune.load_pairs(_file(_TMP, "int.jsonl", '{"prompt": 5, "completion": "x"}')),
         ["row 1", "'prompt' must be a string", "int"]),
    Case("missing-fields", lambda: finetune.load_pairs(_file(_TMP, "fields.jsonl", '{"question": "q"}')),
         ["row 1", "'prompt'", "['question']"]),
    Case("chat-bad-json", lambda: finetune.build_data(None, _file(_TMP, "chat.jsonl", "{oops"), 16),
         ["chat.jsonl:1", "not valid JSON"]),
    # LoRA settings of the fine-tune
    Case("lora-rank-bool", lambda: finetune.lora_config(True, 16), ["rank", "True"]),
    Case("lora-rank-zero", lambda: finetune.lora_config(0, 16), ["rank", "0"]),
    Case("lora-alpha-nan", lambda: finetune.lora_config(8, float("nan")), ["alpha", "nan"]),
    Case("lora-alpha-negative", lambda: finetune.lora_config(8, -16), ["alpha", "-16"]),
    Case("lora-dropout-one", lambda: finetune.lora_config(8, 16, 1.0), ["dropout", "1.0", "[0, 1)"]),
    Case("method-unknown", lambda: finetune.build_model("tiny", "qlora"), ["'qlora'", "'lora' or 'full'"]),
]


@pytest.mark.parametrize("case", params(CASES))
def test_refused(case):
    check_refused(case)


def test_a_bom_is_read_not_refused(tmp_path):
    assert finetune.load_pairs(_file(tmp_path, "bom.jsonl", b"\xef\xbb\xbf" + ROW.encode())) == [("Q", " A")]


@pytest.mark.parametrize("args,words", [
    (["--limit", "0"], "--limit: 0 must be >= 1"), (["--steps", "-3"], "--steps: -3 must be >= 1"),
    (["--rank", "0"], "--rank: 0 must be >= 1"), (["--rank", "2.5"], "--rank: '2.5' is not an int"),
    (["--lr", "0"], "--lr: 0 must be > 0"), (["--lr", "nan"], "--lr: nan must be > 0"),
    (["--alpha", "inf"], "--alpha: inf must be > 0"), (["--lora-dropout", "1"], "--lora-dropout: 1 must be in [0, 1)"),
    (["--warmup-steps", "-1"], "--warmup-steps: -1 must be >= 0"), (["--max-len", "1"], "--max-len: 1 must be >= 2"),
    (["--checkpoint-every", "-5"], "--checkpoint-every: -5 must be >= 0"), (["--model", " "], "--model is empty"),
    (["--steps", "10", "--warmup-steps", "20"], "--warmup-steps 20 is longer than the run (--steps 10)"),
    (["--batch-size", "6", "--grad-accum", "4"], "--batch-size 6 must be a multiple of --grad-accum 4"),
    ([], "--output-dir is required")])
def test_the_command_line_refuses_bad_values(args, words, capsys):
    out_dir = [] if not args else ["--output-dir", "runs/x"]
    with pytest.raises(SystemExit) as info:
        finetune.parse_args([*args, *out_dir])
    assert info.value.code == 2 and words in capsys.readouterr().err


@pytest.mark.parametrize("module,args,words", [
    ("assistant", ["--out", "x", "--processes", "0"], "--processes: 0 must be >= 1"),
    ("self_instruct", ["--out", "x", "--target", "-2"], "--target: -2 must be >= 1"),
    ("course.grade", ["nb.ipynb", "--timeout", "0"], "--timeout: 0 must be >= 1")])
def test_the_other_commands_refuse_bad_numbers(module, args, words, capsys):
    import importlib

    main = importlib.import_module(f"course_utils.{module}").main
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2 and words in capsys.readouterr().err


def test_numpy_counts_are_accepted_as_ints():
    import numpy as np

    c = sft.TrainConfig(steps=np.int64(4), batch_size=np.int32(2), plot=None)
    c.validate(1)
    assert type(c.steps) is int and type(c.batch_size) is int  # the checkpoint's fingerprint stores plain ints
