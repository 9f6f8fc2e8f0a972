"""Repeated vs unique data at a fixed budget: the data plumbing, the paper's formula, the experiment's claim."""

import dataclasses
import math

import matplotlib
import pytest
import torch

from course_utils import data_scaling as DS
from course_utils.data.corpus import encode_bytes, load_corpus

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def corpus():
    return encode_bytes(load_corpus("train")), encode_bytes(load_corpus("val"))


def test_setups_divide_the_budget():
    for name in ("smoke", "cpu", "gpu"):
        S = DS.setup_for(name)
        assert all(S.budget_windows % e == 0 for e in S.repetitions) and S.steps * S.batch_size == S.budget_windows
    with pytest.raises(ValueError, match="profile"):
        DS.setup_for("tpu")


def test_unique_windows_are_nested_distinct_and_checked():
    ids = torch.arange(1000)
    small, large = DS.unique_windows(ids, 10, 5), DS.unique_windows(ids, 10, 20)
    assert small == large[:5]
    starts = [w["input_ids"][0] for w in large]
    assert len(set(starts)) == 20 and all(s % 10 == 0 for s in starts)
    with pytest.raises(ValueError, match="holds 100 windows"):
        DS.unique_windows(ids, 10, 101)


def test_repeated_data_sizes_and_errors(corpus):
    S = DS.setup_for("smoke")
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
    S = DS.setup_for("smoke")
    a = DS.repetition_experiment(S, train_ids, val_ids, progress=False)
    b = DS.repetition_experiment(S, train_ids, val_ids, repetitions=(1,), progress=False)
    assert set(a) == set(S.repetitions) and a[1]["val_loss"] == b[1]["val_loss"]
    assert len(a[1]["curve"]) == S.n_evals + 1 and a[16]["unique_tokens"] * 16 == S.budget_tokens
    assert "epochs" in DS.format_results(a)
    DS.plot_repetitions(a)


@pytest.mark.slow
def test_many_repetitions_hurt_few_do_not(corpus):
    """The chapter's claim at the cpu size: 2 epochs cost little, 16 epochs cost clearly more."""
    torch.set_num_threads(2)
    train_ids, val_ids = corpus
    S = DS.setup_for("cpu")
    r = DS.repetition_experiment(S, train_ids, val_ids, repetitions=(1, 2, 16), progress=False)
    assert r[2]["val_loss"] - r[1]["val_loss"] < 0.05
    assert r[16]["val_loss"] - r[1]["val_loss"] > 3 * (r[2]["val_loss"] - r[1]["val_loss"])
    assert r[16]["val_loss"] - r[1]["val_loss"] > 0.1
