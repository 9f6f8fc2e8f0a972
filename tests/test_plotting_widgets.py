import matplotlib

matplotlib.use("Agg")

from course_utils import masks, plotting, widgets  # noqa: E402


def test_plot_masks_draws_one_panel_per_mask():
    fig = plotting.plot_masks({"causal": masks.causal_mask(5), "prefix": masks.prefix_lm_mask(5, 2)}, 2,
                              tokens=list("abcde"))
    assert len(fig.axes) == 2 and fig.axes[1].get_title() == "prefix"


def test_bar_and_token_strip():
    ax = plotting.bar({"a": 1.0, "b": 2.5}, title="t")
    assert len(ax.patches) == 2 and ax.get_title() == "t"
    ax = plotting.token_strip(["x", "y", "z"], [0.1, 0.2, 0.3])
    assert len(ax.patches) == 3


def test_readable_tokens_shows_spaces(real_model):
    _, tok = real_model
    ids = tok(" Paris is", add_special_tokens=False).input_ids
    assert "".join(plotting.readable_tokens(tok, ids)).replace("·", " ") == " Paris is"


def test_prompt_playground_shows_a_first_reply(capsys):
    calls = []
    ui = widgets.prompt_playground(lambda p, n: calls.append((p, n)) or f"echo {p}", prompt="hi", max_new_tokens=8)
    assert calls == [("hi", 8)] and "echo hi" in capsys.readouterr().out
    assert ui is not None and len(ui.children) == 3


def test_plot_alibi_heads_one_panel_per_head():
    fig = plotting.plot_alibi_heads(8, length=6, heads=[0, 7])
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["head 1: m = 1/2", "head 8: m = 1/256"]


def test_plot_rope_rotations_marks_the_training_length():
    ax = plotting.plot_rope_rotations(head_dim=16, max_pos=64, pairs=[0, 7], train_len=32)
    assert len(ax.lines) == 2 and "base 10000" in ax.get_title()
    assert any("training length 32" in t.get_text() for t in ax.get_legend().get_texts())


def test_plot_loss_by_position_smooths_each_curve():
    import torch

    ax = plotting.plot_loss_by_position({"rope": torch.ones(40), "alibi": torch.zeros(40)}, train_len=10, smooth=8)
    assert len(ax.lines) == 3  # two curves and the line at L
    assert len(ax.lines[0].get_xdata()) == 33


def test_rope_explorer_draws_once_and_has_sliders():
    ui = widgets.rope_explorer(head_dim=16, max_pos=64, train_len=16)
    labels = [c.description for c in ui.children[:-1]]
    assert labels == ["log10 base", "scale L'/L"]


def test_decoding_playground_prints_a_greedy_reply(real_model, capsys):
    model, tok = real_model
    ui = widgets.decoding_playground(model, tok, "hello", max_new_tokens=6)
    out = capsys.readouterr().out
    assert "seq-rep-4" in out and "loop:" in out and ui is not None
