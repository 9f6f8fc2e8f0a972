import time

import pytest
import torch
from torch import nn

from course_utils.latency import measure_latency


class Sleepy(nn.Module):
    """Takes 10 ms per forward and records how it was called."""

    def __init__(self):
        super().__init__()
        self.calls, self.grad = 0, []

    def forward(self, input_ids):
        self.calls += 1
        self.grad.append(torch.is_grad_enabled())
        time.sleep(0.01)
        return input_ids


def test_median_of_timed_runs_after_warmup():
    model = Sleepy()
    seconds = measure_latency(model, torch.zeros(1, 4, dtype=torch.long), repeats=3, warmup=2)
    assert 0.01 <= seconds < 0.5
    assert model.calls == 5 and not any(model.grad)


def test_real_forward_on_tiny(tiny):
    seconds = measure_latency(tiny, torch.randint(3, 256, (1, 16)), repeats=3, warmup=1)
    assert isinstance(seconds, float) and 0 < seconds < 1


def test_bad_counts_raise():
    with pytest.raises(ValueError, match="repeats >= 1"):
        measure_latency(Sleepy(), torch.zeros(1, 1), repeats=0)


def test_compare_latency_times_every_model_and_refuses_none(tiny):
    from course_utils.latency import compare_latency

    ids = torch.randint(0, 256, (1, 8))
    times = compare_latency({"a": tiny, "b": tiny}, ids, rounds=2, repeats=2)
    assert set(times) == {"a", "b"} and all(0 < t < 1 for t in times.values())
    with pytest.raises(ValueError, match="at least one model"):
        compare_latency({}, ids)
