"""DPO from the paper: the loss on hand values, equality with TRL's DPOTrainer on the same batch, a training run
that raises the held-out reward margin, the pairs built from the course's material, and bad input refused."""

import copy
import math

import pytest
import torch

from course_utils import alignment, dpo
from course_utils.config import sizes
from course_utils.finetune import build_model, lora_config

ROWS = [
    {"prompt": "Review: a moving, beautiful film. Sentiment:", "chosen": " positive", "rejected": " negative"},
    {"prompt": "Review: dull and far too long. Sentiment:", "chosen": " negative", "rejected": " positive"},
    {"prompt": "Name a colour.", "chosen": " Blue.", "rejected": " Blue blue blue blue."},
    {"prompt": "What is 2+2?", "chosen": " 4", "rejected": " 5"},
]


@pytest.fixture(scope="module")
def tiny_lm():
    torch.manual_seed(0)
    return build_model("tiny", "full", device=torch.device("cpu"))


def test_dpo_loss_follows_the_paper():
    z = torch.zeros(3)
    loss, cr, rr = dpo.dpo_loss(z, z, z, z, beta=0.1)
    assert loss.item() == pytest.approx(math.log(2))  # the policy is the reference: sigmoid(0) = 1/2
    pc, pr = torch.tensor([-1.0, -2.0]), torch.tensor([-3.0, -1.0])
    rc, rr_ = torch.tensor([-2.0, -2.0]), torch.tensor([-2.0, -2.0])
    loss, cr, rr = dpo.dpo_loss(pc, pr, rc, rr_, beta=0.5)
    margins = 0.5 * ((pc - rc) - (pr - rr_))  # [1.0, -0.5]
    assert loss.item() == pytest.approx(-torch.nn.functional.logsigmoid(margins).mean().item())
    torch.testing.assert_close(cr - rr, margins)
    with pytest.raises(ValueError, match="beta must be > 0"):
        dpo.dpo_loss(z, z, z, z, beta=0)
    with pytest.raises(ValueError, match="one shape"):
        dpo.dpo_loss(z, z[:2], z, z)


def test_bad_rows_are_refused(tiny_lm):
    _, tok = tiny_lm
    with pytest.raises(ValueError, match="No preference pairs"):
        dpo.tokenize_pairs(tok, [], 64)
    with pytest.raises(ValueError, match="Pair 0 has no text for \\['rejected'\\]"):
        dpo.tokenize_pairs(tok, [{"prompt": "x", "chosen": "y"}], 64)
    with pytest.raises(ValueError, match="the same text"):
        dpo.tokenize_pairs(tok, [{"prompt": "x", "chosen": "y", "rejected": "y"}], 64)
    model, _ = tiny_lm
    with pytest.raises(TypeError, match="peft"):
        dpo.train_dpo(model, dpo.tokenize_pairs(tok, ROWS, 64, chat=False), tok.pad_token_id, steps=1)
    with pytest.raises(ValueError, match="Unknown corruption"):
        dpo.corrupted_pairs(alignment.load_curated("heldout"), kinds=("shuffled",))


def test_loss_equals_trls_dpo_trainer_on_the_same_batch(tiny_lm, tmp_path):
    """The same policy, reference and pairs: the course's loss (sequence log-probs + dpo_loss) and TRL's
    DPOTrainer.compute_loss agree to float32 rounding."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    base, tok = tiny_lm
    ref = copy.deepcopy(base).eval()
    policy = copy.deepcopy(base)
    with torch.no_grad():  # a policy that differs from the reference, so the loss is not log 2
        for p in policy.parameters():
            p.add_(0.02 * torch.randn_like(p))
    args = DPOConfig(output_dir=str(tmp_path), beta=0.1, per_device_train_batch_size=len(ROWS), report_to="none",
                     use_cpu=True, max_length=None, bf16=False, fp16=False, dataloader_pin_memory=False)
    trainer = DPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=Dataset.from_list(ROWS),
                         processing_class=tok)
    batch = next(iter(trainer.get_train_dataloader()))  # all four pairs (their order does not change the mean)
    policy.eval()
    with torch.no_grad():
        theirs = trainer.compute_loss(trainer.model, batch).item()
        data = dpo.tokenize_pairs(tok, ROWS, 64, chat=False)
        pc, pr = dpo.pair_logps(policy, data, tok.pad_token_id)
        rc, rr = dpo.pair_logps(ref, data, tok.pad_token_id)
        ours, _, _ = dpo.dpo_loss(pc, pr, rc, rr, beta=0.1)
    assert abs(ours.item() - math.log(2)) > 1e-3
    assert ours.item() == pytest.approx(theirs, abs=1e-5)


def test_training_raises_the_margin_on_held_out_pairs(tiny_lm):
    """On the tiny model: pairs whose rejected answer repeats itself; after a few steps the held-out pairs of
    the same kind have a positive reward margin (the reference's is 0 by definition)."""
    from peft import get_peft_model

    base, tok = tiny_lm
    rows = [{"prompt": f"Say the number {i}.", "chosen": f" The number is {i}.",
             "rejected": f" The number is {i} {i} {i} {i} {i} {i}."} for i in range(24)]
    data = dpo.tokenize_pairs(tok, rows[:16], 64, chat=False)
    held = dpo.tokenize_pairs(tok, rows[16:], 64, chat=False)
    torch.manual_seed(0)
    policy = get_peft_model(copy.deepcopy(base), lora_config())
    before = dpo.preference_stats(policy, held, tok.pad_token_id)
    assert before["reward margin"] == 0.0
    result = dpo.train_dpo(policy, data, tok.pad_token_id, steps=12, batch_size=4, lr=5e-3, progress=False)
    after = dpo.preference_stats(policy, held, tok.pad_token_id)
    assert result.losses[-1] < result.losses[0] < math.log(2) + 1e-6
    assert after["reward margin"] > 0 and after["positive margin"] == 1.0


def test_pairs_from_the_course_material():
    rows = alignment.load_curated("train")
    pairs = dpo.corrupted_pairs(rows)
    assert {p["kind"] for p in pairs} == {"repeated", "truncated"} == {p["kind"] for p in pairs[:4]}
    assert all(p["chosen"] != p["rejected"] and p["prompt"] for p in pairs)
    assert len(pairs) <= 2 * len(rows)


def test_pairs_that_do_not_fit_are_left_out_with_a_warning(tiny_lm):
    _, tok = tiny_lm
    long = {"prompt": "Tell me.", "chosen": " word" * 200, "rejected": " no"}
    with pytest.warns(UserWarning, match="1 of 2 pairs are longer than max_len=64"):
        assert len(dpo.tokenize_pairs(tok, [ROWS[0], long], 64, chat=False)) == 1
    with pytest.raises(ValueError, match="No pair fits"):
        dpo.tokenize_pairs(tok, [long], 64, chat=False)


@pytest.mark.slow
@pytest.mark.model
def test_dpo_on_the_real_model_ranks_held_out_pairs(real_model):
    """Chapter 9's claim at a smaller size (one seed, a quarter of the pairs, 30 steps of 2 pairs): on held-out
    pairs the mean implicit reward margin is positive and nearly every pair's is (at this size both answers'
    log-probabilities may still rise, the chosen more; the full run's table shows the rejected falling)."""
    from peft import get_peft_model

    model, tok = real_model
    pairs = dpo.corrupted_pairs(dpo.instruction_rows())[::4]  # both kinds of rejected answer
    held_rows = alignment.load_curated("heldout")[:6]
    max_len = sizes("dpo", "cpu").max_len  # the chapter's budget: a pair that does not fit is left out
    train = dpo.tokenize_pairs(tok, pairs, max_len)
    held = dpo.tokenize_pairs(tok, dpo.corrupted_pairs(held_rows), max_len)
    torch.manual_seed(0)
    policy = get_peft_model(copy.deepcopy(model), lora_config())
    dpo.train_dpo(policy, train, tok.pad_token_id, steps=30, batch_size=2, lr=1e-4, progress=False)
    stats = dpo.preference_stats(policy, held, tok.pad_token_id)
    assert stats["reward margin"] > 0.1 and stats["positive margin"] >= 0.8, stats
    assert stats["chosen logp change"] > stats["rejected logp change"], stats
