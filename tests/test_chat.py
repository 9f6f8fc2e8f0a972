"""Chat-format SFT: the training template renders SmolLM2's text, the loss falls on the assistant's tokens only,
packing keeps the loss, bad conversations are refused clearly, and the course engine equals TRL's SFTTrainer step
by step (prompt-completion with completion-only loss; multi-turn chat with assistant-only loss)."""

import copy
import json

import pytest
import torch

from course_utils import chat, sft
from course_utils.finetune import build_model, load_pairs, main
from course_utils.sft import IGNORE_INDEX

CONVS = [
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there!"},
     {"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"},
     {"role": "assistant", "content": "4"}],
    [{"role": "user", "content": "Say yes."}, {"role": "assistant", "content": "Yes."},
     {"role": "user", "content": "Say no."}, {"role": "assistant", "content": "No."},
     {"role": "user", "content": "Say maybe."}, {"role": "assistant", "content": "Maybe."}],
    [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris."}],
]


@pytest.fixture(scope="module")
def tiny_lm():
    torch.manual_seed(0)
    return build_model("tiny", "full", device=torch.device("cpu"))


@pytest.mark.parametrize("conv", CONVS[:3])
@pytest.mark.parametrize("gen", [False, True])
def test_training_template_renders_smollm2s_own_text(tiny_lm, conv, gen):
    _, tok = tiny_lm
    mine = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen,
                                   chat_template=chat.SMOLLM2_TRAINING_TEMPLATE)
    assert mine == tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen)


def test_loss_falls_on_the_assistant_turns_only(tiny_lm):
    _, tok = tiny_lm
    ex = chat.tokenize_conversation(tok, CONVS[0], 256)
    assert ex["input_ids"] == tok.apply_chat_template(CONVS[0], tokenize=True, return_dict=True)["input_ids"]
    trained = tok.decode([t for t in ex["labels"] if t != IGNORE_INDEX])
    assert trained == "Hello there!<|im_end|>Blue.<|im_end|>"  # both replies, each with its end of turn
    assert ex["labels"][0] == IGNORE_INDEX and not ex["truncated"]


def test_bad_conversations_are_refused_clearly(tiny_lm, tmp_path):
    _, tok = tiny_lm
    with pytest.raises(ValueError, match="no assistant message"):
        chat.tokenize_conversation(tok, [{"role": "user", "content": "hi"}], 64)
    with pytest.raises(ValueError, match="needs a 'role'"):
        chat.tokenize_conversation(tok, [{"role": "bot", "content": "hi"}], 64)
    with pytest.raises(ValueError, match="no messages"):
        chat.tokenize_conversation(tok, [], 64)
    with pytest.raises(ValueError, match="generation"):
        chat.tokenize_conversation(tok, CONVS[0], 64, template=tok.chat_template)
    with pytest.raises(ValueError, match="No assistant token left"):
        chat.tokenize_conversation(tok, CONVS[0], 8)
    with pytest.raises(ValueError, match="Conversation 1"):
        chat.build_chat_dataset(tok, [CONVS[0], [{"role": "user", "content": "x"}]], 64)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "x"}]}) + "\n")
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        chat.load_conversations(bad)
    with pytest.raises(ValueError, match="turns"):
        chat.conversations_from_pairs([("a", "b")], 0)


def test_packing_keeps_the_loss(tiny_lm):
    """Packed rows (positions restart per example, no attention mask) give the unpacked examples' total loss:
    no token attends across an example boundary."""
    model, tok = tiny_lm
    data = chat.build_chat_dataset(tok, CONVS, 256)
    packed = chat.pack(data, 256)
    assert len(packed) < len(data)
    collate = sft.SFTCollator(tok.pad_token_id)
    with torch.no_grad():
        loose = sum(sft.token_loss_sum(model, collate([e]))[0] for e in data)
        n_loose = sum(sft.token_loss_sum(model, collate([e]))[1] for e in data)
        tight, n_tight = sft.token_loss_sum(model, collate(packed))
    assert n_tight == n_loose
    torch.testing.assert_close(tight, loose, atol=1e-3, rtol=1e-5)
    with pytest.raises(ValueError, match="max_len"):
        chat.pack(data, 10)


def _parity(model, tok, examples, rows, steps=4, batch_size=2):
    cfg = sft.TrainConfig(steps=steps, batch_size=batch_size, lr=1e-3, plot=None, progress=False)
    ours = sft.train(copy.deepcopy(model), examples, cfg, pad_id=tok.pad_token_id).losses
    theirs = chat.trl_finetune(copy.deepcopy(model), tok, rows, cfg)
    assert len(theirs) == steps
    assert ours == pytest.approx(theirs, abs=1e-4)
    return ours


def test_trl_parity_prompt_completion_with_completion_only_loss(tiny_lm):
    model, tok = tiny_lm
    pairs = load_pairs("sentiment", limit=8)
    losses = _parity(model, tok, sft.build_dataset(tok, pairs, 64),
                     [{"prompt": p, "completion": r} for p, r in pairs])
    assert losses[-1] < losses[0]


def test_trl_parity_multi_turn_chat_with_assistant_only_loss(tiny_lm):
    model, tok = tiny_lm
    convs = CONVS * 2
    losses = _parity(model, tok, chat.build_chat_dataset(tok, convs, 256), [{"messages": c} for c in convs])
    assert losses[-1] < losses[0]


def test_finetune_command_trains_on_chat_rows_with_packing(tmp_path):
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps({"messages": c}) + "\n" for c in CONVS * 2))
    r = main(["--model", "tiny", "--data", str(data), "--steps", "2", "--batch-size", "2", "--max-len", "128",
              "--packing", "--output-dir", str(tmp_path / "run")])
    assert r.step == 2 and (tmp_path / "run" / "adapter_config.json").is_file()
