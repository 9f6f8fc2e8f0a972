"""measure_latency and compare_latency on a fake clock: which runs are timed and how they are combined, whatever
the load of the machine."""

import types

import pytest
import torch
from torch import nn

from course_utils import latency
from course_utils.latency import measure_latency


class FakeClock:
    """Stands in for the ``time`` module inside course_utils.latency: ``perf_counter`` reads ``now``."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(latency, "time", types.SimpleNamespace(perf_counter=fake.perf_counter))
    return fake


class Sleepy(nn.Module):
    """Takes ``costs[i]`` fake seconds on its i-th forward and records how it was called."""

    def __init__(self, clock, costs):
        super().__init__()
        self.clock, self.costs = clock, list(costs)
        self.calls, self.grad = 0, []

    def forward(self, input_ids):
        self.grad.append(torch.is_grad_enabled())
        self.clock.now += self.costs[self.calls % len(self.costs)]
        self.calls += 1
        return input_ids


def test_median_of_timed_runs_after_warmup(clock):
    # two slow warm-up runs (allocation), then timed runs of 50, 10 and 20 ms: the median is 20 ms (the mean
    # would be 26.7 ms; timing the warm-up would give seconds)
    model = Sleepy(clock, [5.0, 5.0, 0.05, 0.01, 0.02])
    seconds = measure_latency(model, torch.zeros(1, 4, dtype=torch.long), repeats=3, warmup=2)
    assert seconds == pytest.approx(0.02, abs=1e-9)
    assert model.calls == 5 and not any(model.grad)


def test_real_forward_on_tiny(tiny, clock):
    """The tiny Llama is called with ``input_ids=`` under no_grad, warm-up plus repeats times, each timed run
    bracketed by the clock (here each forward costs 4 fake ms)."""
    grad_enabled = []

    def tick(module, args, kwargs):
        grad_enabled.append(torch.is_grad_enabled())
        clock.now += 0.004

    hook = tiny.register_forward_pre_hook(tick, with_kwargs=True)
    try:
        seconds = measure_latency(tiny, torch.randint(3, 256, (1, 16)), repeats=3, warmup=1)
    finally:
        hook.remove()
    assert grad_enabled == [False] * 4
    assert isinstance(seconds, float) and seconds == pytest.approx(0.004, abs=1e-9)


def test_bad_counts_raise(clock):
    with pytest.raises(ValueError, match="repeats >= 1"):
        measure_latency(Sleepy(clock, [0.01]), torch.zeros(1, 1), repeats=0)


def test_compare_latency_times_every_model_and_refuses_none(clock):
    """Each model's time is the fastest of its per-round medians: a slow phase in one round does not count."""
    from course_utils.latency import compare_latency

    ids = torch.zeros(1, 8, dtype=torch.long)
    # per round: 1 warm-up + 2 timed runs; model a is slow in round 2 only, b costs 30 ms throughout
    a = Sleepy(clock, [0.5, 0.01, 0.01, 0.5, 0.09, 0.11])
    b = Sleepy(clock, [0.03])
    times = compare_latency({"a": a, "b": b}, ids, rounds=2, repeats=2)
    assert times == pytest.approx({"a": 0.01, "b": 0.03})
    assert a.calls == b.calls == 6  # 2 rounds of (1 warm-up + 2 timed)
    with pytest.raises(ValueError, match="at least one model"):
        compare_latency({}, ids)
