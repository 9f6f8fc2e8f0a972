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
