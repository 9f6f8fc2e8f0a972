import random

import numpy as np
import pytest
import torch

from course_utils import device


def test_cpu_machine_picks_cpu_float32(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device, "_mps_available", lambda: False)
    assert device.pick_device().type == "cpu"
    assert device.pick_dtype("cpu") == torch.float32
    assert device.describe_device("cpu").startswith("cpu (")


def test_mps_is_chosen_with_a_warning(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device, "_mps_available", lambda: True)
    with pytest.warns(UserWarning, match="MPS"):
        assert device.pick_device().type == "mps"


def test_env_override_and_missing_cuda(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert device.pick_device().type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA was requested.*device='cpu'"):
        device.pick_device("cuda")


def test_set_seed_repeats_python_numpy_torch():
    draws = []
    for _ in range(2):
        device.set_seed(123)
        draws.append((random.random(), np.random.rand(), torch.rand(3).tolist()))
    assert draws[0] == draws[1]
    device.set_seed(124)
    assert random.random() != draws[0][0]


def test_tolerance_follows_the_dtype_and_scales_with_the_values():
    assert device.tolerance(torch.float32) == {"rtol": 1e-5, "atol": 1e-4}
    assert device.tolerance(torch.nn.Linear(2, 2).to(torch.bfloat16))["atol"] > device.tolerance(torch.float16)["atol"]
    big = torch.tensor([20.0, 0.0])
    # bf16 rounding of a 20-sized logit moves a near-zero element too: compared against the largest value
    assert device.assert_close(big + torch.tensor([0.0, 0.5]), big, torch.bfloat16) == 0.5
    with pytest.raises(AssertionError, match=r"differ by up to 0.5.*float32 tolerance"):
        device.assert_close(big + torch.tensor([0.0, 0.5]), big, torch.float32, "fast and naive scores")
    with pytest.raises(AssertionError):
        device.assert_close(torch.tensor([float("nan")]), torch.tensor([1.0]), torch.float32)
    with pytest.raises(ValueError, match="No tolerance"):
        device.tolerance(torch.int64)


def test_encode_and_to_model_follow_the_model():
    model = torch.nn.Linear(2, 2).to("meta")
    batch = device.to_model(model, {"ids": torch.zeros(2, dtype=torch.long), "more": [torch.ones(1)]})
    assert batch["ids"].device.type == batch["more"][0].device.type == "meta"
    assert device.model_device(torch.nn.ReLU()).type == "cpu"  # no parameters: the CPU
