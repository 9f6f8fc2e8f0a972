"""Shared ipywidgets playgrounds, with a plain-text fallback where widgets cannot render."""

from __future__ import annotations

from collections.abc import Callable


def in_notebook_kernel() -> bool:
    """True inside a Jupyter kernel, where a frontend may render widgets; False in a script or terminal IPython."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def prompt_playground(respond: Callable[[str, int], str], prompt: str = "", max_new_tokens: int = 32):
    """A text box, a length slider and a button that shows ``respond(prompt, max_new_tokens)``.

    The first reply is computed immediately, so the cell shows a real answer even where widgets do not render
    (CI, a plain terminal). Returns the widget (or ``None`` without ipywidgets).
    """
    first = respond(prompt, max_new_tokens)
    try:
        import ipywidgets as w
    except ImportError:
        print(f"(ipywidgets not installed: showing one reply)\n> {prompt}\n{first}")
        return None
    box = w.Textarea(value=prompt, description="prompt", layout=w.Layout(width="95%", height="70px"))
    length = w.IntSlider(value=max_new_tokens, min=4, max=256, step=4, description="new tokens")
    go = w.Button(description="Generate", button_style="primary")
    print(first)  # the plain-text reply; the widget's own output area fills in on each click
    out = w.Output()

    def on_click(_):
        out.clear_output()
        with out:
            print("…generating")
            reply = respond(box.value, length.value)
            out.clear_output()
            print(reply)

    go.on_click(on_click)
    return w.VBox([box, w.HBox([length, go]), out])


def prompt_learning_playground(model, tok, sentence: str, template: str, verbalizer: str):
    """Chapter 2's playground: edit the sentence, the template and the verbalizer (``"label: w, w; ..."``) and
    see each label word's probability (normalised over the answer space) as a bar chart.

    Draws the chart once for the given values (so the cell shows a result where widgets cannot render) and
    returns the widget (``None`` without ipywidgets).
    """
    import matplotlib.pyplot as plt

    from .prompting import Template, Verbalizer, answer_search

    def draw(sentence: str, template: str, verbalizer: str) -> None:
        try:
            t, v = Template(template), Verbalizer.from_string(verbalizer)
        except ValueError as err:  # show the clear message instead of a traceback while typing
            print(err)
            return
        probs = answer_search(model, tok, t, [sentence], v.answers)[0].softmax(-1)
        fig, ax = plt.subplots(figsize=(6, 2.6))
        colours = [f"C{v.label_index(v(z))}" for z in v.answers]
        ax.bar(v.answers, probs.tolist(), color=colours)
        ax.set_ylabel("P(z | x') over Z")
        winner = v(v.answers[int(probs.argmax())])
        ax.set_title(f"{t.fill(sentence)!r} -> {winner}", fontsize=9)
        plt.show()

    draw(sentence, template, verbalizer)
    try:
        import ipywidgets as w
    except ImportError:
        return None
    boxes = [w.Text(value=sentence, description="x", layout=w.Layout(width="95%")),
             w.Text(value=template, description="template", layout=w.Layout(width="95%")),
             w.Text(value=verbalizer, description="verbalizer", layout=w.Layout(width="95%"))]
    out = w.Output()
    go = w.Button(description="Score", button_style="primary")

    def on_click(_):
        out.clear_output(wait=True)
        with out:
            draw(*(b.value for b in boxes))

    go.on_click(on_click)
    return w.VBox([*boxes, go, out])


def rope_explorer(head_dim: int = 64, base: float = 10000.0, scale: float = 1.0, max_pos: int = 512,
                  train_len: int = 128):
    """Sliders for RoPE's base and interpolation scale, redrawing :func:`plotting.plot_rope_rotations`.

    Draws the default setting once first, so the cell shows a figure where widgets do not render.
    """
    import matplotlib.pyplot as plt

    from .plotting import plot_rope_rotations

    plot_rope_rotations(head_dim, base, scale, max_pos, train_len=train_len)
    plt.show()
    try:
        import ipywidgets as w
    except ImportError:
        print("(ipywidgets not installed: one setting shown)")
        return None

    def draw(log10_base: float, scale: float) -> None:
        plot_rope_rotations(head_dim, 10 ** log10_base, scale, max_pos, train_len=train_len)
        plt.show()

    import math

    return w.interactive(draw, log10_base=w.FloatSlider(value=math.log10(base), min=2, max=7, step=0.25,
                                                        description="log10 base"),
                         scale=w.FloatSlider(value=scale, min=1, max=8, step=0.5, description="scale L'/L"))


def decoding_playground(model, tok, prompt: str, max_new_tokens: int = 64):
    """Chapter 8's playground: temperature, top-p, repetition penalty and no-repeat n-gram controls for one
    prompt, with the reply and its repetition metrics (seq-rep-4, distinct-2, loop) under it.

    Temperature 0 means greedy. The first reply (greedy) is printed at once, so the cell shows something where
    widgets do not render. Returns the widget (or ``None`` without ipywidgets).
    """
    from .decoding import distinct_n, find_loop, seq_rep_n
    from .device import set_seed
    from .models import generate_text

    def run(temperature: float, top_p: float, penalty: float, no_repeat: int) -> str:
        kw = {"repetition_penalty": penalty, "no_repeat_ngram_size": no_repeat}
        if temperature > 0:
            set_seed(0)
            kw.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
        text = generate_text(model, tok, prompt, max_new_tokens=max_new_tokens, **kw)
        loop = find_loop(text)
        return (f"{text}\n\nseq-rep-4 {seq_rep_n(text):.2f}   distinct-2 {distinct_n([text], 2):.2f}   "
                f"loop: {'none' if loop is None else f'{loop.repeats:.1f} x {loop.period} words'}")

    print(run(0.0, 1.0, 1.0, 0))
    try:
        import ipywidgets as w
    except ImportError:
        return None
    temp = w.FloatSlider(value=0.0, min=0.0, max=1.5, step=0.1, description="temperature")
    top_p = w.FloatSlider(value=1.0, min=0.1, max=1.0, step=0.05, description="top-p")
    penalty = w.FloatSlider(value=1.0, min=1.0, max=2.0, step=0.05, description="rep. penalty")
    no_rep = w.IntSlider(value=0, min=0, max=6, description="no-repeat n")
    go = w.Button(description="Generate", button_style="primary")
    out = w.Output()

    def on_click(_):
        out.clear_output()
        with out:
            print("…generating")
            reply = run(temp.value, top_p.value, penalty.value, no_rep.value)
            out.clear_output()
            print(reply)

    go.on_click(on_click)
    return w.VBox([w.HBox([temp, top_p]), w.HBox([penalty, no_rep, go]), out])
