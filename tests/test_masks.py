import pytest
import torch
import torch.nn.functional as F

from course_utils import masks
from course_utils.data import load_lines


@pytest.mark.parametrize("T,P", [(1, 0), (1, 1), (6, 0), (6, 3), (6, 6), (33, 12)])
def test_scratch_masks_match_transformers_masking_utils(T, P):
    assert torch.equal(masks.prefix_lm_mask(T, P), masks.library_mask(T, P))
    assert torch.equal(masks.causal_mask(T), masks.library_mask(T))


def test_prefix_mask_definition_and_limits():
    T, P = 7, 3
    m = masks.prefix_lm_mask(T, P)
    for i in range(T):
        for j in range(T):
            assert m[i, j] == (j <= i or j < P)
    assert torch.equal(masks.prefix_lm_mask(T, 0), masks.causal_mask(T))
    assert torch.equal(masks.prefix_lm_mask(T, T), masks.bidirectional_mask(T))
    with pytest.raises(ValueError, match="prefix_len must be between 0 and"):
        masks.prefix_lm_mask(4, 5)


def test_encoder_decoder_masks_shapes():
    m = masks.encoder_decoder_masks(3, 5)
    assert m["encoder self"].shape == (3, 3) and m["encoder self"].all()
    assert torch.equal(m["decoder self"], masks.causal_mask(5))
    assert m["cross"].shape == (5, 3) and m["cross"].all()


def test_mask_regions_match_the_seed_figure():
    r = masks.mask_regions(masks.prefix_lm_mask(5, 2), 2)
    assert r[0, 1] == masks.PREFIX_PREFIX and r[3, 1] == masks.TARGET_PREFIX
    assert r[4, 3] == masks.TARGET_TARGET and r[2, 4] == masks.BLOCKED
    assert masks.mask_regions(masks.bidirectional_mask(5), 2)[0, 4] == masks.PREFIX_TARGET


def test_additive_mask_values_and_padding():
    add = masks.to_additive_4d(masks.causal_mask(3), dtype=torch.float16)
    assert add.shape == (1, 1, 3, 3) and add.dtype == torch.float16
    assert add[0, 0, 1, 0] == 0 and add[0, 0, 0, 1] == torch.finfo(torch.float16).min
    padded = masks.to_additive_4d(masks.causal_mask(3), padding_mask=torch.tensor([[1, 1, 0], [1, 1, 1]]))
    assert padded.shape == (2, 1, 3, 3)
    assert padded[0, 0, 2, 2] < 0 and padded[1, 0, 2, 2] == 0
    with pytest.raises(ValueError, match="2-D boolean"):
        masks.to_additive_4d(masks.causal_mask(3).float())


def test_lm_loss_matches_cross_entropy_and_model_loss(tiny):
    torch.manual_seed(0)
    ids = torch.randint(3, 256, (2, 9))
    labels = masks.prefix_labels(ids, 4)
    assert (labels[:, :4] == masks.IGNORE_INDEX).all() and torch.equal(labels[:, 4:], ids[:, 4:])
    out = tiny(input_ids=ids, labels=labels)
    ours = masks.lm_loss(out.logits, labels)
    ref = F.cross_entropy(out.logits[:, :-1].reshape(-1, out.logits.shape[-1]), labels[:, 1:].reshape(-1))
    assert abs(ours.item() - ref.item()) < 1e-6
    assert abs(ours.item() - out.loss.item()) < 1e-5
    lp = masks.token_logprobs(out.logits, ids)
    assert lp.shape == (2, 8) and (lp <= 0).all()
    with pytest.raises(ValueError, match="no token to compute the loss"):
        masks.lm_loss(out.logits, torch.full_like(ids, masks.IGNORE_INDEX))


def test_shuffle_words_keeps_the_words():
    s = "the cat sat on the mat today"
    shuffled = masks.shuffle_words(s, seed=1)
    assert sorted(shuffled.split()) == sorted(s.split()) and shuffled != s
    assert masks.shuffle_words(s, seed=1) == shuffled


# ---- the chapter's claims on the real model -------------------------------------------------------------------

TEXT = "Question: What is the capital of France? Answer: The capital of France is Paris."


@pytest.mark.model
def test_real_model_causal_4d_mask_equals_builtin_and_prefix_looks_ahead(real_model):
    model, tok = real_model
    ids = tok(TEXT, return_tensors="pt").input_ids
    T, P = ids.shape[1], ids.shape[1] // 2
    with torch.no_grad():
        builtin = model(ids).logits
    assert (masks.forward_with_mask(model, ids, masks.causal_mask(T)).logits - builtin).abs().max() < 1e-4
    edited = ids.clone()
    edited[0, P - 1] = tok(" banana").input_ids[0]
    prefix = masks.prefix_lm_mask(T, P)
    moved = (masks.forward_with_mask(model, ids, prefix).logits[0, 0]
             - masks.forward_with_mask(model, edited, prefix).logits[0, 0]).abs().max()
    still = (masks.forward_with_mask(model, ids, masks.causal_mask(T)).logits[0, 0]
             - masks.forward_with_mask(model, edited, masks.causal_mask(T)).logits[0, 0]).abs().max()
    assert moved > 0.1 and still == 0
    edited = ids.clone()
    edited[0, T - 2] = tok(" banana").input_ids[0]
    for allowed in (masks.causal_mask(T), prefix):  # no mask lets a token see the future
        before = masks.forward_with_mask(model, ids, allowed).logits[0, : T - 2]
        after = masks.forward_with_mask(model, edited, allowed).logits[0, : T - 2]
        assert (before - after).abs().max() < 1e-4


@pytest.mark.model
def test_boolean_4d_mask_is_silently_wrong_under_eager(real_model):
    model, tok = real_model
    ids = tok(TEXT, return_tensors="pt").input_ids
    prefix = masks.prefix_lm_mask(ids.shape[1], 5)
    try:
        diffs = {}
        for impl in ("sdpa", "eager"):
            model.set_attn_implementation(impl)
            with torch.no_grad():
                wrong = model(ids, attention_mask=prefix[None, None]).logits
            diffs[impl] = (wrong - masks.forward_with_mask(model, ids, prefix).logits).abs().max().item()
    finally:
        model.set_attn_implementation("sdpa")
    assert diffs["sdpa"] < 1e-4 and diffs["eager"] > 1.0


@pytest.mark.model
def test_prefix_mask_hurts_a_causally_trained_model_and_shuffling_raises_loss(real_model):
    model, tok = real_model
    sentences = load_lines("probe_sentences.txt")
    rows = [masks.target_losses(model, tok, s) for s in sentences]
    assert all(r["prefix LM"] > r["causal"] for r in rows)
    assert all(masks.text_loss(model, tok, masks.shuffle_words(s)) > masks.text_loss(model, tok, s)
               for s in sentences)


@pytest.mark.model
def test_real_model_loss_by_hand_matches_library(real_model):
    model, tok = real_model
    ids = tok(TEXT, return_tensors="pt").input_ids
    for labels in (ids, masks.prefix_labels(ids, 6)):
        with torch.no_grad():
            out = model(ids, labels=labels)
        assert abs(out.loss.item() - masks.lm_loss(out.logits, labels).item()) < 1e-5
