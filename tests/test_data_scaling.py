"""Repeated vs unique data at a fixed budget: the data plumbing, the paper's formula, the experiment's claim."""

import dataclasses
import math

import matplotlib
import pytest
import torch

from course_utils import data_scaling as DS
from course_utils.config import sizes
from course_utils.data.corpus import encode_bytes, load_corpus

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def corpus():
    return encode_bytes(load_corpus("train")), encode_bytes(load_corpus("val"))


def test_setups_divide_the_budget():
    for name in ("smoke", "cpu", "gpu"):
        S = sizes("data_scaling", name)
        assert all(S.budget_windows % e == 0 for e in S.repetitions) and S.steps * S.batch_size == S.budget_windows
    with pytest.raises(ValueError, match="profile"):
        sizes("data_scaling", "tpu")


def test_unique_windows_are_nested_distinct_and_checked():
    ids = torch.arange(1000)
    small, large = DS.unique_windows(ids, 10, 5), DS.unique_windows(ids, 10, 20)
    assert small == large[:5]
    starts = [w["input_ids"][0] for w in large]
    assert len(set(starts)) == 20 and all(s % 10 == 0 for s in starts)
    with pytest.raises(ValueError, match="holds 100 windows"):
        DS.unique_windows(ids, 10, 101)


def test_repeated_data_sizes_and_errors(corpus):
    S = sizes("data_scaling", "smoke")
    train_ids, _ = corpus
    assert len(DS.repeated_data(train_ids, S, 4)) * 4 == S.budget_windows
    with pytest.raises(ValueError, match=">= 1"):
        DS.repeated_data(train_ids, S, 0)
    with pytest.raises(ValueError, match="equal"):
        DS.repeated_data(train_ids, S, 3)
    with pytest.raises(ValueError, match="at least one"):
        DS.repetition_experiment(S, train_ids, train_ids, repetitions=())
    huge = dataclasses.replace(S, budget_tokens=len(train_ids) * 2)
    with pytest.raises(ValueError, match="Lower budget_tokens"):
        DS.repetition_experiment(huge, train_ids, train_ids, progress=False)


def test_effective_data_formula():
    assert DS.effective_data(100, 1) == 100
    assert DS.effective_data(100, 2) == pytest.approx(100 + 100 * 15.4 * (1 - math.exp(-1 / 15.4)))
    assert DS.effective_data(100, 2) < 200  # a repeated token is worth less than a new one
    assert DS.effective_data(100, 1e6) == pytest.approx(100 * (1 + 15.4))  # the ceiling
    with pytest.raises(ValueError, match="repetitions"):
        DS.effective_data(100, 0)


def test_smoke_experiment_repeats_exactly(corpus):
    train_ids, val_ids = corpus
    S = sizes("data_scaling", "smoke")
    a = DS.repetition_experiment(S, train_ids, val_ids, progress=False)
    b = DS.repetition_experiment(S, train_ids, val_ids, repetitions=(1,), progress=False)
    assert set(a) == set(S.repetitions) and a[1]["val_loss"] == b[1]["val_loss"]
    assert len(a[1]["curve"]) == S.n_evals + 1 and a[16]["unique_tokens"] * 16 == S.budget_tokens
    assert "epochs" in DS.format_results(a)
    DS.plot_repetitions(a)


@pytest.mark.slow
def test_sixteen_epochs_memorise_and_do_not_beat_unique_data(corpus):
    """What the cpu size does show (about 2 minutes): 16 epochs over 1/16 of the data open a much larger gap
    between training and validation loss than unique data, and end with a higher validation loss.

    What it does not show: the paper's "2-4 epochs are almost free" against "16 cost clearly more". Recorded cpu
    runs: validation loss 2.14 / 2.29 / 2.40 / 2.20 / 2.31 for 1 / 2 / 4 / 8 / 16 epochs (seed 0) and 2.28 / 2.49 /
    2.31 for 1 / 2 / 16 (seed 1): the seed-to-seed spread of one setting (0.14) is as large as the effect."""
    train_ids, val_ids = corpus
    r = DS.repetition_experiment(sizes("data_scaling", "cpu"), train_ids, val_ids, repetitions=(1, 16), progress=False)
    gap = {e: x["val_loss"] - x["train_loss"] for e, x in r.items()}
    assert gap[16] > gap[1] + 0.2
    assert r[16]["val_loss"] > r[1]["val_loss"]
