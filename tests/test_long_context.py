"""Sliding-window and chunked perplexity: every token scored once, the compute accounted, bad input refused."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_utils.long_context import chunked_perplexity, sliding_window_perplexity, stride_sweep
from course_utils.tinygpt import GPTConfig, TinyGPT


@pytest.fixture(scope="module")
def model():
    return TinyGPT(GPTConfig(block_size=16, n_layer=1, n_head=2, n_embd=16, position="alibi")).eval()


def full_ppl(model, ids):
    logits = model(input_ids=ids[None]).logits[0, :-1]
    return math.exp(F.cross_entropy(logits, ids[1:]).item())


def test_window_covering_the_document_is_exact(model):
    ids = torch.randint(0, 256, (40,))
    r = sliding_window_perplexity(model, ids, window=64)
    assert r.perplexity == pytest.approx(full_ppl(model, ids), rel=1e-5)
    assert r.tokens_scored == 39 and r.forward_passes == 1


def test_stride_one_scores_every_token_once(model):
    ids = torch.randint(0, 256, (30,))
    r = sliding_window_perplexity(model, ids, window=8, stride=1)
    assert r.tokens_scored == 29
    assert r.tokens_read > 29 * 5  # each token read up to 8 times


def test_chunking_skips_the_first_token_of_each_chunk(model):
    ids = torch.randint(0, 256, (32,))
    r = chunked_perplexity(model, ids, window=8)
    assert r.forward_passes == 4 and r.tokens_scored == 4 * 7 and r.tokens_read == 32
    assert r.mean_context == pytest.approx(32 / 28)


def test_stride_sweep(model):
    ids = torch.randint(0, 256, (64,))
    rs = stride_sweep(model, ids, 16, [16, 8, 4], progress=False)
    assert [r.stride for r in rs] == [16, 8, 4]
    assert rs[0].tokens_read < rs[1].tokens_read < rs[2].tokens_read


@pytest.mark.parametrize("window, stride", [(1, 1), (8, 0), (8, 9)])
def test_bad_windows(model, window, stride):
    with pytest.raises(ValueError, match="stride"):
        sliding_window_perplexity(model, torch.arange(20), window, stride)


def test_too_short(model):
    with pytest.raises(ValueError, match="two tokens"):
        sliding_window_perplexity(model, torch.tensor([3]), 8)
