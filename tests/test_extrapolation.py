"""Chapter 6's experiments: the plumbing at smoke size, and the extrapolation claim at the cpu size where it holds."""

import dataclasses
import math

import matplotlib
import pytest
import torch

from course_utils import extrapolation as X
from course_utils.config import sizes
from course_utils.data.corpus import encode_bytes, load_corpus
from course_utils.tinygpt import GPTConfig, TinyGPT

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def corpus():
    return encode_bytes(load_corpus("train")), encode_bytes(load_corpus("val"))


def test_setups():
    assert sizes("extrapolation", "cpu").lengths == [64, 128, 256, 512]
    assert sizes("extrapolation", "smoke").config("alibi").position == "alibi"
    with pytest.raises(ValueError, match="profile"):
        sizes("extrapolation", "tpu")


def test_smoke_pipeline(corpus):
    train_ids, val_ids = corpus
    S = dataclasses.replace(sizes("extrapolation", "smoke"), steps=5, extend_steps=4, extend_eval_every=2)
    runs = X.train_variants(S, train_ids, ("learned", "rope"), progress=False)
    table = X.length_table({k: m for k, (m, _) in runs.items()}, val_ids, S)
    assert math.isnan(table["learned"][S.seq_len * 2]) and not math.isnan(table["rope"][S.seq_len * 8])
    text = X.format_length_table(table, S.seq_len)
    assert "n/a" in text and "8x" in text
    X.plot_length_table(table, S.seq_len)
    curves = X.extension_experiment(runs["rope"][0], train_ids, val_ids, S, progress=False)
    assert set(curves) == {"trained at L", *X.EXTENSION_METHODS}
    assert [s for s, _ in curves["ntk"]] == [0, 2, 4]
    X.plot_extension(curves, S)


def test_extended_copies_and_rescales():
    m = TinyGPT(GPTConfig(block_size=16, n_layer=1, n_head=2, n_embd=16, position="rope"))
    pi = X.extended(m, "interpolation", 4)
    assert pi.blocks[0].attn.cfg.rope_scale == 4.0 and m.config.rope_scale == 1.0
    ntk = X.extended(m, "ntk", 4)
    assert ntk.config.rope_base > m.config.rope_base and ntk.config.block_size == 64
    with pytest.raises(ValueError, match="method"):
        X.extended(m, "magic", 4)
    with pytest.raises(ValueError, match="RoPE"):
        X.extended(TinyGPT(GPTConfig(block_size=16, n_layer=1, n_head=2, n_embd=16, position="alibi")), "ntk", 4)


@pytest.mark.slow
def test_alibi_extrapolates_rope_does_not_learned_cannot(corpus):
    """The chapter's claim (after Press et al. 2022), at the cpu profile's size (about 3 minutes on 2 cores).

    Trained at L = 64 bytes: ALiBi's perplexity at 4x and 8x L stays within 5 % of its perplexity at L, and
    RoPE's at 4x L is more than 1.5x its own at L. (That learned positions cannot run past L is structural:
    test_tinygpt.py.)
    """
    torch.set_num_threads(2)
    train_ids, val_ids = corpus
    S = sizes("extrapolation", "cpu")
    runs = X.train_variants(S, train_ids, ("alibi", "rope"), progress=False)
    table = X.length_table({k: m for k, (m, _) in runs.items()}, val_ids, S)
    L = S.seq_len
    assert table["alibi"][4 * L] < 1.05 * table["alibi"][L] and table["alibi"][8 * L] < 1.05 * table["alibi"][L]
    assert table["rope"][4 * L] > 1.5 * table["rope"][L]
