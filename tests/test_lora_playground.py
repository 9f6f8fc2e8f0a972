"""Chapter 4's LoRA playground: the run function's counts, losses and merge check, refusals, and the widget."""

import copy

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from course_utils import lora, sft, widgets  # noqa: E402
from course_utils.finetune import build_model, load_pairs  # noqa: E402

STEPS = 3


@pytest.fixture(scope="module")
def tiny_lm():
    """A random tiny Llama with the default model's tokenizer, and eight sentiment examples."""
    model, tok = build_model("tiny", "full")
    return model, tok, sft.build_dataset(tok, load_pairs("sentiment")[:8], 64)


@pytest.fixture(scope="module")
def run_r4(tiny_lm):
    model, _, data = tiny_lm
    return widgets.lora_playground_run(model, data, rank=4, alpha=8, targets=("q_proj", "v_proj"), steps=STEPS)


def test_run_counts_trains_and_merges(tiny_lm, run_r4):
    model, _, data = tiny_lm
    before = {k: v.clone() for k, v in model.state_dict().items()}
    expected = lora.count_parameters(lora.inject_lora(copy.deepcopy(model), ("q_proj", "v_proj"), r=4, alpha=8))
    assert (run_r4.trainable, run_r4.total) == (expected["trainable"], expected["total"])
    assert run_r4.percent == pytest.approx(expected["percent"])
    assert len(run_r4.losses) == STEPS and all(torch.isfinite(torch.tensor(run_r4.losses)))
    assert 0 <= run_r4.merge_diff <= 1e-3 and run_r4.dtype == "float32"
    assert run_r4.peak_mib is not None and 0 < run_r4.peak_mib < run_r4.full_peak_mib
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the copy trained, not the model
    assert "trainable parameters" in run_r4.summary() and "merge check" in run_r4.summary()


def test_doubling_the_rank_doubles_the_trainable_parameters(tiny_lm, run_r4):
    model, _, data = tiny_lm
    r8 = widgets.lora_playground_run(model, data, rank=8, alpha=8, targets={"v_proj", "q_proj"}, steps=1)
    assert r8.trainable == 2 * run_r4.trainable and r8.targets == ("q_proj", "v_proj")
    one = widgets.lora_playground_run(model, data, rank=4, alpha=8, targets="v_proj", steps=1)  # one name as a str
    assert one.targets == ("v_proj",) and one.trainable == 2 * 4 * (64 + 32)  # 2 layers, v_proj 64 -> 32


def test_target_names_are_the_model_linears_without_the_head(tiny_lm):
    assert widgets.lora_target_names(tiny_lm[0]) == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                     "down_proj"]


@pytest.mark.parametrize("kw, err, msg", [
    ({"rank": 0}, ValueError, "rank must be a positive int"),
    ({"rank": True}, TypeError, "rank must be an int"),
    ({"rank": 2.0}, TypeError, "rank must be an int"),
    ({"alpha": 0}, ValueError, "alpha must be > 0"),
    ({"alpha": "16"}, TypeError, "alpha must be a number"),
    ({"targets": ()}, ValueError, "targets is empty"),
    ({"targets": ("q_proj", 3)}, TypeError, "targets must hold only str, got 3"),
    ({"targets": ("q_proj", "qproj")}, ValueError, "Unknown LoRA target(s) ['qproj']: choose from"),
    ({"targets": ("lm_head",)}, ValueError, "'down_proj']"),
    ({"steps": 0}, ValueError, "steps must be a positive int"),
    ({"batch_size": -1}, ValueError, "batch_size must be a positive int"),
    ({"rank": 64, "targets": ("k_proj",)}, ValueError, "rank at most 32"),
])
def test_bad_settings_are_refused(tiny_lm, kw, err, msg):
    model, _, data = tiny_lm
    with pytest.raises(err) as info:
        widgets.lora_playground_run(model, data, **{"rank": 4, "alpha": 8, "targets": ("q_proj",), "steps": 1, **kw})
    assert msg in str(info.value)


def test_bad_data_is_refused(tiny_lm):
    model, _, data = tiny_lm
    with pytest.raises(ValueError, match="train_data is empty"):
        widgets.lora_playground_run(model, [], steps=1)
    with pytest.raises(TypeError, match="build_dataset"):
        widgets.lora_playground_run(model, [("prompt", "response")], steps=1)


def test_outside_a_kernel_one_run_is_printed(tiny_lm, capsys):
    model, tok, _ = tiny_lm
    pairs = load_pairs("sentiment")[:4]  # pairs are tokenised with tok
    assert widgets.lora_playground(model, tok, pairs, rank=2, alpha=4, steps=1, batch_size=2) is None
    out = capsys.readouterr().out
    assert "trainable parameters" in out and "not in a notebook kernel" in out


def test_widget_click_adds_a_run_to_the_history(tiny_lm, monkeypatch, capsys):
    model, tok, data = tiny_lm
    monkeypatch.setattr(widgets, "in_notebook_kernel", lambda: True)
    ui = widgets.lora_playground(model, tok, data, rank=2, alpha=4, steps=1, batch_size=2)
    assert "trainable parameters" in capsys.readouterr().out and len(ui.runs) == 1
    c = ui.controls
    assert list(c["targets"].options)[:3] == ["q_proj", "k_proj", "v_proj"] and 64 in c["rank"].options
    c["rank"].value, c["alpha"].value, c["steps"].value = 4, 8.0, 2
    c["targets"].value = ("q_proj", "k_proj", "v_proj", "o_proj")
    summary, curve, history = ui.children[2:]
    go = ui.children[1].children[1]
    go.click()
    assert len(ui.runs) == 2 and ui.runs[-1].rank == 4 and len(ui.runs[-1].losses) == 2
    assert "trainable parameters" in summary.value and "merge check" in summary.value
    assert bytes(curve.value).startswith(b"\x89PNG") and not go.disabled
    assert history.value.count("q,k,v,o ") == 1 and "  2  " in history.value
    c["targets"].value = ()  # a bad setting shows its message in the output, the history keeps its two runs
    go.click()
    assert "targets is empty" in summary.value and len(ui.runs) == 2
