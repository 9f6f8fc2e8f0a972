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
